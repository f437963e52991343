using Metrics.Tests;

namespace Metrics.Conformance.Tests;

/// <summary>The Memory plugin's built folder through the plugin-folder base class, loaded by the host's loader.</summary>
public class MemoryPluginConformance : PluginFolderConformanceTests<MemoryPluginConformance>
{
    protected override string PluginsPath => RunnerTests.PluginsPath;

    protected override string Name => "Memory";
}

/// <summary>The runner command on built plugin folders.</summary>
public class RunnerTests
{
    public static string PluginsPath { get; } = Path.Combine(AppContext.BaseDirectory, "conformance-plugins");

    private static string RunnerDll { get; } = Path.Combine(AppContext.BaseDirectory, "metrics-conformance-runner", "Metrics.Conformance.Runner.dll");

    [Fact]
    public void Memory_plugin_folder_passes_every_check_and_exits_0()
    {
        var (exit, stdout, _) = Run("--plugins", PluginsPath, "--backend", "Memory");
        var checks = ConformanceSuite.Checks.Count(c => c.AppliesTo(BackendCapabilities.None));
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(checks, lines.Count(l => l.Contains("  PASS  ", StringComparison.Ordinal)));
        Assert.DoesNotContain(lines, l => l.Contains("  FAIL  ", StringComparison.Ordinal));
        Assert.All(ConformanceSuite.Checks.Where(c => c.AppliesTo(BackendCapabilities.None)), c => Assert.Contains(lines, l => l.StartsWith(c.Name + " ", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.StartsWith("Not run, as they apply to other capabilities: ", StringComparison.Ordinal) && l.Contains("ObserveHistogramAddsBucketAndSum (needs AtomicHistogramObserve)", StringComparison.Ordinal));
        Assert.Equal($"{checks} passed, 0 failed", lines[^1]);
        Assert.Equal(0, exit);
    }

    [Fact]
    public void Broken_plugin_folder_fails_with_the_bug_named_and_exits_1()
    {
        var (exit, stdout, _) = Run("--plugins", PluginsPath, "--backend", "BrokenDec");
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var incDecSetGet = Assert.Single(lines, l => l.StartsWith("IncDecSetGet ", StringComparison.Ordinal));
        Assert.Contains("  FAIL  ", incDecSetGet);
        Assert.Contains("Dec added its amount instead of subtracting it", incDecSetGet);
        Assert.Matches(@"^\d+ passed, [1-9]\d* failed$", lines[^1]);
        Assert.Equal(1, exit);
    }

    [Fact]
    public void Unknown_backend_reports_the_loader_message_and_exits_1()
    {
        var (exit, stdout, stderr) = Run("--plugins", PluginsPath, "--backend", "Nope");
        Assert.Contains("Could not load the backend", stderr);
        Assert.Contains("Nope", stderr);
        Assert.Contains("0 passed, 1 failed", stdout);
        Assert.Equal(1, exit);
    }

    [Theory]
    [InlineData]
    [InlineData("--plugins", "x")]
    [InlineData("--backend", "Memory")]
    [InlineData("--plugins", "x", "--backend", "Memory", "--assembly", "y.dll", "--type", "T")]
    [InlineData("--plugins", "x", "--backend", "Memory", "--bogus", "1")]
    [InlineData("--plugins", "x", "--backend", "Memory", "--check", "NoSuchCheck")]
    [InlineData("--plugins", "x", "--backend")]
    public void Bad_arguments_print_usage_and_exit_2(params string[] args)
    {
        var (exit, _, stderr) = Run(args);
        Assert.Contains("Usage:", stderr);
        Assert.Equal(2, exit);
    }

    [Fact]
    public void A_single_check_and_a_config_file_can_be_given()
    {
        var config = Path.Combine(Path.GetTempPath(), $"conformance-config-{Guid.NewGuid():N}.json");
        File.WriteAllText(config, """{ "Metrics": { "BackendConfig": { "Unused": { "Nested": 1 } } } }""");
        try
        {
            var (exit, stdout, _) = Run("--plugins", PluginsPath, "--backend", "Memory", "--config", config, "--check", "ReadYourWrites");
            Assert.Contains("ReadYourWrites  PASS", stdout);
            Assert.Contains("1 passed, 0 failed", stdout);
            Assert.Equal(0, exit);
        }
        finally
        {
            File.Delete(config);
        }
    }

    internal static (int Exit, string Stdout, string Stderr) Run(params string[] args)
    {
        using var runner = ChildProcess.StartDotnet(RunnerDll, args);
        runner.CloseInput();
        var exit = runner.WaitForExit(TimeSpan.FromMinutes(2));
        return (exit, runner.Stdout, runner.Stderr);
    }
}
