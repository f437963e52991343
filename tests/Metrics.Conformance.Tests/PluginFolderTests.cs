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
        var checks = ConformanceSuite.Checks.Count(c => c.AppliesTo(Metrics.Backends.Memory.MemoryBackend.Capabilities));
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(checks, lines.Count(l => l.Contains("  PASS  ", StringComparison.Ordinal)));
        Assert.DoesNotContain(lines, l => l.Contains("  FAIL  ", StringComparison.Ordinal));
        Assert.All(ConformanceSuite.Checks.Where(c => c.AppliesTo(Metrics.Backends.Memory.MemoryBackend.Capabilities)), c => Assert.Contains(lines, l => l.StartsWith(c.Name + " ", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.StartsWith("Not run, as they apply to other capabilities: ", StringComparison.Ordinal) && l.Contains("ObserveHistogramAddsBucketAndSum (needs AtomicHistogramObserve)", StringComparison.Ordinal));
        Assert.Equal($"{checks} passed, 0 failed", lines[^1]);
        Assert.Equal(0, exit);
    }

    [Fact]
    public void A_SharedMemory_run_with_a_unique_path_passes_and_leaves_no_store_behind()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"metrics-runner-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            var config = Path.Combine(folder, "config.json");
            // The shortest check interval: a store still open when the runner deletes its file would write it again within it.
            File.WriteAllText(config, $$"""{ "Path": "{{Path.Combine(folder, "store")}}", "CheckInterval": "00:00:00.010" }""");
            var invalid = Path.Combine(folder, "invalid.json");
            File.WriteAllText(invalid, """{ "MaxSize": "huge" }""");
            var (exit, stdout, stderr) = Run("--plugins", PluginsPath, "--backend", "SharedMemory", "--config", config, "--unique-key", "Path", "--invalid-config", invalid);
            Assert.True(exit == 0, $"exit {exit}\n{stdout}\n{stderr}");
            Assert.Equal(["config.json", "invalid.json"], Directory.EnumerateFileSystemEntries(folder).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal).ToArray());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
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
    public void Unknown_backend_reports_the_loader_message_and_exits_2()
    {
        var (exit, stdout, stderr) = Run("--plugins", PluginsPath, "--backend", "Nope");
        Assert.Contains("Could not load the backend", stderr);
        Assert.Contains("Nope", stderr);
        Assert.Contains("could not be loaded", stdout);
        Assert.Equal(2, exit);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("--plugins", "x", "--help")]
    public void Help_goes_to_stdout_with_the_exit_codes_and_exits_0(params string[] args)
    {
        var (exit, stdout, stderr) = Run(args);
        Assert.Contains("Usage:", stdout);
        Assert.Contains("--invalid-config <file.json>", stdout);
        Assert.Contains("2  bad arguments, or the backend or a configuration file could not be loaded", stdout);
        Assert.Equal(string.Empty, stderr.Trim());
        Assert.Equal(0, exit);
    }

    [Fact]
    public void Invalid_configurations_are_checked_and_the_results_written_as_a_JUnit_report()
    {
        var directory = Directory.CreateTempSubdirectory("conformance-runner-").FullName;
        try
        {
            var config = Path.Combine(directory, "config.json");
            var invalid = Path.Combine(directory, "invalid.json");
            var report = Path.Combine(directory, "report", "junit.xml");
            File.WriteAllText(config, """{ "Capacity": 10 }""");
            File.WriteAllText(invalid, """{ "Capacity": "lots" }""");
            var (exit, stdout, _) = Run(
                "--assembly", typeof(UnvalidatedSettingsBackend).Assembly.Location, "--type", typeof(UnvalidatedSettingsBackend).FullName!,
                "--config", config, "--invalid-config", invalid, "--check", "InvalidSettingsFailAtLoad", "--check", "ReadYourWrites", "--report", report);
            Assert.Contains("InvalidSettingsFailAtLoad  FAIL  ", stdout);
            Assert.Contains("does not validate Capacity", stdout);
            Assert.Contains("1 passed, 1 failed", stdout);
            Assert.Equal(1, exit);

            var xml = System.Xml.Linq.XDocument.Load(report);
            var cases = xml.Descendants("testcase").ToList();
            Assert.Equal(["InvalidSettingsFailAtLoad", "ReadYourWrites"], cases.Select(c => (string)c.Attribute("name")!));
            Assert.Contains("does not validate Capacity", (string)cases[0].Element("failure")!);
            Assert.Null(cases[1].Element("failure"));
            Assert.Equal("1", (string)xml.Descendants("testsuite").Single().Attribute("failures")!);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData]
    [InlineData("--plugins", "x")]
    [InlineData("--backend", "Memory")]
    [InlineData("--plugins", "x", "--backend", "Memory", "--assembly", "y.dll", "--type", "T")]
    [InlineData("--plugins", "x", "--backend", "Memory", "--bogus", "1")]
    [InlineData("--plugins", "x", "--backend", "Memory", "--check", "NoSuchCheck")]
    [InlineData("--plugins", "x", "--backend")]
    [InlineData("--plugins", "x", "--backend", "Memory", "--invalid-config", "/nonexistent/invalid.json")]
    [InlineData("--plugins", "x", "--backend", "Memory", "--timeout", "soon")]
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
