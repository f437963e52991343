using System.Globalization;
using Metrics.Backends.Redis;
using Metrics.Tests;

namespace Metrics.Redis.Tests;

/// <summary>Series removal and the cardinality limit on Redis, with real child processes writing through Core.</summary>
public sealed class RemovalAndCardinalityTests(SharedRedis redis) : RedisTestBase
{
    private static readonly string WorkerDll = Path.Combine(AppContext.BaseDirectory, "Metrics.Redis.Worker.dll");

    private string Cs => redis.Server.ConnectionString;

    [Fact]
    public async Task A_removal_reaches_another_process_and_its_held_series_comes_back_from_zero()
    {
        var config = Config(Cs, "remover", ("FlushInterval", "100ms"));
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
        var held = new Counter(WorkerShapes.Held, "Series a holding process keeps.", ["i"], registry: registry);
        using var worker = ChildProcess.StartDotnet(WorkerDll, ["hold", Cs, Prefix]);
        worker.WaitForLine("ready");
        worker.WriteLine("inc");
        worker.WaitForLine("incremented");
        Assert.Contains("redis_held_total{i=\"0\"} 1", registry.Render(), StringComparison.Ordinal);

        // This process never created the series; the removal is applied with its next flush.
        Assert.False(held.Remove("0"));
        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);
        var text = registry.Render();
        Assert.DoesNotContain("i=\"0\"", text, StringComparison.Ordinal);
        Assert.Contains("redis_held_total{i=\"1\"} 1", text, StringComparison.Ordinal);
        worker.WriteLine("render");
        Assert.Equal("redis_held_total{i=\"1\"} 1", worker.WaitForLine("rendered"));

        // The other process still holds the removed series' child: its next update brings the series back from 0.
        worker.WriteLine("inc");
        worker.WaitForLine("incremented");
        text = registry.Render();
        Assert.Contains("redis_held_total{i=\"0\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("redis_held_total{i=\"1\"} 2", text, StringComparison.Ordinal);

        Assert.Equal(0, held.Clear());
        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);
        Assert.DoesNotContain("redis_held_total{", registry.Render(), StringComparison.Ordinal);
        worker.WriteLine("render");
        Assert.Equal(string.Empty, worker.WaitForLine("rendered"));
    }

    [Fact]
    public async Task Pending_updates_of_a_removed_series_are_not_sent_after_the_removal()
    {
        var config = Config(Cs, "pending", ("FlushInterval", "1h"));
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
        var counter = new Counter("redis_pending_total", "P.", ["k"], registry: registry);
        var child = counter.Labels("a");
        child.Inc(5);
        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);
        child.Inc(7);

        // The 7 is pending when the series is removed: it belongs to the removed series and is dropped.
        Assert.True(counter.Remove("a"));
        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);
        Assert.Empty(Collect(config, [counter.Family.Descriptor])[0]);

        child.Inc(2);
        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);
        Assert.Equal(2, Read(config, counter.Family.Descriptor, ["a"]));
    }

    [Fact]
    public void The_cardinality_limit_counts_the_series_of_every_process()
    {
        const int Limit = 50;
        const int Each = 30; // 60% of the limit per process
        using var first = ChildProcess.StartDotnet(WorkerDll, ["cardinality", Cs, Prefix, "one", Each.ToString(CultureInfo.InvariantCulture), Limit.ToString(CultureInfo.InvariantCulture)]);
        first.WaitForLine("created");
        using var second = ChildProcess.StartDotnet(WorkerDll, ["cardinality", Cs, Prefix, "two", Each.ToString(CultureInfo.InvariantCulture), Limit.ToString(CultureInfo.InvariantCulture)]);
        second.WaitForLine("created");

        var config = Config(Cs, "reader");
        var family = new MetricDescriptor(WorkerShapes.Card, "One of many series.", MetricType.Counter, ["worker", "i"]);
        var values = Collect(config, [family])[0];
        Assert.Equal(Limit + 1, values.Count);
        Assert.Equal(Each, values.Count(v => v.LabelValues[0] == "one"));
        Assert.Equal(Limit - Each, values.Count(v => v.LabelValues[0] == "two"));
        Assert.Equal((2 * Each) - Limit, values.Single(v => v.LabelValues[0] == Metric.OverflowLabelValue).Value);
    }
}
