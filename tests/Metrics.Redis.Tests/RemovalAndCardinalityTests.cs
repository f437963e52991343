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
    public async Task A_removal_drops_the_exemplars_every_process_stored()
    {
        var config = Config(Cs, "remover", ("FlushInterval", "100ms"));
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
        var held = new Counter(WorkerShapes.Held, "Series a holding process keeps.", ["i"], registry: registry);
        var mine = held.Labels("1");
        using var worker = ChildProcess.StartDotnet(WorkerDll, ["hold", Cs, Prefix]);
        worker.WaitForLine("ready");
        worker.WriteLine("exemplar child_old");
        worker.WaitForLine("recorded");
        mine.Inc(1, Exemplar.Of("trace_id", "parent_old"));
        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);
        var om = registry.Render(ExpositionFormat.OpenMetrics);
        Assert.Contains("redis_held_total{i=\"0\"} 1 # {trace_id=\"child_old\"} 1 ", om, StringComparison.Ordinal);
        Assert.Contains("redis_held_total{i=\"1\"} 1 # {trace_id=\"parent_old\"} 1 ", om, StringComparison.Ordinal);
        worker.WriteLine("render-om");
        Assert.Contains("parent_old", worker.WaitForLine("rendered-om"), StringComparison.Ordinal);

        // Both processes update the removed series again, without exemplars: they come back from 0 with none, in both
        // processes' scrapes (the child keeps its own exemplar's copy no longer than Redis holds it).
        Assert.Equal(1, held.Clear());
        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);
        worker.WriteLine("inc");
        worker.WaitForLine("incremented");
        mine.Inc();
        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);
        om = registry.Render(ExpositionFormat.OpenMetrics);
        Assert.Contains("redis_held_total{i=\"0\"} 1\n", om, StringComparison.Ordinal);
        Assert.Contains("redis_held_total{i=\"1\"} 2\n", om, StringComparison.Ordinal);
        Assert.DoesNotContain("_old", om, StringComparison.Ordinal);
        worker.WriteLine("render-om");
        var theirs = worker.WaitForLine("rendered-om");
        Assert.Contains("redis_held_total{i=\"0\"} 1", theirs.Split(" | "));
        Assert.Contains("redis_held_total{i=\"1\"} 2", theirs.Split(" | "));
        Assert.DoesNotContain("_old", theirs, StringComparison.Ordinal);

        // A new exemplar after the removal is stored and seen by both processes.
        worker.WriteLine("exemplar child_new");
        worker.WaitForLine("recorded");
        Assert.Contains("redis_held_total{i=\"0\"} 2 # {trace_id=\"child_new\"} 1 ", registry.Render(ExpositionFormat.OpenMetrics), StringComparison.Ordinal);
    }

    [Fact]
    public void Overflows_of_every_process_are_summed_and_the_limit_holds_across_processes()
    {
        const string Overflow = "metrics_cardinality_overflow_total{metric=\"redis_card_total\"}";

        // 30 label sets, then 40 in another process: 20 of those are refused.
        using var one = ChildProcess.StartDotnet(WorkerDll, ["overflow", Cs, Prefix, "one", "30", "50"]);
        one.WaitForLine("created");
        using var two = ChildProcess.StartDotnet(WorkerDll, ["overflow", Cs, Prefix, "two", "40", "50"]);
        two.WaitForLine("created");

        // This process refused nothing, nor did the first one: both show the other process's count from Redis.
        var config = Config(Cs, "reader");
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
        _ = new Counter(WorkerShapes.Card, "One of many series.", ["worker", "i"], registry: registry) { CardinalityLimit = 50 };
        var text = registry.Render();
        Assert.Contains(Overflow + " 20\n", text, StringComparison.Ordinal);
        Assert.Equal(51, text.Split('\n').Count(l => l.StartsWith(WorkerShapes.Card + "{", StringComparison.Ordinal)));
        one.WriteLine("render");
        Assert.Equal(Overflow + " 20", one.WaitForLine("rendered"));

        // The first process is at the shared limit too: its 5 new label sets are refused, and the counts add up.
        one.WriteLine("more 5");
        one.WaitForLine("created");
        text = registry.Render();
        Assert.Contains(Overflow + " 25\n", text, StringComparison.Ordinal);
        Assert.Contains(WorkerShapes.Card + "{worker=\"__overflow__\",i=\"__overflow__\"} 25\n", text, StringComparison.Ordinal);
        Assert.Equal(51, text.Split('\n').Count(l => l.StartsWith(WorkerShapes.Card + "{", StringComparison.Ordinal)));
        two.WriteLine("render");
        Assert.Equal(Overflow + " 25", two.WaitForLine("rendered"));
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
    public async Task A_series_whose_label_values_are_not_ascii_is_removed_in_redis()
    {
        var config = Config(Cs, "unicode", ("FlushInterval", "1h"));
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
        var counter = new Counter("redis_unicode_removed_total", "U.", ["k"], registry: registry);
        var gauge = new Gauge("redis_unicode_removed_live", "U.", ["k"], registry: registry, aggregation: GaugeAggregation.LiveSum);
        counter.Labels("café ☕").Inc(5);
        counter.Labels("cafe").Inc(1);
        gauge.Labels("café ☕").Set(5);
        gauge.Labels("cafe").Set(1);
        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);

        Assert.True(counter.Remove("café ☕"));
        Assert.True(gauge.Remove("café ☕"));
        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);

        // Read by another process's store: only what Redis holds.
        var reader = Config(Cs, "unicode-reader");
        var values = Collect(reader, [counter.Family.Descriptor, gauge.Family.Descriptor]);
        Assert.Equal("cafe", Assert.Single(values[0]).LabelValues[0]);
        Assert.Equal("cafe", Assert.Single(values[1]).LabelValues[0]);
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

    [Fact]
    public async Task A_process_that_never_scrapes_is_refused_past_the_limit_other_processes_reached()
    {
        const string Overflow = "metrics_cardinality_overflow_total{metric=\"redis_card_total\"}";

        // 30 and 20 label sets in two processes that never scrape either: the limit's worth of series.
        using var one = ChildProcess.StartDotnet(WorkerDll, ["writer", Cs, Prefix, "counter", "one", "30", "50"]);
        one.WaitForLine("created");
        using var two = ChildProcess.StartDotnet(WorkerDll, ["writer", Cs, Prefix, "counter", "two", "20", "50"]);
        two.WaitForLine("created");

        // A third that never scrapes knows them from its first new label set on: all 10 go to the overflow series.
        using var writer = ChildProcess.StartDotnet(WorkerDll, ["writer", Cs, Prefix, "counter", "w", "10", "50"]);
        writer.WaitForLine("created");
        var config = Config(Cs, "reader");
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
        var counter = new Counter(WorkerShapes.Card, "One of many series.", ["worker", "i"], registry: registry) { CardinalityLimit = 50 };
        var text = registry.Render();
        Assert.Contains(Overflow + " 10\n", text, StringComparison.Ordinal);
        Assert.Contains(WorkerShapes.Card + "{worker=\"__overflow__\",i=\"__overflow__\"} 10\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("worker=\"w\"", text, StringComparison.Ordinal);
        Assert.Equal(51, CardLines(text));

        // Removed series stop counting: after 5 removals (read by the writer's next flush) its 5 new label sets fit, a sixth does not.
        for (var i = 0; i < 5; i++)
        {
            Assert.False(counter.Remove("one", i.ToString(CultureInfo.InvariantCulture)));
        }

        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);
        writer.WriteLine("more 5");
        writer.WaitForLine("created");
        text = registry.Render();
        Assert.Equal(5, text.Split('\n').Count(l => l.StartsWith(WorkerShapes.Card + "{worker=\"w\"", StringComparison.Ordinal)));
        Assert.Contains(Overflow + " 10\n", text, StringComparison.Ordinal);
        writer.WriteLine("more 1");
        writer.WaitForLine("created");
        text = registry.Render();
        Assert.Contains(Overflow + " 11\n", text, StringComparison.Ordinal);
        Assert.Contains(WorkerShapes.Card + "{worker=\"__overflow__\",i=\"__overflow__\"} 11\n", text, StringComparison.Ordinal);
        Assert.Equal(51, CardLines(text));
    }

    [Fact]
    public void Histogram_series_count_once_however_many_buckets_they_store()
    {
        const string Count = WorkerShapes.CardHistogram + "_count{";

        // 10 series of 6 slots each (4 buckets, sum, count): the limit of 20 leaves room for 10 more series, not none.
        using var first = ChildProcess.StartDotnet(WorkerDll, ["writer", Cs, Prefix, "histogram", "h1", "10", "20"]);
        first.WaitForLine("created");
        using var second = ChildProcess.StartDotnet(WorkerDll, ["writer", Cs, Prefix, "histogram", "h2", "15", "20"]);
        second.WaitForLine("created");

        var config = Config(Cs, "reader");
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
        _ = new Histogram(WorkerShapes.CardHistogram, "One of many histogram series.", ["worker", "i"], registry: registry, buckets: [0.1, 1, 10]) { CardinalityLimit = 20 };
        var lines = registry.Render().Split('\n');
        Assert.Equal(10, lines.Count(l => l.StartsWith(Count + "worker=\"h1\"", StringComparison.Ordinal)));
        Assert.Equal(10, lines.Count(l => l.StartsWith(Count + "worker=\"h2\"", StringComparison.Ordinal)));
        Assert.Contains(Count + "worker=\"__overflow__\",i=\"__overflow__\"} 5", lines);
        Assert.Contains("metrics_cardinality_overflow_total{metric=\"redis_card_seconds\"} 5", lines);
    }

    [Fact]
    public void With_Redis_unreachable_the_limit_counts_this_process_series_and_nothing_throws()
    {
        var port = RedisServer.FreeLoopbackPort();
        var config = Config($"127.0.0.1:{port}", "down", ("ConnectTimeout", "200ms"));
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
        var counter = new Counter("redis_down_total", "Counted while Redis is down.", ["i"], registry: registry) { CardinalityLimit = 5 };
        for (var i = 0; i < 8; i++)
        {
            counter.Labels(i.ToString(CultureInfo.InvariantCulture)).Inc();
        }

        Assert.Equal(["4"], counter.Labels("4").LabelValues);
        Assert.Equal([Metric.OverflowLabelValue], counter.Labels("5").LabelValues);
        Assert.Same(counter.Labels("5"), counter.Labels("7"));
        Assert.Single(LogCapture.All("Metric 'redis_down_total' reached its cardinality limit of 5 series"));
        LogCapture.WaitFor($"could not read series counts from Redis at 127.0.0.1:{port}", "only its own before a first read");
    }

    [Fact]
    public async Task Per_process_gauges_count_the_series_of_every_writer_without_a_scrape()
    {
        // Two configurations are two writers with their own stores, as two processes; neither scrapes.
        var first = Config(Cs, "first");
        using var one = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(first));
        var theirs = new Gauge("redis_owned_card", "Per-process gauge.", ["i"], registry: one, aggregation: GaugeAggregation.LiveSum) { CardinalityLimit = 4 };
        for (var i = 0; i < 3; i++)
        {
            theirs.Labels(i.ToString(CultureInfo.InvariantCulture)).Set(1);
        }

        await one.Backend.FlushAsync(TestContext.Current.CancellationToken);
        using var two = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(Config(Cs, "second")));
        var mine = new Gauge("redis_owned_card", "Per-process gauge.", ["i"], registry: two, aggregation: GaugeAggregation.LiveSum) { CardinalityLimit = 4 };

        // Connected first (a flush waits for the connection): before it, a writer counts only its own series.
        new Gauge("redis_owned_up", "Set once connected.", registry: two).Set(1);
        await two.Backend.FlushAsync(TestContext.Current.CancellationToken);

        // Series "2" is also the other writer's: it counts once, so "3" fits and "4" is refused.
        Assert.Equal(["2"], mine.Labels("2").LabelValues);
        Assert.Equal(["3"], mine.Labels("3").LabelValues);
        Assert.Equal([Metric.OverflowLabelValue], mine.Labels("4").LabelValues);
    }

    private static int CardLines(string text) => text.Split('\n').Count(l => l.StartsWith(WorkerShapes.Card + "{", StringComparison.Ordinal));
}
