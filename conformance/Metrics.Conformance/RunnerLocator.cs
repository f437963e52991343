using System.Reflection;
using System.Runtime.InteropServices;

namespace Metrics.Conformance;

/// <summary>Finds the runner that multi-process checks start as child processes, and the dotnet host to start it with.</summary>
internal static class RunnerLocator
{
    public const string RunnerFileName = "Metrics.Conformance.Runner.dll";
    public const string RunnerFolder = "metrics-conformance-runner";
    public const string EnvironmentVariable = "METRICS_CONFORMANCE_RUNNER";

    public static string NotFoundMessage =>
        $"The multi-process checks start {RunnerFileName} as child processes, and it was not found. The Metrics.Conformance package copies it to " +
        $"'{RunnerFolder}/' in the test project's output ({Path.Combine(AppContext.BaseDirectory, RunnerFolder)}); rebuild the test project, " +
        $"or set the {EnvironmentVariable} environment variable (or ConformanceOptions.RunnerPath) to the runner's dll.";

    public static string? Find(ConformanceOptions options)
    {
        var candidates = new[]
        {
            options.RunnerPath,
            Environment.GetEnvironmentVariable(EnvironmentVariable),
            Assembly.GetEntryAssembly() is { } entry && string.Equals(Path.GetFileName(entry.Location), RunnerFileName, StringComparison.OrdinalIgnoreCase) ? entry.Location : null,
            Path.Combine(AppContext.BaseDirectory, RunnerFolder, RunnerFileName),
        };
        return candidates.FirstOrDefault(c => !string.IsNullOrEmpty(c) && File.Exists(c));
    }

    public static string DotnetHost()
    {
        var fromCli = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromCli) && File.Exists(fromCli))
        {
            return fromCli;
        }

        var executable = RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "dotnet.exe" : "dotnet";
        if (Environment.ProcessPath is { } self && string.Equals(Path.GetFileName(self), executable, StringComparison.OrdinalIgnoreCase))
        {
            return self;
        }

        // The runtime lives in <dotnet root>/shared/Microsoft.NETCore.App/<version>/.
        var root = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var candidate = Path.Combine(root, executable);
        return File.Exists(candidate) ? candidate : executable;
    }
}
