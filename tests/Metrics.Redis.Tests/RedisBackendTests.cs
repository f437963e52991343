using System.Diagnostics;
using Metrics.Backends.Redis;
using Metrics.Tests;
using StackExchange.Redis;

namespace Metrics.Redis.Tests;

public sealed class RedisBackendTests(SharedRedis redis) : RedisTestBase
{
    private static readonly MetricDescriptor Gauge = new("test_gauge", "Gauge.", MetricType.Gauge, ["k"]);
    private static readonly MetricDescriptor Counter = new("test_total", "Counter.", MetricType.Counter, ["a", "b"]);

    // Built next to the tests by the project reference.
    private static readonly string WorkerDll = Path.Combine(AppContext.BaseDirectory, "Metrics.Redis.Worker.dll");

    private string Cs => redis.Server.ConnectionString;

    [Fact]
    public async Task A_walk_over_a_family_s_cells_copies_nothing_and_sees_only_created_cells_during_creations()
    {
        const int Series = 1500; // under the default cardinality limit
        var config = Config(Cs, "cells", ("FlushInterval", "1h"));
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
        var counter = new Counter("redis_cells_total", "C.", ["i"], registry: registry);
        counter.Labels("0").Inc();
        var family = RedisStore.Find(config)!.FindFamily(counter.Family.Descriptor)!;

        var creator = Task.Run(() =>
        {
            for (var i = 1; i < Series; i++)
            {
                counter.Labels(i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
            }
        }, TestContext.Current.CancellationToken);
        var seen = 0;
        while (!creator.IsCompleted)
        {
            var cells = family.Cells();
            Assert.True(cells.Length >= seen, $"A walk saw {cells.Length} cells after one saw {seen}.");
            foreach (var cell in cells)
            {
                Assert.NotNull(cell);
            }

            seen = cells.Length;
        }

        await creator;
        Assert.Equal(Series, family.Cells().ToArray().Select(c => c.LabelValues[0]).Distinct(StringComparer.Ordinal).Count());
        Allocations.AssertNone("RedisFamily.Cells", () => _ = family.Cells().Length);
    }

    public static TheoryData<double> EdgeValues() =>
        [double.NaN, double.PositiveInfinity, double.NegativeInfinity, -0.0, 0.0, 1e-300, 1e300, -1e300, double.Epsilon, double.MaxValue, double.MinValue, 0.1, 1.0 / 3];

    [Theory]
    [MemberData(nameof(EdgeValues))]
    public void Set_round_trips_every_double_through_Redis(double value)
    {
        var writer = Config(Cs);
        var series = new RedisBackend(writer, Gauge.WithLabelValues(["edge"]), null);
        series.Set(value);
        FlushOrFail(writer);

        var stored = Read(Config(Cs, "reader"), Gauge, ["edge"]);
        Assert.Equal(BitConverter.DoubleToInt64Bits(value), BitConverter.DoubleToInt64Bits(stored));
        Assert.Equal(BitConverter.DoubleToInt64Bits(value), BitConverter.DoubleToInt64Bits(series.Get()));
    }

    [Fact]
    public void Inc_of_point_one_ten_times_is_what_ten_double_additions_give()
    {
        var writer = Config(Cs);
        var series = new RedisBackend(writer, Gauge.WithLabelValues(["tenth"]), null);
        var expected = 0.0;
        for (var i = 0; i < 10; i++)
        {
            series.Inc(0.1);
            expected += 0.1;
            // A flush per step makes the server do every addition, not the local coalescing.
            FlushOrFail(writer);
        }

        Assert.NotEqual(1.0, expected);
        Assert.Equal(expected, Read(Config(Cs, "reader"), Gauge, ["tenth"]));
        Assert.Equal(expected, series.Get());
    }

    [Fact]
    public void Inc_of_tiny_amounts_on_huge_and_tiny_values_is_not_rounded_through_text()
    {
        var writer = Config(Cs);
        var series = new RedisBackend(writer, Gauge.WithLabelValues(["tiny"]), null);
        series.Set(1.23e-45);
        FlushOrFail(writer);
        series.Inc(1e-300);
        FlushOrFail(writer);
        Assert.Equal(1.23e-45 + 1e-300, Read(Config(Cs, "reader"), Gauge, ["tiny"]));
    }

    [Fact]
    public void Concurrent_threads_lose_nothing()
    {
        var writer = Config(Cs, extra: ("FlushInterval", "5ms"));
        var series = new RedisBackend(writer, Counter.WithLabelValues(["x", "y"]), null);
        const int Threads = 4, PerThread = 200_000;
        var threads = Enumerable.Range(0, Threads).Select(_ => new Thread(() =>
        {
            for (var i = 0; i < PerThread; i++)
            {
                series.Inc(1);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        FlushOrFail(writer);

        Assert.Equal(Threads * PerThread, series.Get());
        Assert.Equal(Threads * PerThread, Read(Config(Cs, "reader"), Counter, ["x", "y"]));
    }

    [Fact]
    public void Hostile_label_values_never_share_a_value()
    {
        string[][] labelSets =
        [
            ["a,b", "c"], ["a", "b,c"], ["", ""], ["", "x"], ["x", ""], ["1:a", "#"], ["1:a#", ""], ["a\"b", "\n"], ["a\\", "\"b"],
            ["ü😀", "日本"], ["#", "1:"], ["0:", "#sum"], ["le=\"1\"", "}{"],
        ];
        var writer = Config(Cs);
        var values = labelSets.Select(l => new RedisBackend(writer, Counter.WithLabelValues(l), null)).ToArray();
        for (var i = 0; i < values.Length; i++)
        {
            values[i].Inc(i + 1);
        }

        FlushOrFail(writer);
        var collected = Collect(Config(Cs, "reader"), [Counter])[0];
        Assert.Equal(labelSets.Length, collected.Count);
        for (var i = 0; i < labelSets.Length; i++)
        {
            Assert.Equal(i + 1, collected.Single(c => c.LabelValues.SequenceEqual(labelSets[i])).Value);
        }
    }

    [Fact]
    public void Histogram_parts_are_distinct_values_in_one_hash()
    {
        var histogram = new MetricDescriptor("test_seconds", "H.", MetricType.Histogram, ["k"], buckets: [0.5, 1, double.PositiveInfinity]);
        var writer = Config(Cs);
        var series = histogram.WithLabelValues(["h"]);
        var b05 = new RedisBackend(writer, series, HistogramBucket.ForUpperBound(0.5));
        var b1 = new RedisBackend(writer, series, HistogramBucket.ForUpperBound(1));
        var inf = new RedisBackend(writer, series, HistogramBucket.ForUpperBound(double.PositiveInfinity));
        var sum = new RedisBackend(writer, series, HistogramBucket.Sum);
        b05.Inc(1);
        b1.Inc(1);
        b1.Inc(1);
        inf.Inc(1);
        sum.Inc(0.25 + 0.75 + 0.75 + 7);
        FlushOrFail(writer);

        var reader = Config(Cs, "reader");
        Assert.Equal(1, Read(reader, histogram, ["h"], HistogramBucket.ForUpperBound(0.5)));
        Assert.Equal(2, Read(reader, histogram, ["h"], HistogramBucket.ForUpperBound(1)));
        Assert.Equal(1, Read(reader, histogram, ["h"], HistogramBucket.ForUpperBound(double.PositiveInfinity)));
        Assert.Equal(8.75, Read(reader, histogram, ["h"], HistogramBucket.Sum));
        Assert.Equal(4, Collect(reader, [histogram])![0].Count);
    }

    [Fact]
    public void Read_your_writes_hold_before_any_flush_and_Collect_includes_unflushed_updates()
    {
        var writer = Config(Cs, extra: ("FlushInterval", "1h"));
        var series = new RedisBackend(writer, Gauge.WithLabelValues(["ryw"]), null);
        series.Inc(5);
        Assert.Equal(5, series.Get());
        series.Set(2);
        series.Inc(1);
        series.Dec(0.5);
        Assert.Equal(2.5, series.Get());
        Assert.Equal(2.5, Read(writer, Gauge, ["ryw"]));

        var other = Config(Cs, "other", ("FlushInterval", "1h"));
        var otherSeries = new RedisBackend(other, Gauge.WithLabelValues(["ryw"]), null);
        otherSeries.Inc(10);
        FlushOrFail(writer);
        FlushOrFail(other);
        Assert.Equal(12.5, Read(Config(Cs, "reader"), Gauge, ["ryw"]));
        Assert.Equal(12.5, otherSeries.Get());
    }

    [Fact]
    public void Get_reads_what_another_writer_flushed()
    {
        var writer = Config(Cs, "writer", ("FlushInterval", "1h"));
        var reader = Config(Cs, "reader", ("FlushInterval", "1h"));
        var written = new RedisBackend(writer, Gauge.WithLabelValues(["shared"]), null);
        var read = new RedisBackend(reader, Gauge.WithLabelValues(["shared"]), null);
        Assert.Equal(0, read.Get());

        written.Inc(4);
        FlushOrFail(writer);
        Assert.Equal(4, read.Get());

        read.Inc(0.5);
        Assert.Equal(4.5, read.Get());
        written.Set(10);
        FlushOrFail(writer);
        // The reader's unflushed Inc lands on top of whatever Redis holds when it is sent.
        Assert.Equal(10.5, read.Get());
    }

    [Fact]
    public void Two_instances_of_one_series_see_each_others_unflushed_updates()
    {
        var writer = Config(Cs, extra: ("FlushInterval", "1h"));
        var first = new RedisBackend(writer, Gauge.WithLabelValues(["twin"]), null);
        var second = new RedisBackend(writer, Gauge.WithLabelValues(["twin"]), null);
        first.Inc(2);
        Assert.Equal(2, second.Get());
        second.Set(10);
        first.Dec(1);
        Assert.Equal(9, first.Get());
        Assert.Equal(9, Read(writer, Gauge, ["twin"]));

        FlushOrFail(writer);
        Assert.Equal(9, Read(Config(Cs, "reader"), Gauge, ["twin"]));
        Assert.Equal(9, second.Get());
    }

    [Fact]
    public void Get_counts_a_batch_Redis_applied_but_did_not_acknowledge_once()
    {
        var writer = Config(Cs, extra: ("FlushInterval", "1h"));
        var series = new RedisBackend(writer, Gauge.WithLabelValues(["unacked"]), null);
        FlushOrFail(writer);
        series.Inc(5);

        // Move the update into flight as a flush would, under a sequence far above any the store has used.
        const long Sequence = 1_000_000;
        var cell = series.Cell;
        cell.ClearDirty();
        var (_, _, delta) = cell.TakePending(Sequence);
        Assert.Equal(5, delta);
        Assert.Equal(5, series.Get());

        // Redis applies the batch and its reply is lost: the stored value now holds the in-flight update.
        using var connection = ConnectionMultiplexer.Connect(Cs);
        var payload = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteDoubleLittleEndian(payload, delta);
        connection.GetDatabase().ScriptEvaluate(
            Scripts.ApplyBatch,
            [cell.Family.Key, cell.Family.MarkerKey, cell.Family.DefinitionsKey, cell.Family.ValuesKey, cell.Family.ListKey],
            [Sequence, 60_000, 60_000, cell.Family.DefinitionId, cell.Family.Definition, cell.Field, "a", payload]);
        Assert.Equal(5, series.Get());

        series.Inc(1);
        Assert.Equal(6, series.Get());
        cell.Acknowledge(5, Sequence);
        Assert.Equal(6, series.Get());
    }

    [Fact]
    public void Get_while_the_flusher_runs_sees_exactly_the_updates_that_returned()
    {
        // Flushes and acknowledgements race every read; whole numbers make coalesced sums exact, so any miscount shows.
        var writer = Config(Cs, extra: ("FlushInterval", "1ms"));
        var series = new RedisBackend(writer, Counter.WithLabelValues(["race", "get"]), null);
        for (var i = 1; i <= 3000; i++)
        {
            series.Inc(1);
            Assert.Equal(i, series.Get());
        }

        FlushOrFail(writer);
        Assert.Equal(3000, Read(Config(Cs, "reader"), Counter, ["race", "get"]));
    }

    [Fact]
    public void Gauge_Set_is_last_writer_wins_and_Incs_from_every_writer_add()
    {
        var first = Config(Cs, "first");
        var second = Config(Cs, "second");
        var a = new RedisBackend(first, Gauge.WithLabelValues(["lww"]), null);
        var b = new RedisBackend(second, Gauge.WithLabelValues(["lww"]), null);
        a.Set(100);
        FlushOrFail(first);
        b.Set(7);
        FlushOrFail(second);
        a.Inc(1);
        b.Dec(3);
        FlushOrFail(first);
        FlushOrFail(second);
        Assert.Equal(5, Read(Config(Cs, "reader"), Gauge, ["lww"]));
    }

    [Fact]
    public async Task A_re_sent_batch_is_applied_once()
    {
        var writer = Config(Cs);
        var settings = RedisStore.Get(writer).Settings;
        using var connection = ConnectionMultiplexer.Connect(Cs);
        var db = connection.GetDatabase();
        RedisKey key = settings.KeyPrefix + "{resend_total}";
        RedisKey marker = settings.KeyPrefix + "{resend_total}:w:test-writer";
        RedisKey definitions = settings.KeyPrefix + "{resend_total}:defs";
        RedisKey values = RedisFamily.ValuesKeyOf(key!);
        RedisKey list = RedisFamily.ListKeyOf(key!);
        var field = (RedisValue)FieldCodec.Encode([], null);
        var payload = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteDoubleLittleEndian(payload, 2.5);
        RedisValue[] batch = [7, 60_000, 60_000, "0123456789abcdef", "counter;labels=", field, "a", payload];

        // The same batch twice models a reply lost after the server applied it.
        db.ScriptEvaluate(Scripts.ApplyBatch, [key, marker, definitions, values, list], batch);
        var again = (RedisResult[])db.ScriptEvaluate(Scripts.ApplyBatch, [key, marker, definitions, values, list], batch)!;
        Assert.Equal(2.5, System.Buffers.Binary.BinaryPrimitives.ReadDoubleLittleEndian((byte[])again[0]!));

        RedisValue[] next = [8, 60_000, 60_000, "0123456789abcdef", "counter;labels=", field, "a", payload];
        db.ScriptEvaluate(Scripts.ApplyBatch, [key, marker, definitions, values, list], next);
        Assert.Equal(5.0, await StoredValueAsync(db, key!, field!));
        foreach (var part in new[] { key, values, list })
        {
            Assert.True(db.KeyTimeToLive(part) is { } ttl && ttl > TimeSpan.Zero, $"{part} has an expiry");
        }
    }

    [Fact]
    public void Keys_share_one_Cluster_slot_per_metric_and_use_the_prefix()
    {
        var writer = Config(Cs);
        var series = new RedisBackend(writer, Counter.WithLabelValues(["s", "t"]), null);
        series.Inc(1);
        FlushOrFail(writer);
        var family = series.Family;
        Assert.StartsWith(Prefix, family.Key.ToString(), StringComparison.Ordinal);
        using var connection = ConnectionMultiplexer.Connect(Cs);
        Assert.Equal(connection.HashSlot(family.Key), connection.HashSlot(family.MarkerKey));
        Assert.Equal(connection.HashSlot(family.Key), connection.HashSlot(family.ValuesKey));
        Assert.Equal(connection.HashSlot(family.Key), connection.HashSlot(family.ListKey));
        Assert.True(connection.GetDatabase().KeyExists(family.MarkerKey));
        Assert.Equal(3, connection.GetDatabase().KeyExists([family.Key, family.ValuesKey, family.ListKey]));
    }

    [Fact]
    public void Updates_allocate_nothing_on_the_callers_thread()
    {
        var writer = Config(Cs, extra: ("FlushInterval", "1h"));
        var series = new RedisBackend(writer, Gauge.WithLabelValues(["alloc"]), null);
        series.Inc(1);
        series.Set(1);
        FlushOrFail(writer);
        series.Inc(1);

        var i = 0;
        Allocations.AssertNone("Inc, Dec and Set", () =>
        {
            series.Inc(1);
            series.Dec(0.5);
            series.Set(i++);
        });
        Assert.Equal(i - 1, series.Get());
    }

    [Fact]
    public void Collect_returns_series_created_only_in_another_process_flushed_at_its_exit()
    {
        var (code, output) = ChildProcess.RunDotnet(WorkerDll, "series", Cs, Prefix, "child \"one\"\n", "42.5");
        Assert.True(code == 0, output);

        var collected = Collect(Config(Cs, "reader"), [WorkerShapes.ChildGauge])![0];
        var single = Assert.Single(collected);
        Assert.Equal(["child \"one\"\n"], single.LabelValues);
        Assert.Null(single.Bucket);
        Assert.Equal(42.5, single.Value);
    }

    [Fact]
    public async Task Four_processes_of_a_quarter_million_updates_each_give_exact_totals()
    {
        const int Processes = 4, Iterations = 250_000;
        var stopwatch = Stopwatch.StartNew();
        var runs = Enumerable.Range(0, Processes)
            .Select(_ => Task.Run(() => ChildProcess.RunDotnet(WorkerDll, "load", Cs, Prefix, Iterations.ToString(System.Globalization.CultureInfo.InvariantCulture))))
            .ToArray();
        foreach (var (exitCode, output) in await Task.WhenAll(runs))
        {
            Assert.True(exitCode == 0, output);
        }

        var reader = Config(Cs, "reader");
        var counters = Collect(reader, [WorkerShapes.Counter, WorkerShapes.Histogram])!;
        var shards = WorkerShapes.Shards.Length;
        Assert.Equal(shards, counters[0].Count);
        foreach (var shard in counters[0])
        {
            var index = Array.IndexOf(WorkerShapes.Shards, shard.LabelValues[1]);
            var perProcess = (Iterations / shards) + (index < Iterations % shards ? 1 : 0);
            Assert.Equal(Processes * perProcess, shard.Value);
        }

        var buckets = WorkerShapes.Histogram.Buckets.Count;
        foreach (var part in counters[1])
        {
            if (part.Bucket == HistogramBucket.Sum)
            {
                Assert.Equal(Processes * Iterations * 0.25, part.Value);
            }
            else
            {
                var index = WorkerShapes.Histogram.Buckets.ToList().IndexOf(part.Bucket!.Value.UpperBound);
                var perProcess = (Iterations / buckets) + (index < Iterations % buckets ? 1 : 0);
                Assert.Equal(Processes * perProcess, part.Value);
            }
        }

        Assert.Equal(buckets + 1, counters[1].Count);
        Assert.Equal((double)Processes * Iterations, counters[1].Where(p => p.Bucket != HistogramBucket.Sum).Sum(p => p.Value));
        Console.WriteLine($"4 x {Iterations} updates in {stopwatch.Elapsed}");
    }
}
