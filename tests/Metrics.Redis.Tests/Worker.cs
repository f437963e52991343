using System.Diagnostics;

namespace Metrics.Redis.Tests;

/// <summary>Starts Metrics.Redis.Worker (built next to the tests) as a real child process.</summary>
internal static class Worker
{
    public static (int ExitCode, string Output) Run(params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "Metrics.Redis.Worker.dll");
        Assert.True(File.Exists(dll), $"worker not built at {dll}");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(dll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(90)))
        {
            process.Kill();
            throw new TimeoutException("worker did not finish within 90 s");
        }

        return (process.ExitCode, $"exit {process.ExitCode}\n{stdout.Result}\n{stderr.Result}");
    }
}
