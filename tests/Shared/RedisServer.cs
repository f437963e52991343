using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Metrics.Tests;

/// <summary>
/// A real redis-server on a free 127.0.0.1 port with its own temporary directory, for the tests and the benchmarks.
/// A missing redis-server is an error, never a skip. Disposing stops the server and deletes the directory.
/// </summary>
internal sealed class RedisServer : IDisposable
{
    // What redis-server logs once it has loaded its data and listens; connections are refused or answered LOADING before.
    private const string ReadyLine = "Ready to accept connections";

    private ChildProcess? _process;

    private readonly IReadOnlyList<string> _extraArgs;

    private RedisServer(string? password, bool durable, IReadOnlyList<string>? extraArgs)
    {
        Password = password;
        Durable = durable;
        _extraArgs = extraArgs ?? [];
        Directory = Path.Combine(Path.GetTempPath(), "metrics-redis-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
        Port = FreeLoopbackPort();
    }

    public int Port { get; }

    /// <summary>The data directory, kept across <see cref="Restart"/>.</summary>
    public string Directory { get; }

    public string? Password { get; }

    /// <summary>
    /// Append-only with fsync on every write, so that a server killed and restarted keeps every write it acknowledged.
    /// Off for the benchmarks, which measure what the backend asks of Redis, not the disk.
    /// </summary>
    public bool Durable { get; }

    public string ConnectionString => Password is null ? $"127.0.0.1:{Port}" : $"127.0.0.1:{Port},password={Password}";

    /// <summary>The server's log so far (it logs to stdout), for failure messages.</summary>
    public string Log => _process?.Output ?? "(not running)";

    /// <summary>Starts a server and returns once it accepts connections.</summary>
    /// <param name="password">Set as <c>requirepass</c> when given.</param>
    /// <param name="durable">See <see cref="Durable"/>.</param>
    /// <param name="extraArgs">More redis-server arguments, such as <c>--replicaof 127.0.0.1 6379</c> or <c>--cluster-enabled yes</c>.</param>
    public static RedisServer Start(string? password = null, bool durable = true, IReadOnlyList<string>? extraArgs = null)
    {
        var server = new RedisServer(password, durable, extraArgs);
        try
        {
            server.Launch();
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>The full path of a Redis program (<c>redis-server</c>, <c>redis-cli</c>, <c>redis-benchmark</c>), or null.</summary>
    public static string? FindExecutable(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator)
            .Append("/usr/bin").Append("/usr/local/bin")
            .Where(d => d.Length > 0)
            .Select(d => Path.Combine(d, name))
            .FirstOrDefault(File.Exists);

    public static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Whether the server process runs (not killed).</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Kills the server abruptly (SIGKILL), as a crash would.</summary>
    public void Kill()
    {
        _process?.Kill();
        _process?.Dispose();
        _process = null;
    }

    /// <summary>Starts the server again on the same port and data directory.</summary>
    public void Restart()
    {
        Kill();
        Launch();
    }

    /// <summary>The fields of an <c>INFO</c> section (<c>server</c>, <c>stats</c>, <c>commandstats</c>, ...), as text.</summary>
    public Dictionary<string, string> Info(string section)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in Command("INFO", section).Split("\r\n"))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && !line.StartsWith('#'))
            {
                result[line[..colon]] = line[(colon + 1)..];
            }
        }

        return result;
    }

    /// <summary>One numeric field of <c>INFO stats</c>.</summary>
    public long Stat(string field) => long.Parse(Info("stats")[field], CultureInfo.InvariantCulture);

    /// <summary>Calls per command from <c>INFO commandstats</c> (<c>evalsha</c>, <c>hgetall</c>, and the calls scripts make).</summary>
    public Dictionary<string, long> CommandCalls()
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (key, value) in Info("commandstats"))
        {
            // cmdstat_hgetall:calls=3,usec=...
            var calls = value.Split(',')[0];
            result[key.Replace("cmdstat_", string.Empty, StringComparison.Ordinal)] = long.Parse(calls["calls=".Length..], CultureInfo.InvariantCulture);
        }

        return result;
    }

    /// <summary>The commands whose call counts changed between two <see cref="CommandCalls"/> readings.</summary>
    public static Dictionary<string, long> Delta(Dictionary<string, long> before, Dictionary<string, long> after) =>
        after.Select(kv => (kv.Key, Calls: kv.Value - before.GetValueOrDefault(kv.Key)))
            .Where(x => x.Calls != 0)
            .ToDictionary(x => x.Key, x => x.Calls, StringComparer.Ordinal);

    /// <summary>
    /// Sends one command on a fresh connection (authenticating first when there is a password) and returns the reply:
    /// a status or error line as it is, a bulk string's payload, an integer as text.
    /// </summary>
    public string Command(params string[] command)
    {
        using var client = new TcpClient();
        client.Connect(IPAddress.Loopback, Port);
        using var stream = new BufferedStream(client.GetStream());
        if (Password is not null)
        {
            Send(stream, ["AUTH", Password]);
            var auth = ReadReply(stream);
            if (auth != "+OK")
            {
                throw new IOException($"redis-server on 127.0.0.1:{Port} refused the password: {auth}");
            }
        }

        Send(stream, command);
        return ReadReply(stream);
    }

    public void Dispose()
    {
        Kill();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException ex)
        {
            Console.Error.WriteLine($"could not delete {Directory}: {ex.Message}");
        }
    }

    private static void Send(Stream stream, string[] command)
    {
        var text = new StringBuilder().Append('*').Append(command.Length).Append("\r\n");
        foreach (var part in command)
        {
            text.Append('$').Append(Encoding.UTF8.GetByteCount(part)).Append("\r\n").Append(part).Append("\r\n");
        }

        stream.Write(Encoding.UTF8.GetBytes(text.ToString()));
        stream.Flush();
    }

    private string ReadReply(Stream stream)
    {
        var header = ReadLine(stream);
        if (header.StartsWith(':'))
        {
            return header[1..];
        }

        if (!header.StartsWith('$'))
        {
            return header;
        }

        var length = int.Parse(header.AsSpan(1), CultureInfo.InvariantCulture);
        if (length < 0)
        {
            return string.Empty;
        }

        var payload = new byte[length + 2];
        stream.ReadExactly(payload);
        return Encoding.UTF8.GetString(payload, 0, length);
    }

    private string ReadLine(Stream stream)
    {
        var line = new List<byte>();
        while (true)
        {
            var b = stream.ReadByte();
            if (b < 0)
            {
                throw new IOException($"redis-server on 127.0.0.1:{Port} closed the connection before answering.\n{Log}");
            }

            if (b == '\n' && line.Count > 0 && line[^1] == '\r')
            {
                return Encoding.UTF8.GetString([.. line[..^1]]);
            }

            line.Add((byte)b);
        }
    }

    private void Launch()
    {
        var executable = FindExecutable("redis-server")
            ?? throw new InvalidOperationException(
                "redis-server was not found on PATH. The Redis tests and benchmarks need a real Redis server: install it (Debian/Ubuntu: 'apt-get install -y redis-server'; ./test.sh does it) and run them again.");
        List<string> args =
        [
            "--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--protected-mode", "yes", "--dir", Directory,
            "--save", string.Empty, "--daemonize", "no", "--logfile", string.Empty,
        ];
        args.AddRange(Durable ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]);
        if (Password is not null)
        {
            args.AddRange(["--requirepass", Password]);
        }

        args.AddRange(_extraArgs);
        _process = ChildProcess.Start(executable, args);
        try
        {
            _process.WaitForLine(l => l.Contains(ReadyLine, StringComparison.Ordinal), $"'{ReadyLine}'", TimeSpan.FromSeconds(30));
        }
        catch
        {
            Kill();
            throw;
        }
    }
}
