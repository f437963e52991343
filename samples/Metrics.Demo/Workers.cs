using System.Diagnostics;
using System.Reflection;

namespace Metrics.Demo;

/// <summary>Starts worker processes from the same executable and ties their lifetime to the server's.</summary>
internal static class Workers
{
    public static Process Start(string[] args, int id)
    {
        var start = new ProcessStartInfo { UseShellExecute = false };
        var processPath = Environment.ProcessPath!;
        start.FileName = processPath;
        if (Path.GetFileNameWithoutExtension(processPath).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            start.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
        }

        // Workers take the server's configuration (same appsettings.json, inherited environment, forwarded
        // command-line settings) but listen on nothing.
        foreach (var arg in DemoArgs.Without(DemoArgs.Without(args, "--workers"), "--urls"))
        {
            start.ArgumentList.Add(arg);
        }

        start.ArgumentList.Add("--worker");
        start.ArgumentList.Add(id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        start.ArgumentList.Add("--parent");
        start.ArgumentList.Add(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return Process.Start(start) ?? throw new InvalidOperationException($"Could not start worker {id}.");
    }

    public static void Stop(List<Process> processes)
    {
        foreach (var process in processes)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            process.WaitForExit(5000);
            process.Dispose();
        }
    }

    public static void StopWhenParentExits(string? parentId, CancellationTokenSource stop)
    {
        if (!int.TryParse(parentId, out var pid))
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var parent = Process.GetProcessById(pid);
                    if (parent.HasExited)
                    {
                        break;
                    }
                }
                catch (ArgumentException)
                {
                    // No process with that id any more: the server is gone.
                    break;
                }

                await Task.Delay(1000, CancellationToken.None);
            }

            stop.Cancel();
        });
    }
}
