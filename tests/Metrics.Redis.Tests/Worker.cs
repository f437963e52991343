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

/// <summary>A worker left running: started with its input redirected, stopped by a line on it.</summary>
internal sealed class RunningWorker : IDisposable
{
    private readonly Process _process;
    private readonly System.Text.StringBuilder _output = new();

    private RunningWorker(Process process)
    {
        _process = process;
    }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts the worker and waits, up to <paramref name="timeout"/>, for it to print <paramref name="readyLine"/>.</summary>
    public static RunningWorker Start(string readyLine, TimeSpan timeout, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "Metrics.Redis.Worker.dll");
        Assert.True(File.Exists(dll), $"worker not built at {dll}");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(dll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        var worker = new RunningWorker(Process.Start(start)!);
        using var ready = new ManualResetEventSlim();
        worker._process.OutputDataReceived += (_, e) =>
        {
            worker.Append(e.Data);
            if (e.Data == readyLine)
            {
                ready.Set();
            }
        };
        worker._process.ErrorDataReceived += (_, e) => worker.Append(e.Data);
        worker._process.BeginOutputReadLine();
        worker._process.BeginErrorReadLine();
        if (!ready.Wait(timeout))
        {
            worker.Dispose();
            throw new TimeoutException($"worker did not print '{readyLine}' within {timeout}:\n{worker.Output}");
        }

        return worker;
    }

    /// <summary>Asks the worker to stop and waits for its exit code.</summary>
    public int Stop(TimeSpan timeout)
    {
        _process.StandardInput.WriteLine("stop");
        _process.StandardInput.Close();
        if (!_process.WaitForExit(timeout))
        {
            throw new TimeoutException($"worker did not exit within {timeout}:\n{Output}");
        }

        _process.WaitForExit();
        return _process.ExitCode;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }

        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }
}
