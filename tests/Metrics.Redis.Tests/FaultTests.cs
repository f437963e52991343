using System.Diagnostics;
using Metrics.Backends.Redis;
using Metrics.Tests;

namespace Metrics.Redis.Tests;

// Shares a collection with the other tests that count dropped updates, a process-wide number.
[Collection(DroppedUpdatesCollection.Name)]
public sealed class FaultTests : RedisTestBase
{
    private const string Secret = "Pa55-w0rd-Never-Shown";
    private static readonly MetricDescriptor Counter = new("fault_total", "Counter.", MetricType.Counter, ["k"]);
    private static readonly MetricDescriptor Histogram = new("fault_seconds", "H.", MetricType.Histogram, ["k"], buckets: [1, double.PositiveInfinity]);

    [Fact]
    public void Redis_killed_and_restarted_keeps_exact_totals_no_update_throws_and_collect_fails_while_down()
    {
        using var server = RedisServer.Start(Secret);
        var config = Config(server.ConnectionString, extra: [("FlushInterval", "50ms"), ("OperationTimeout", "1s")]);
        var counter = new RedisBackend(config, Counter.WithLabelValues(["restart"]), null);
        var series = Histogram.WithLabelValues(["restart"]);
        var bucket = new RedisBackend(config, series, HistogramBucket.ForUpperBound(1));
        var sum = new RedisBackend(config, series, HistogramBucket.Sum);
        FlushOrFail(config);
        // This store's own count: the process-wide one also counts what other tests' stores drop meanwhile.
        var droppedBefore = RedisStore.Get(config).Flusher.Dropped;

        // The writer counts its updates and releases `reached` once it passes `target`: the test waits on updates
        // made in each phase (Redis up, down, back up) instead of on the clock.
        long updates = 0;
        long target = long.MaxValue;
        using var reached = new SemaphoreSlim(0);
        var failures = new List<Exception>();
        var running = true;
        var writer = new Thread(() =>
        {
            while (Volatile.Read(ref running))
            {
                try
                {
                    counter.Inc(1);
                    bucket.Inc(1);
                    sum.Inc(0.5);
                    Volatile.Write(ref updates, updates + 1);
                }
                catch (Exception ex)
                {
                    lock (failures)
                    {
                        failures.Add(ex);
                    }
                }

                if (updates >= Volatile.Read(ref target))
                {
                    Volatile.Write(ref target, long.MaxValue);
                    reached.Release();
                }

                if (updates % 64 == 0)
                {
                    Thread.Yield();
                }
            }
        });

        void WaitForMoreUpdates(int more, string phase)
        {
            Volatile.Write(ref target, Volatile.Read(ref updates) + more);
            if (!reached.Wait(TimeSpan.FromSeconds(60)))
            {
                lock (failures)
                {
                    Assert.Fail($"the writer did not make {more} updates {phase}; its failures: {string.Join("; ", failures)}");
                }
            }
        }

        writer.Start();
        WaitForMoreUpdates(1000, "while Redis was up");

        server.Kill();
        var down = Stopwatch.StartNew();
        var collectError = Assert.Throws<RedisBackendException>(() => Collect(config, [Counter]));
        Assert.Contains($"127.0.0.1:{server.Port}", collectError.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, collectError.Message, StringComparison.Ordinal);
        // Not a speed check: a scrape that waited on the dead server instead of failing would run far past this.
        Assert.True(down.Elapsed < TimeSpan.FromSeconds(30), $"a scrape with Redis down took {down.Elapsed}");
        WaitForMoreUpdates(1000, "while Redis was down");
        // A flush that fails while Redis is down must keep what it could not send, and updates keep coming after it.
        Assert.False(TryFlush(config, TimeSpan.FromSeconds(2)).Ok);
        WaitForMoreUpdates(1000, "after a failed flush");
        server.Restart();
        WaitForMoreUpdates(1000, "after Redis restarted");
        Volatile.Write(ref running, false);
        writer.Join();

        Assert.Empty(failures);
        FlushAfterRestart(config, server.Port);
        var reader = Config(server.ConnectionString, "reader");
        Assert.Equal(updates, Read(reader, Counter, ["restart"]));
        Assert.Equal(updates, Read(reader, Histogram, ["restart"], HistogramBucket.ForUpperBound(1)));
        Assert.Equal(updates * 0.5, Read(reader, Histogram, ["restart"], HistogramBucket.Sum));
        Assert.Equal(droppedBefore, RedisStore.Get(config).Flusher.Dropped);
    }

    [Fact]
    public void With_Redis_down_at_startup_nothing_blocks_or_throws_and_collect_fails_clearly()
    {
        // A port that accepts but never answers, with a connect timeout of a minute: startup and updates that waited
        // for the connection would take that minute, so returning well within it shows they never wait.
        using (var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            silent.Start(100);
            var silentPort = ((System.Net.IPEndPoint)silent.LocalEndpoint).Port;
            var waiting = Config($"127.0.0.1:{silentPort},password={Secret}", extra: ("ConnectTimeout", "60s"));
            var watch = Stopwatch.StartNew();
            RedisBackend.Initialize(waiting);
            var pending = new RedisBackend(waiting, Counter.WithLabelValues(["down"]), null);
            for (var i = 0; i < 1000; i++)
            {
                pending.Inc(1);
            }

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"startup with Redis unresponsive took {watch.Elapsed}: it waited for the connection");
            Assert.Equal(1000, pending.Get());
        }

        var port = FreePortNobodyListensOn();
        var config = Config($"127.0.0.1:{port},password={Secret}", extra: ("ConnectTimeout", "500ms"));
        RedisBackend.Initialize(config);
        var series = new RedisBackend(config, Counter.WithLabelValues(["down"]), null);
        series.Inc(1000);
        Assert.Equal(1000, series.Get());
        var error = Assert.Throws<RedisBackendException>(() => Collect(config, [Counter]));
        Assert.Contains("could not read metrics", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, error.Message, StringComparison.Ordinal);
        var flushError = TryFlush(config, TimeSpan.FromSeconds(2)).Error;
        Assert.NotNull(flushError);
        Assert.DoesNotContain(Secret, flushError!, StringComparison.Ordinal);
    }

    [Fact]
    public void Get_while_Redis_is_down_returns_the_last_stored_value_plus_unsent_updates_without_throwing()
    {
        using var server = RedisServer.Start(Secret);
        var config = Config(server.ConnectionString, extra: [("FlushInterval", "1h"), ("OperationTimeout", "1s")]);
        var other = Config(server.ConnectionString, "other", ("FlushInterval", "1h"));
        var series = new RedisBackend(config, Counter.WithLabelValues(["get-down"]), null);
        var elsewhere = new RedisBackend(other, Counter.WithLabelValues(["get-down"]), null);
        series.Inc(3);
        FlushOrFail(config);
        elsewhere.Inc(4);
        FlushOrFail(other);
        Assert.Equal(7, series.Get());

        server.Kill();
        series.Inc(2);
        var watch = Stopwatch.StartNew();
        Assert.Equal(9, series.Get());
        // Not a speed check: a Get that waited on the dead server instead of answering from memory would hang here.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"Get with Redis down took {watch.Elapsed}");

        server.Restart();
        FlushAfterRestart(config, server.Port, stores: 2);
        Assert.Equal(9, Read(Config(server.ConnectionString, "reader"), Counter, ["get-down"]));
        Assert.Equal(9, series.Get());
    }

    [Fact]
    public void Pending_series_beyond_the_bound_are_dropped_and_counted_while_Redis_is_down()
    {
        var config = Config($"127.0.0.1:{FreePortNobodyListensOn()}", extra: [("ConnectTimeout", "200ms"), ("MaxPendingSeries", "2"), ("FlushInterval", "1h")]);
        var values = Enumerable.Range(0, 5).Select(i => new RedisBackend(config, Counter.WithLabelValues([$"s{i}"]), null)).ToArray();
        foreach (var value in values)
        {
            value.Inc(1);
        }

        var before = RedisBackend.DroppedUpdates;
        // The first attempt takes two series into the batch it retries; of the three left, one is over the bound.
        Assert.NotNull(TryFlush(config, TimeSpan.FromSeconds(2)).Error);
        Assert.Equal(1, RedisStore.Get(config).Flusher.Dropped);

        // The process-wide count, which the statistic reports, took it in too (other tests' stores may add more).
        Assert.True(RedisBackend.DroppedUpdates - before >= 1, "metrics_backend_dropped_updates_total did not count the discarded series");
        Assert.Equal(4, values.Sum(v => v.Get()));
    }

    [Fact]
    public void Config_errors_name_the_key_and_never_show_the_secret()
    {
        static BackendConfig Make(params (string, string)[] values) =>
            new(values.Select(v => new KeyValuePair<string, string?>(v.Item1, v.Item2)));

        var interval = Assert.Throws<BackendConfigException>(() => RedisBackend.Initialize(Make(("FlushInterval", "often"))));
        Assert.Equal("Metrics:BackendConfig:FlushInterval", interval.Key);
        Assert.Contains("Metrics:BackendConfig:FlushInterval", interval.Message, StringComparison.Ordinal);

        var zero = Assert.Throws<BackendConfigException>(() => RedisBackend.Initialize(Make(("FlushInterval", "0s"))));
        Assert.Equal("Metrics:BackendConfig:FlushInterval", zero.Key);

        var bound = Assert.Throws<BackendConfigException>(() => RedisBackend.Initialize(Make(("MaxPendingSeries", "lots"))));
        Assert.Equal("Metrics:BackendConfig:MaxPendingSeries", bound.Key);

        var prefix = Assert.Throws<BackendConfigException>(() => RedisBackend.Initialize(Make(("KeyPrefix", "app{x}:"))));
        Assert.Equal("Metrics:BackendConfig:KeyPrefix", prefix.Key);

        var connection = Assert.Throws<BackendConfigException>(() =>
            RedisBackend.Initialize(Make(("ConnectionString", $"127.0.0.1:6379,notAnOption={Secret},password={Secret}"))));
        Assert.Equal("Metrics:BackendConfig:ConnectionString", connection.Key);
        Assert.DoesNotContain(Secret, connection.ToString(), StringComparison.Ordinal);

        var noEndpoint = Assert.Throws<BackendConfigException>(() => RedisBackend.Initialize(Make(("ConnectionString", $"password={Secret}"))));
        Assert.Equal("Metrics:BackendConfig:ConnectionString", noEndpoint.Key);
        Assert.DoesNotContain(Secret, noEndpoint.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_wrong_password_fails_the_scrape_without_showing_it()
    {
        using var server = RedisServer.Start(Secret);
        var config = Config($"127.0.0.1:{server.Port},password=Wr0ng-{Secret}", extra: ("ConnectTimeout", "1s"));
        var series = new RedisBackend(config, Counter.WithLabelValues(["auth"]), null);
        series.Inc(1);
        var error = Assert.Throws<RedisBackendException>(() => Collect(config, [Counter]));
        Assert.DoesNotContain(Secret, error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Data_lost_by_FLUSHALL_or_a_restart_without_persistence_is_counted_and_logged_as_a_reset()
    {
        using var server = RedisServer.Start(durable: false);
        var config = Config(server.ConnectionString, extra: ("FlushInterval", "1h"));
        var counter = new RedisBackend(config, Counter.WithLabelValues(["reset"]), null);
        static double Resets(BackendConfig c) => RedisBackend.Statistics(c).Single(s => s.Name == "metrics_backend_store_resets_total").Value;
        counter.Inc(5);
        FlushOrFail(config);
        counter.Inc(1);
        FlushOrFail(config);
        Assert.Equal(0, Resets(config));

        server.Command("FLUSHALL");
        counter.Inc(1);
        FlushOrFail(config);
        Assert.Equal(1, Resets(config));
        Assert.Equal(1, Read(config, Counter, ["reset"]));
        var logged = LogCapture.WaitFor($"Redis at 127.0.0.1:{server.Port} lost data it had stored", "'fault_total'");
        Assert.Contains("unless Redis persists them (appendonly yes)", logged, StringComparison.Ordinal);

        server.Restart();
        counter.Inc(2);
        FlushAfterRestart(config, server.Port);
        Assert.Equal(2, Resets(config));
        Assert.Equal(2, Read(config, Counter, ["reset"]));
        // A reset is data loss, not a dropped update: the two counters say different things.
        Assert.Equal(2, LogCapture.All($"Redis at 127.0.0.1:{server.Port} lost data it had stored").Length);
    }

    [Fact]
    public void A_restart_with_persistence_is_not_a_reset()
    {
        using var server = RedisServer.Start();
        var config = Config(server.ConnectionString, extra: ("FlushInterval", "1h"));
        var counter = new RedisBackend(config, Counter.WithLabelValues(["durable"]), null);
        counter.Inc(5);
        FlushOrFail(config);
        server.Restart();
        counter.Inc(1);
        FlushAfterRestart(config, server.Port);
        Assert.Equal(0, RedisBackend.Statistics(config).Single(s => s.Name == "metrics_backend_store_resets_total").Value);
        Assert.Equal(6, Read(config, Counter, ["durable"]));
    }

    /// <summary>
    /// Flushes once the backend has reconnected to the restarted server at <paramref name="port"/>: the plugin logs each
    /// restored connection, and a flush before that fails at once (fail-fast backlog). The line names the server, not
    /// the store, so with <paramref name="stores"/> stores connected to it, each one's line is awaited.
    /// </summary>
    private static void FlushAfterRestart(BackendConfig config, int port, int stores = 1)
    {
        LogCapture.WaitForCount(stores, $"the interactive connection to Redis at 127.0.0.1:{port} is restored");
        var (_, error) = TryFlush(config, TimeSpan.FromSeconds(10));
        Assert.True(error is null, $"no flush succeeded after the restart: {error}");
    }

    private static int FreePortNobodyListensOn() => RedisServer.FreeLoopbackPort();
}
