using System.Diagnostics;
using System.Text;

namespace Metrics.Tests;

/// <summary>
/// A real child process (a <c>dotnet worker.dll</c>, a redis-server, the demo) for the tests and the benchmarks.
/// Its output is captured line by line so that the parent waits on lines the child prints rather than on the clock,
/// and every failure message carries what the child printed. Disposing kills the whole process tree.
/// </summary>
/// <remarks>Linked as source into the test projects and the benchmarks, so it throws instead of using xunit's Assert.</remarks>
internal sealed class ChildProcess : IDisposable
{
    /// <summary>How long a child may take before the parent gives up; generous, as the machine may be shared.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(90);

    private readonly Process _process;
    private readonly List<string> _stdout = [];
    private readonly List<string> _stderr = [];
    private readonly TaskCompletionSource _stdoutClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Index of the first stdout line WaitForLine has not looked at yet: each line is a signal consumed once.
    private int _next;
    private bool _stdoutEnded;

    private ChildProcess(ProcessStartInfo start)
    {
        Command = string.Join(' ', new[] { start.FileName }.Concat(start.ArgumentList).Select(a => a.Contains(' ', StringComparison.Ordinal) || a.Length == 0 ? $"\"{a}\"" : a));
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) =>
        {
            lock (_stdout)
            {
                if (e.Data is null)
                {
                    _stdoutEnded = true;
                }
                else
                {
                    _stdout.Add(e.Data);
                }

                Monitor.PulseAll(_stdout);
            }

            if (e.Data is null)
            {
                _stdoutClosed.TrySetResult();
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _stderrClosed.TrySetResult();
                return;
            }

            lock (_stderr)
            {
                _stderr.Add(e.Data);
            }
        };
        if (!_process.Start())
        {
            throw new InvalidOperationException($"Could not start {Command}.");
        }

        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The command line, for messages.</summary>
    public string Command { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything the child wrote to stdout so far.</summary>
    public string Stdout
    {
        get
        {
            lock (_stdout)
            {
                return string.Join('\n', _stdout);
            }
        }
    }

    /// <summary>Everything the child wrote to stderr so far.</summary>
    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return string.Join('\n', _stderr);
            }
        }
    }

    /// <summary>The command, its exit status and both streams: what a failure message needs to be diagnosed.</summary>
    public string Output
    {
        get
        {
            var status = _process.HasExited ? $"exited with {_process.ExitCode}" : "still running";
            return new StringBuilder()
                .Append(Command).Append(" (pid ").Append(Pid).Append(", ").Append(status).AppendLine(")")
                .AppendLine("--- stdout").AppendLine(Stdout)
                .AppendLine("--- stderr").Append(Stderr)
                .ToString();
        }
    }

    /// <summary>The dotnet host the test runner itself uses, so children run on the same runtime.</summary>
    public static string DotnetHost =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    /// <summary>Starts <c>dotnet <paramref name="dll"/> <paramref name="args"/></c>.</summary>
    public static ChildProcess StartDotnet(string dll, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null)
    {
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException($"The child program was not built: {dll}", dll);
        }

        return Start(DotnetHost, [dll, .. args], environment);
    }

    /// <summary>Starts <paramref name="fileName"/> with stdin, stdout and stderr redirected.</summary>
    /// <param name="fileName">The executable.</param>
    /// <param name="args">Its arguments, passed as they are (no shell).</param>
    /// <param name="environment">Variables to set; a <see langword="null"/> value removes the variable.</param>
    public static ChildProcess Start(string fileName, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // Only the variables given here configure a child's metrics: tests that set Metrics__ variables on this process
        // (configuration tests) would otherwise hand a child running in parallel their settings, such as a plugins folder
        // deleted when that test ends.
        foreach (var inherited in start.Environment.Keys.Where(k => k.StartsWith("Metrics__", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(inherited);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            start.Environment[key] = value;
        }

        return new ChildProcess(start);
    }

    /// <summary>Runs <c>dotnet <paramref name="dll"/></c> to its end with stdin closed; returns its exit code and <see cref="Output"/>.</summary>
    public static (int ExitCode, string Output) RunDotnet(string dll, params string[] args)
    {
        using var child = StartDotnet(dll, args);
        child.CloseInput();
        var exitCode = child.WaitForExit();
        return (exitCode, child.Output);
    }

    /// <summary>
    /// Waits for the next stdout line that <paramref name="match"/> accepts (earlier lines are passed over) and returns it.
    /// Throws, with the child's output, when the child ends its output first or the timeout passes.
    /// </summary>
    public string WaitForLine(Func<string, bool> match, string description, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var deadline = Stopwatch.GetTimestamp() + (long)(limit.TotalSeconds * Stopwatch.Frequency);
        lock (_stdout)
        {
            while (true)
            {
                for (; _next < _stdout.Count; _next++)
                {
                    if (match(_stdout[_next]))
                    {
                        return _stdout[_next++];
                    }
                }

                if (_stdoutEnded)
                {
                    break;
                }

                var left = deadline - Stopwatch.GetTimestamp();
                if (left <= 0)
                {
                    throw new TimeoutException($"The child did not print {description} within {limit}.\n{Output}");
                }

                Monitor.Wait(_stdout, TimeSpan.FromSeconds((double)left / Stopwatch.Frequency));
            }
        }

        _process.WaitForExit();
        throw new InvalidOperationException($"The child ended its output without printing {description}.\n{Output}");
    }

    /// <summary>Waits for the next stdout line starting with <paramref name="prefix"/> and returns the rest of it, trimmed.</summary>
    public string WaitForLine(string prefix, TimeSpan? timeout = null) =>
        WaitForLine(l => l.StartsWith(prefix, StringComparison.Ordinal), $"a line starting with '{prefix}'", timeout)[prefix.Length..].Trim();

    /// <summary>Sends one line to the child's stdin.</summary>
    public void WriteLine(string line)
    {
        _process.StandardInput.WriteLine(line);
        _process.StandardInput.Flush();
    }

    /// <summary>Closes the child's stdin: a child that waits for its end finishes.</summary>
    public void CloseInput() => _process.StandardInput.Close();

    /// <summary>Waits for the child to exit and for its output to be read to the end; kills it and throws on timeout.</summary>
    public int WaitForExit(TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        if (!_process.WaitForExit(limit))
        {
            KillTree();
            throw new TimeoutException($"The child did not exit within {limit}; it was killed.\n{Output}");
        }

        // The exit is seen before the last lines are delivered; the streams' end is the signal that they all are.
        Task.WaitAll(_stdoutClosed.Task, _stderrClosed.Task);
        return _process.ExitCode;
    }

    /// <summary>Waits for the child to exit with 0 and returns its stdout; throws with its output otherwise.</summary>
    public string WaitForSuccess(TimeSpan? timeout = null)
    {
        var exitCode = WaitForExit(timeout);
        return exitCode == 0 ? Stdout : throw new InvalidOperationException($"The child failed.\n{Output}");
    }

    /// <summary>SIGKILL on Unix, to the child and everything it started: no handler, finalizer or exit hook runs.</summary>
    public void Kill()
    {
        KillTree();
        WaitForExit();
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            KillTree();
        }

        _process.WaitForExit();
        _process.Dispose();
    }

    private void KillTree()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // It exited between the check and the kill.
        }
    }
}
