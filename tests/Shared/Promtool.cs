using System.Diagnostics;

namespace Metrics.Tests;

/// <summary>Runs <c>promtool check metrics</c> on an exposition; shared by the test projects that validate text output.</summary>
internal static class Promtool
{
    public static (int Exit, string Output) Check(string exposition)
    {
        var promtool = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':')
            .Select(dir => Path.Combine(dir, "promtool")).FirstOrDefault(File.Exists);
        Assert.True(promtool is not null, "promtool is not installed: install the Debian package 'prometheus' (./test.sh does it) and run again.");
        var start = new ProcessStartInfo(promtool, ["check", "metrics"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        process.StandardInput.Write(exposition);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(60_000), "promtool did not finish within 60 s");
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
