using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Metrics.Redis.Tests;

/// <summary>
/// A real redis-server on a free loopback port, with its own data directory. Append-only with fsync on every write,
/// so a server killed and restarted on the same directory keeps every write it acknowledged.
/// </summary>
public sealed class RedisServer : IDisposable
{
    private Process? _process;

    private RedisServer(string? password)
    {
        Password = password;
        Directory = Path.Combine(Path.GetTempPath(), "metrics-redis-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
        Port = FreePort();
    }

    public int Port { get; }

    public string Directory { get; }

    public string? Password { get; }

    public string ConnectionString => Password is null ? $"127.0.0.1:{Port}" : $"127.0.0.1:{Port},password={Password}";

    public static RedisServer Start(string? password = null)
    {
        var server = new RedisServer(password);
        server.Launch();
        return server;
    }

    /// <summary>Kills the server abruptly (SIGKILL), as a crash would.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill();
            p.WaitForExit();
        }

        _process?.Dispose();
        _process = null;
    }

    /// <summary>Starts the server again on the same port and data directory.</summary>
    public void Restart()
    {
        Kill();
        Launch();
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

    private static string FindExecutable()
    {
        var candidates = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Append("/usr/bin").Append("/usr/local/bin")
            .Select(d => Path.Combine(d, "redis-server"));
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException(
                "redis-server was not found on PATH. These tests need a real Redis server: install it (Debian/Ubuntu: 'apt-get install -y redis-server') and run them again.");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void Launch()
    {
        var start = new ProcessStartInfo(FindExecutable())
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in new[]
        {
            "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", Directory,
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
            "--logfile", Path.Combine(Directory, "redis.log"),
        })
        {
            start.ArgumentList.Add(arg);
        }

        if (Password is not null)
        {
            start.ArgumentList.Add("--requirepass");
            start.ArgumentList.Add(Password);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start");
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            if (_process.HasExited)
            {
                var log = Path.Combine(Directory, "redis.log");
                throw new InvalidOperationException($"redis-server exited with {_process.ExitCode}: {(File.Exists(log) ? File.ReadAllText(log) : _process.StandardError.ReadToEnd())}");
            }

            if (Answers())
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"redis-server did not answer on 127.0.0.1:{Port} within 20 s");
            }

            Thread.Sleep(20);
        }
    }

    // Redis accepts connections only once it has loaded its data, so an answer to PING (PONG, or NOAUTH with a password)
    // means it is ready.
    private bool Answers()
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, Port);
            var stream = client.GetStream();
            stream.Write("PING\r\n"u8);
            var buffer = new byte[64];
            return stream.Read(buffer) > 0;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}

/// <summary>One server shared by the tests that do not stop it; each test isolates itself with its own key prefix.</summary>
public sealed class SharedRedis : IDisposable
{
    public RedisServer Server { get; } = RedisServer.Start();

    public void Dispose() => Server.Dispose();
}
