using System.Diagnostics;
using Metrics.Backends.Redis;

namespace Metrics.Redis.Tests;

public sealed class FaultTests : RedisTestBase
{
    private const string Secret = "Pa55-w0rd-Never-Shown";
    private static readonly MetricDescriptor Counter = new("fault_total", "Counter.", MetricType.Counter, ["k"]);
    private static readonly MetricDescriptor Histogram = new("fault_seconds", "H.", MetricType.Histogram, ["k"], buckets: [1, double.PositiveInfinity]);

    [Fact]
    public void RedisKilledAndRestarted_TotalsExact_NoUpdateThrew_CollectFailsWhileDown()
    {
        using var server = RedisServer.Start(Secret);
        var config = Config(server.ConnectionString, extra: [("FlushInterval", "50ms"), ("OperationTimeout", "1s")]);
        var counter = new RedisBackend(config, Counter.WithLabelValues(["restart"]), null);
        var series = Histogram.WithLabelValues(["restart"]);
        var bucket = new RedisBackend(config, series, HistogramBucket.ForUpperBound(1));
        var sum = new RedisBackend(config, series, HistogramBucket.Sum);
        FlushOrFail(config);
        var droppedBefore = RedisBackend.DroppedUpdates;

        long updates = 0;
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
                    updates++;
                }
                catch (Exception ex)
                {
                    lock (failures)
                    {
                        failures.Add(ex);
                    }
                }

                if (updates % 64 == 0)
                {
                    Thread.Yield();
                }
            }
        });
        writer.Start();
        Thread.Sleep(500);

        server.Kill();
        var down = Stopwatch.StartNew();
        var collectError = Assert.Throws<RedisBackendException>(() => Collect(config, [Counter]));
        Assert.Contains($"127.0.0.1:{server.Port}", collectError.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, collectError.Message, StringComparison.Ordinal);
        Assert.True(down.Elapsed < TimeSpan.FromSeconds(5), $"a scrape with Redis down took {down.Elapsed}");
        Thread.Sleep(3000);
        server.Restart();
        Thread.Sleep(500);
        Volatile.Write(ref running, false);
        writer.Join();

        Assert.Empty(failures);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string? error;
        while ((error = TryFlush(config, TimeSpan.FromSeconds(5)).Error) is not null && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(200);
        }

        Assert.True(error is null, $"no flush succeeded after the restart: {error}");
        Assert.True(updates > 1000, $"only {updates} updates were made");
        var reader = Config(server.ConnectionString, "reader");
        Assert.Equal(updates, Read(reader, Counter, ["restart"]));
        Assert.Equal(updates, Read(reader, Histogram, ["restart"], HistogramBucket.ForUpperBound(1)));
        Assert.Equal(updates * 0.5, Read(reader, Histogram, ["restart"], HistogramBucket.Sum));
        Assert.Equal(droppedBefore, RedisBackend.DroppedUpdates);
    }

    [Fact]
    public void RedisDownAtStartup_NothingBlocksOrThrows_CollectFailsClearly()
    {
        var port = FreePortNobodyListensOn();
        var config = Config($"127.0.0.1:{port},password={Secret}", extra: ("ConnectTimeout", "500ms"));
        var watch = Stopwatch.StartNew();
        RedisBackend.Initialize(config);
        var series = new RedisBackend(config, Counter.WithLabelValues(["down"]), null);
        for (var i = 0; i < 1000; i++)
        {
            series.Inc(1);
        }

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"startup with Redis down took {watch.Elapsed}");
        Assert.Equal(1000, series.Get());
        var error = Assert.Throws<RedisBackendException>(() => Collect(config, [Counter]));
        Assert.Contains("could not read metrics", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, error.Message, StringComparison.Ordinal);
        var flushError = TryFlush(config, TimeSpan.FromSeconds(2)).Error;
        Assert.NotNull(flushError);
        Assert.DoesNotContain(Secret, flushError!, StringComparison.Ordinal);
    }

    [Fact]
    public void Get_WhileRedisIsDown_ReturnsTheLastStoredValuePlusUnsentUpdates_WithoutThrowing()
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
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"Get with Redis down took {watch.Elapsed}");

        server.Restart();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (TryFlush(config, TimeSpan.FromSeconds(5)).Error is not null && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(200);
        }

        Assert.Equal(9, Read(Config(server.ConnectionString, "reader"), Counter, ["get-down"]));
        Assert.Equal(9, series.Get());
    }

    [Fact]
    public void PendingSeriesBeyondTheBound_AreDroppedAndCounted_WhileRedisIsDown()
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
        Assert.Equal(1, RedisBackend.DroppedUpdates - before);
        Assert.Equal(4, values.Sum(v => v.Get()));
    }

    [Fact]
    public void ConfigErrors_NameTheKey_AndNeverShowTheSecret()
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
            RedisBackend.Initialize(Make(("ConnectionString", $"127.0.0.1:6379,password={Secret},notAnOption={Secret}"))));
        Assert.Equal("Metrics:BackendConfig:ConnectionString", connection.Key);
        Assert.DoesNotContain(Secret, connection.ToString(), StringComparison.Ordinal);

        var noEndpoint = Assert.Throws<BackendConfigException>(() => RedisBackend.Initialize(Make(("ConnectionString", $"password={Secret}"))));
        Assert.Equal("Metrics:BackendConfig:ConnectionString", noEndpoint.Key);
        Assert.DoesNotContain(Secret, noEndpoint.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void WrongPassword_FailsTheScrape_WithoutShowingIt()
    {
        using var server = RedisServer.Start(Secret);
        var config = Config($"127.0.0.1:{server.Port},password=Wr0ng-{Secret}", extra: ("ConnectTimeout", "1s"));
        var series = new RedisBackend(config, Counter.WithLabelValues(["auth"]), null);
        series.Inc(1);
        var error = Assert.Throws<RedisBackendException>(() => Collect(config, [Counter]));
        Assert.DoesNotContain(Secret, error.ToString(), StringComparison.Ordinal);
    }

    private static int FreePortNobodyListensOn()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
