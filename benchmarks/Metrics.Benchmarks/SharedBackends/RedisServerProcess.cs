using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Metrics.Benchmarks.SharedBackends;

/// <summary>
/// A real redis-server on a free 127.0.0.1 port with its own temporary directory, stopped and deleted on dispose.
/// Persistence is off: the benchmarks measure what the backend asks of Redis, not the disk.
/// </summary>
internal sealed class RedisServerProcess : IDisposable
{
    private readonly Process _process;

    private RedisServerProcess(Process process, int port, string directory)
    {
        _process = process;
        Port = port;
        Directory = directory;
    }

    public int Port { get; }

    public string Directory { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    public static string? FindExecutable(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Append("/usr/bin").Append("/usr/local/bin")
            .Select(d => Path.Combine(d, name))
            .FirstOrDefault(File.Exists);

    public static RedisServerProcess Start()
    {
        var executable = FindExecutable("redis-server")
            ?? throw new InvalidOperationException("redis-server was not found on PATH. The Redis benchmarks need a real server: install it (Debian/Ubuntu: 'apt-get install -y redis-server').");
        var directory = Path.Combine(Path.GetTempPath(), "metrics-bench-redis-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(directory);
        var port = Peers.FreeLoopbackPort();
        var start = new ProcessStartInfo(executable) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[]
        {
            "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--protected-mode", "yes", "--dir", directory,
            "--appendonly", "no", "--save", "", "--daemonize", "no", "--logfile", Path.Combine(directory, "redis.log"),
        })
        {
            start.ArgumentList.Add(arg);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start.");
        var server = new RedisServerProcess(process, port, directory);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            if (process.HasExited)
            {
                var log = Path.Combine(directory, "redis.log");
                throw new InvalidOperationException($"redis-server exited with {process.ExitCode}: {(File.Exists(log) ? File.ReadAllText(log) : "")}");
            }

            try
            {
                if (server.Command("PING").StartsWith("+PONG", StringComparison.Ordinal))
                {
                    return server;
                }
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                // Still starting.
            }

            Thread.Sleep(20);
        }
    }

    /// <summary>The numeric fields of an <c>INFO</c> section (<c>stats</c>, <c>commandstats</c>, ...), as text.</summary>
    public Dictionary<string, string> Info(string section)
    {
        var reply = Command("INFO " + section);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in reply.Split("\r\n"))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && !line.StartsWith('#'))
            {
                result[line[..colon]] = line[(colon + 1)..];
            }
        }

        return result;
    }

    public long Stat(string field) => long.Parse(Info("stats")[field], CultureInfo.InvariantCulture);

    /// <summary>Calls per command from <c>INFO commandstats</c> (<c>evalsha</c>, <c>hgetall</c>, and the calls scripts make).</summary>
    public Dictionary<string, long> CommandCalls()
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (key, value) in Info("commandstats"))
        {
            // cmdstat_hgetall:calls=3,usec=...
            var calls = value.Split(',')[0];
            result[key.Replace("cmdstat_", "", StringComparison.Ordinal)] = long.Parse(calls["calls=".Length..], CultureInfo.InvariantCulture);
        }

        return result;
    }

    public static Dictionary<string, long> Delta(Dictionary<string, long> before, Dictionary<string, long> after) =>
        after.Select(kv => (kv.Key, Calls: kv.Value - before.GetValueOrDefault(kv.Key)))
            .Where(x => x.Calls != 0)
            .ToDictionary(x => x.Key, x => x.Calls, StringComparer.Ordinal);

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }

        _process.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException ex)
        {
            Console.Error.WriteLine($"could not delete {Directory}: {ex.Message}");
        }
    }

    /// <summary>Sends one inline command on a fresh connection and returns the raw reply (a bulk string's payload, or the status line).</summary>
    private string Command(string inline)
    {
        using var client = new TcpClient();
        client.Connect(IPAddress.Loopback, Port);
        using var stream = client.GetStream();
        stream.Write(Encoding.ASCII.GetBytes(inline + "\r\n"));
        var buffer = new MemoryStream();
        var chunk = new byte[64 * 1024];
        while (true)
        {
            var read = stream.Read(chunk);
            if (read == 0)
            {
                break;
            }

            buffer.Write(chunk, 0, read);
            var text = Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
            if (text[0] != '$')
            {
                if (text.EndsWith("\r\n", StringComparison.Ordinal))
                {
                    return text;
                }

                continue;
            }

            var header = text.IndexOf("\r\n", StringComparison.Ordinal);
            if (header > 0)
            {
                var length = int.Parse(text.AsSpan(1, header - 1), CultureInfo.InvariantCulture);
                if (buffer.Length >= header + 2 + length + 2)
                {
                    return Encoding.UTF8.GetString(buffer.GetBuffer(), header + 2, length);
                }
            }
        }

        throw new IOException($"redis-server on 127.0.0.1:{Port} closed the connection before answering '{inline}'.");
    }
}
