using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;

namespace Metrics.SharedMemory.Tests;

/// <summary>A real child process running the worker program against a store.</summary>
internal sealed class Worker : IDisposable
{
    private static readonly string WorkerPath = Path.GetFullPath(typeof(Worker).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "WorkerPath").Value!.Replace('\\', Path.DirectorySeparatorChar));

    private readonly Process _process;
    private readonly BlockingCollection<string> _lines = [];
    private readonly ConcurrentQueue<string> _errors = new();

    private Worker(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _lines.CompleteAdding();
            }
            else
            {
                _lines.Add(e.Data);
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                _errors.Enqueue(e.Data);
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Pid => _process.Id;

    public string Errors => string.Join('\n', _errors);

    public static Worker Start(string storePath, IDictionary<string, string>? environment, params string[] args)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(WorkerPath);
        info.ArgumentList.Add(args[0]);
        info.ArgumentList.Add(storePath);
        foreach (var arg in args.Skip(1))
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        return new Worker(Process.Start(info) ?? throw new InvalidOperationException("The worker process did not start."));
    }

    public static Worker Start(string storePath, params string[] args) => Start(storePath, null, args);

    /// <summary>Runs a worker to completion and fails the test if it does not exit with 0.</summary>
    public static void Run(string storePath, params string[] args) => Run(storePath, null, args);

    /// <summary>Runs a worker with extra environment variables to completion and fails the test if it does not exit with 0.</summary>
    public static void Run(string storePath, IDictionary<string, string>? environment, params string[] args)
    {
        using var worker = Start(storePath, environment, args);
        // Commands that wait on stdin (gauge) finish at once.
        worker._process.StandardInput.Close();
        worker.WaitForExit(TimeSpan.FromSeconds(60));
        Assert.True(worker.ExitCode == 0, $"worker {string.Join(' ', args)} exited with {worker.ExitCode}: {worker.Errors}");
    }

    public int ExitCode => _process.ExitCode;

    /// <summary>Waits for the worker's "ready" line and returns the rest of it.</summary>
    public string WaitReady()
    {
        if (!_lines.TryTake(out var line, TimeSpan.FromSeconds(30)) || !line.StartsWith("ready", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"The worker did not report ready (line: {line ?? "none"}); stderr: {Errors}");
        }

        return line["ready".Length..].Trim();
    }

    public void WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            _process.Kill(entireProcessTree: true);
            throw new TimeoutException($"The worker did not exit within {timeout}; stderr: {Errors}");
        }

        _process.WaitForExit();
    }

    /// <summary>SIGKILL on Unix: no handler, finalizer or exit hook runs in the worker.</summary>
    public void Kill()
    {
        _process.Kill();
        _process.WaitForExit();
    }

    /// <summary>Ends a worker that waits on stdin.</summary>
    public void Release()
    {
        _process.StandardInput.Close();
        WaitForExit(TimeSpan.FromSeconds(30));
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }

        _process.Dispose();
        _lines.Dispose();
    }
}
