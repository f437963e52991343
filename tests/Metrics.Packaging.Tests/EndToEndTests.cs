using System.Diagnostics;
using System.Text;

namespace Metrics.Packaging.Tests;

/// <summary>
/// The backend author's and the application developer's paths, from packages only, in a fresh folder outside the
/// repository: pack every package into a local feed, install the template, create and test a backend, run the
/// conformance tool on its plugin folder, and use a plugin package from a new console app.
/// </summary>
public sealed class EndToEndTests : IDisposable
{
    // A version of its own, so packages restored by earlier runs (or other branches) from the shared cache are never used.
    private readonly string _version = "1.0.0-e2e." + DateTime.UtcNow.ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture) + "." + Guid.NewGuid().ToString("N")[..6];
    private readonly string _root = Directory.CreateTempSubdirectory("metrics-e2e-").FullName;
    private readonly StringBuilder _log = new();

    private string Feed => Path.Combine(_root, "feed");

    [Fact]
    public void Template_tool_and_plugin_package_work_from_a_local_feed()
    {
        var repo = RepositoryRoot();
        Directory.CreateDirectory(Feed);
        var packable = PackageHygiene.PackableProjects(repo);
        Assert.Contains("src/Metrics.Core", packable);
        Assert.Contains("templates/Metrics.Templates", packable);
        foreach (var project in packable)
        {
            // The solution is built in Release before the tests run; PackageVersion changes the packages, not the assemblies.
            Dotnet(repo, "pack", Path.Combine(repo, project), "-c", "Release", "--no-build", "-o", Feed, $"-p:PackageVersion={_version}", "-nodeReuse:false");
        }

        // Every package: its README, the repository and commit, symbols (a .snupkg beside it, or PDBs embedded in a plugin) with SourceLink.
        var packages = Directory.GetFiles(Feed, "*.nupkg");
        Assert.Equal(packable.Count, packages.Length);
        foreach (var package in packages)
        {
            PackageHygiene.AssertComplete(package);
        }

        File.WriteAllText(Path.Combine(_root, "nuget.config"), $"""
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{Feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
            </configuration>
            """);

        // The backend author: template, build, tests, then the tool on the built plugin folder.
        Dotnet(_root, "new", "install", Path.Combine(Feed, $"Metrics.Templates.{_version}.nupkg"));
        Dotnet(_root, "new", "metrics-backend", "-n", "Acme", "--MetricsVersion", _version);
        var acme = Path.Combine(_root, "Acme");
        Assert.True(File.Exists(Path.Combine(acme, "README.md")));
        Assert.True(File.Exists(Path.Combine(acme, "Acme", "AcmeBackend.cs")));
        Dotnet(acme, "build", "Acme.Tests", "-c", "Release", "-nodeReuse:false");
        Assert.True(File.Exists(Path.Combine(acme, "plugins", "Acme", "Acme.dll")), "The backend's build output is the plugin folder plugins/Acme/.");
        var test = Dotnet(acme, "test", "Acme.Tests", "-c", "Release", "--no-build");
        Assert.Matches(@"Passed!\s+- Failed:\s+0, Passed:\s+[1-9]\d*", test);

        var tools = Path.Combine(_root, "tools");
        Dotnet(_root, "tool", "install", "Metrics.Conformance.Tool", "--version", _version, "--tool-path", tools);
        File.WriteAllText(Path.Combine(acme, "config.json"), """{ "MaxSeries": 1000 }""");
        File.WriteAllText(Path.Combine(acme, "invalid.json"), """{ "MaxSeries": "many" }""");
        var tool = Path.Combine(tools, OperatingSystem.IsWindows() ? "metrics-conformance.exe" : "metrics-conformance");
        var help = Run(acme, tool, ["--help"], expectedExit: 0);
        Assert.Contains("Exit codes:", help);
        var conformance = Run(acme, tool, ["--plugins", "plugins", "--backend", "Acme", "--config", "config.json", "--invalid-config", "invalid.json", "--report", "conformance.xml"], expectedExit: 0);
        Assert.Contains("InvalidSettingsFailAtLoad", conformance);
        Assert.Matches(@"\d+ passed, 0 failed", conformance);
        Assert.True(File.Exists(Path.Combine(acme, "conformance.xml")));

        // The application developer: a console app, one plugin package, one setting.
        var app = Path.Combine(_root, "App");
        Dotnet(_root, "new", "console", "-n", "App", "-o", app);
        Dotnet(app, "add", "package", "Metrics.Core", "--version", _version);
        Dotnet(app, "add", "package", "Metrics.Backends.SharedMemory", "--version", _version);
        var store = Path.Combine(_root, "app.store");
        File.WriteAllText(Path.Combine(app, "appsettings.json"), $$"""
            { "Metrics": { "Backend": "SharedMemory", "BackendConfig": { "Path": "{{store.Replace("\\", "\\\\", StringComparison.Ordinal)}}" } } }
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using Metrics;
            using Metrics.Configuration;

            var backend = MetricsConfiguration.Apply(MetricsConfiguration.BuildConfiguration(args, AppContext.BaseDirectory));
            var requests = new Counter("requests_total", "Requests served.", ["code"]);
            requests.Labels("200").Inc();
            Console.WriteLine($"backend: {backend}");
            Console.WriteLine($"loaded from: {backend.Type.Assembly.Location}");
            Console.Write(MetricRegistry.Default.Render());
            await ConfiguredBackend.ShutdownAllAsync();
            """);
        var csproj = Path.Combine(app, "App.csproj");
        File.WriteAllText(csproj, File.ReadAllText(csproj).Replace("</Project>", """
              <ItemGroup>
                <None Update="appsettings.json" CopyToOutputDirectory="PreserveNewest" />
              </ItemGroup>
            </Project>
            """, StringComparison.Ordinal));
        Dotnet(app, "build", "-c", "Release", "-nodeReuse:false");
        var output = Path.Combine(app, "bin", "Release", "net10.0");
        Assert.True(File.Exists(Path.Combine(output, "plugins", "SharedMemory", "SharedMemory.dll")), "The package lays the plugin out as plugins/SharedMemory/ in the build output.");
        Assert.False(File.Exists(Path.Combine(output, "SharedMemory.dll")), "The backend must not be referenced by the app itself.");
        var run = Dotnet(app, "run", "-c", "Release", "--no-build");
        Assert.Contains("backend: SharedMemory", run);
        Assert.Contains(Path.Combine("plugins", "SharedMemory", "SharedMemory.dll"), run);
        Assert.Contains("requests_total{code=\"200\"} 1", run);
    }

    public void Dispose()
    {
        try
        {
            // The template and the tool were installed under this folder (DOTNET_CLI_HOME, --tool-path): deleting it removes them.
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder does not change any result.
        }

        // The packages restored under this run's version are only ever used by this run.
        var cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (var id in new[] { "metrics.abstractions", "metrics.core", "metrics.backends.memory", "metrics.backends.sharedmemory", "metrics.conformance", "metrics.conformance.tool", "metrics.templates", "metrics.backends.redis", "metrics.extensions.hosting", "metrics.aspnetcore" })
        {
            var folder = Path.Combine(cache, id, _version);
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
                try
                {
                    if (!Directory.EnumerateFileSystemEntries(Path.GetDirectoryName(folder)!).Any())
                    {
                        Directory.Delete(Path.GetDirectoryName(folder)!);
                    }
                }
                catch (IOException)
                {
                    // Another run on this machine restores its own version of the package into the same parent folder
                    // at this moment (or removed the folder first): the parent is then that run's to remove.
                }
            }
        }
    }

    private static string ChildDotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Metrics.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Metrics.sln not found above " + AppContext.BaseDirectory);
    }

    private string Dotnet(string workingDirectory, params string[] args) => Run(workingDirectory, ChildDotnet, args, expectedExit: 0);

    private string Run(string workingDirectory, string fileName, string[] args, int? expectedExit)
    {
        var info = new ProcessStartInfo(fileName) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        // Template installs and tool state go to this run's folder, never to the user's profile.
        info.Environment["DOTNET_CLI_HOME"] = Path.Combine(_root, "home");
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        info.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        info.Environment["NUGET_PACKAGES"] = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        // The test host's own MSBuild settings must not leak into the child builds.
        info.Environment.Remove("MSBuildExtensionsPath");
        info.Environment.Remove("MSBuildSDKsPath");
        info.Environment.Remove("MSBUILD_EXE_PATH");
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        if (!process.WaitForExit(TimeSpan.FromMinutes(4)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"'{fileName} {string.Join(' ', args)}' did not finish within 4 minutes.\n{_log}");
        }

        var output = stdout.GetAwaiter().GetResult() + stderr.GetAwaiter().GetResult();
        _log.AppendLine($"$ {Path.GetFileName(fileName)} {string.Join(' ', args)} (exit {process.ExitCode})").AppendLine(output);
        if (expectedExit is { } expected && process.ExitCode != expected)
        {
            Assert.Fail($"'{fileName} {string.Join(' ', args)}' in {workingDirectory} exited {process.ExitCode}, expected {expected}:\n{output}");
        }

        return output;
    }
}
