using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Metrics.Backends.Redis;
using Metrics.Tests;

namespace Metrics.Redis.Tests;

/// <summary>Messages that name the cause of a failure, and secrets that never reach a message.</summary>
[Collection(DroppedUpdatesCollection.Name)]
public sealed class ErrorMessageTests(ITestOutputHelper output) : RedisTestBase
{
    private static readonly MetricDescriptor Counter = new("errors_total", "Counter.", MetricType.Counter, ["k"]);

    [Fact]
    public void A_wrong_password_is_reported_as_refused_authentication_at_once()
    {
        const string secret = "Right-Pa55word";
        using var server = RedisServer.Start(secret);
        // A connect timeout of a minute: a cause found only when the connection attempt gives up would take that long.
        var config = Config($"127.0.0.1:{server.Port},password=Wrong-Pa55word", extra: ("ConnectTimeout", "60s"));
        new RedisBackend(config, Counter.WithLabelValues(["auth"]), null).Inc(1);
        var watch = Stopwatch.StartNew();
        var error = Assert.Throws<RedisBackendException>(() => Collect(config, [Counter]));
        output.WriteLine(error.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"the cause took {watch.Elapsed}: it was found only when the connect timed out");
        Assert.StartsWith($"The Redis backend could not read metrics from Redis at 127.0.0.1:{server.Port}: authentication refused by Redis at 127.0.0.1:{server.Port} (WRONGPASS", error.Message, StringComparison.Ordinal);
        Assert.Contains("Check Metrics:BackendConfig:Password", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Wrong-Pa55word", error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(secret, error.ToString(), StringComparison.Ordinal);

        var flush = TryFlush(config, TimeSpan.FromSeconds(3));
        Assert.Contains("authentication refused", flush.Error, StringComparison.Ordinal);
        var logged = LogCapture.WaitFor($"127.0.0.1:{server.Port}", "cannot write");
        output.WriteLine(logged);
        Assert.Contains("authentication refused", logged, StringComparison.Ordinal);
    }

    [Fact]
    public void A_command_the_client_abandoned_is_reported_as_a_transport_fault_that_is_retried()
    {
        // StackExchange.Redis cancels the tasks of commands whose connection it closed (a killed master): that is not
        // a caller's cancellation, and the flusher keeps running and sends the round again.
        var settings = RedisStore.Get(Config("127.0.0.1:1", extra: ("ConnectTimeout", "1s"))).Settings;
        var cause = RedisDiagnosis.Describe(settings, new TaskCanceledException());
        Assert.Equal("the client abandoned the command when its connection was closed or reset (a node stopped or failed over); it is sent again", cause);
    }

    [Fact]
    public void A_missing_password_is_reported_as_NOAUTH()
    {
        using var server = RedisServer.Start("Some-Pa55word");
        var config = Config($"127.0.0.1:{server.Port}");
        var error = Assert.Throws<RedisBackendException>(() => Collect(config, [Counter]));
        output.WriteLine(error.Message);
        Assert.Contains("authentication required (NOAUTH)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_refused_port_is_reported_as_refused_at_once()
    {
        var port = RedisServer.FreeLoopbackPort();
        // A connect timeout of a minute: a cause found only when the connection attempt gives up would take that long.
        var config = Config($"127.0.0.1:{port}", extra: ("ConnectTimeout", "60s"));
        var watch = Stopwatch.StartNew();
        var error = Assert.Throws<RedisBackendException>(() => Collect(config, [Counter]));
        output.WriteLine(error.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"the cause took {watch.Elapsed}: it was found only when the connect timed out");
        Assert.Equal(
            $"The Redis backend could not read metrics from Redis at 127.0.0.1:{port}: connection refused by 127.0.0.1:{port}: nothing listens on that port. " +
            "Check that redis-server runs there and that host and port in Metrics:BackendConfig:ConnectionString are right.",
            error.Message);
    }

    [Fact]
    public void A_host_that_never_answers_the_connect_is_reported_as_a_timeout()
    {
        // Loopback has no unreachable hosts; a listener whose accept queue is full drops further SYNs, which is what
        // a host behind a dropping firewall looks like to the client.
        using var blackHole = BlackHole.Start();
        var config = Config($"127.0.0.1:{blackHole.Port}", extra: [("ConnectTimeout", "1s"), ("OperationTimeout", "4s")]);
        var error = Assert.Throws<RedisBackendException>(() => Collect(config, [Counter]));
        output.WriteLine(error.Message);
        Assert.Equal(
            $"The Redis backend could not read metrics from Redis at 127.0.0.1:{blackHole.Port}: no answer from 127.0.0.1:{blackHole.Port} within ConnectTimeout (1000 ms): " +
            "the host is down or unreachable, or a firewall drops the connection. Check the address in Metrics:BackendConfig:ConnectionString and the firewall, or raise ConnectTimeout for a slow network.",
            error.Message);
    }

    [Fact]
    public void A_port_that_accepts_but_never_answers_is_reported_as_not_Redis_or_overloaded()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start(100);
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var config = Config($"127.0.0.1:{port}", extra: [("ConnectTimeout", "1s"), ("OperationTimeout", "4s")]);
        var error = Assert.Throws<RedisBackendException>(() => Collect(config, [Counter]));
        output.WriteLine(error.Message);
        Assert.Contains($"127.0.0.1:{port} accepted the connection but did not answer within ConnectTimeout (1000 ms)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Writing_to_a_read_only_replica_is_reported_as_READONLY()
    {
        using var master = RedisServer.Start(durable: false);
        using var replica = RedisServer.Start(durable: false, extraArgs: ["--replicaof", "127.0.0.1", master.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        var config = Config($"127.0.0.1:{replica.Port}");
        new RedisBackend(config, Counter.WithLabelValues(["replica"]), null).Inc(1);
        var flush = TryFlush(config, TimeSpan.FromSeconds(3));
        output.WriteLine(flush.Error ?? "(flushed)");
        Assert.Contains("READONLY", flush.Error, StringComparison.Ordinal);
        Assert.Contains("read-only replica", flush.Error, StringComparison.Ordinal);
    }

    public static TheoryData<string, bool> Passwords => new()
    {
        { "abc,def", false },
        { "abc,def", true },
        { "a=b c", false },
        { "a=b c", true },
        { "x", false },
        { "x", true },
        { "pässwört-密码-🔑", false },
        { "pässwört-密码-🔑", true },
        { "Redis", false },
        { "Redis", true },
    };

    [Theory]
    [MemberData(nameof(Passwords))]
    public void Any_password_works_and_never_shows(string password, bool inConnectionString)
    {
        using var server = RedisServer.Start(password, durable: false);
        var config = inConnectionString
            ? Config($"127.0.0.1:{server.Port},password={password}")
            : Config($"127.0.0.1:{server.Port}", extra: ("Password", password));
        var settings = RedisStore.Get(config).Settings;
        Assert.Single(settings.Options.EndPoints);
        Assert.Equal(password, settings.Options.Password);
        var series = new RedisBackend(config, Counter.WithLabelValues(["pw"]), null);
        series.Inc(5);
        FlushOrFail(config);
        Assert.Equal(5, Read(Config($"127.0.0.1:{server.Port}", "reader", ("Password", password)), Counter, ["pw"]));

        // The same password with one more character is refused: the message names the cause and is the same text as
        // for any other password, so masking neither garbled it nor left gaps that spell the password.
        var wrong = password + "9";
        var refused = inConnectionString
            ? Config($"127.0.0.1:{server.Port},password={wrong}", "wrong")
            : Config($"127.0.0.1:{server.Port}", "wrong", ("Password", wrong));
        var error = Assert.Throws<RedisBackendException>(() => Collect(refused, [Counter]));
        Assert.Equal(
            $"The Redis backend could not read metrics from Redis at 127.0.0.1:{server.Port}: authentication refused by Redis at 127.0.0.1:{server.Port} " +
            "(WRONGPASS: the user name and password do not match the server's). Check Metrics:BackendConfig:Password (or password= in ConnectionString).",
            error.Message);
    }

    [Fact]
    public void Masking_replaces_whole_values_never_parts_of_words()
    {
        Assert.Equal("was *** and a cat", RedisSettings.Scrub("was x and a cat", ["x"]));
        Assert.Equal("index: ***, next", RedisSettings.Scrub("index: a, next", ["a"]));
        Assert.Equal("pair *** = ***", RedisSettings.Scrub("pair abc,def = abc,def", ["abc,def"]));
        Assert.Equal("Redisson ***.", RedisSettings.Scrub("Redisson Redis.", ["Redis"]));
        Assert.Equal("key ***!", RedisSettings.Scrub("key pässwört-密码-🔑!", ["pässwört-密码-🔑"]));
    }

    [Fact]
    public void A_password_in_the_connection_string_keeps_its_commas_and_equals_signs()
    {
        Assert.Equal(("h:1,ssl=false", "abc,def"), RedisSettings.ExtractPassword("h:1,password=abc,def,ssl=false"));
        Assert.Equal(("h:1", "a=b,c=d e"), RedisSettings.ExtractPassword("h:1,password=a=b,c=d e"));
        Assert.Equal(("h:1,name=x", "p"), RedisSettings.ExtractPassword("h:1,password=p,name=x"));
        Assert.Equal(("h:1", null), RedisSettings.ExtractPassword("h:1"));
    }

    /// <summary>A listener whose accept queue is full: further connection attempts get no answer and time out.</summary>
    private sealed class BlackHole : IDisposable
    {
        private readonly Socket _listener;
        private readonly List<Socket> _fillers = [];

        private BlackHole(Socket listener) => _listener = listener;

        public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

        public static BlackHole Start()
        {
            var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(0);
            var hole = new BlackHole(listener);
            // Fill the queue until an attempt gets no answer: from then on the port drops every SYN.
            for (var i = 0; i < 16; i++)
            {
                var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                hole._fillers.Add(filler);
                using var attempt = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
                try
                {
                    filler.ConnectAsync(IPAddress.Loopback, hole.Port, attempt.Token).AsTask().GetAwaiter().GetResult();
                }
                catch (OperationCanceledException)
                {
                    return hole;
                }
            }

            hole.Dispose();
            throw new InvalidOperationException("the listen queue never filled; the kernel accepts more than its backlog");
        }

        public void Dispose()
        {
            foreach (var filler in _fillers)
            {
                filler.Dispose();
            }

            _listener.Dispose();
        }
    }
}

/// <summary>Collects every BackendLog message of the test process, so tests can check what the backend reported.</summary>
internal static class LogCapture
{
    private static readonly ConcurrentQueue<string> Messages = new();
    private static int s_installed;

    public static void Install()
    {
        if (Interlocked.Exchange(ref s_installed, 1) == 0)
        {
            // Tests run in parallel and share the per-backend rate limit; none of them may be silenced by another.
            BackendLog.MaxMessagesPerMinute = 0;
            BackendLog.Handler = (_, _, message, _) => Messages.Enqueue(message);
        }
    }

    /// <summary>The first message containing every one of <paramref name="parts"/>, waiting up to 20 s for it.</summary>
    public static string WaitFor(params string[] parts)
    {
        Install();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        using var tick = new ManualResetEventSlim();
        while (true)
        {
            var found = Messages.FirstOrDefault(m => parts.All(p => m.Contains(p, StringComparison.Ordinal)));
            if (found is not null)
            {
                return found;
            }

            Assert.True(DateTime.UtcNow < deadline, $"no backend log message contains {string.Join(" and ", parts)}; logged: {string.Join(" | ", Messages)}");
            tick.Wait(20);
        }
    }

    /// <summary>Waits until at least <paramref name="count"/> messages contain every one of <paramref name="parts"/>.</summary>
    public static void WaitForCount(int count, params string[] parts)
    {
        Install();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        using var tick = new ManualResetEventSlim();
        while (Messages.Count(m => parts.All(p => m.Contains(p, StringComparison.Ordinal))) < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"fewer than {count} backend log messages contain {string.Join(" and ", parts)}; logged: {string.Join(" | ", Messages)}");
            tick.Wait(20);
        }
    }

    /// <summary>Every message so far containing <paramref name="part"/>.</summary>
    public static string[] All(string part)
    {
        Install();
        return [.. Messages.Where(m => m.Contains(part, StringComparison.Ordinal))];
    }
}

/// <summary>Tests whose stores shut down with unsent updates, or that assert on the process-wide dropped count, run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class DroppedUpdatesCollection
{
    public const string Name = "dropped updates";
}
