using System.Globalization;
using Metrics;
using Metrics.Backends.Redis;

// Child process for the multi-process tests. Usage:
//   load     <connectionString> <keyPrefix> <iterations>   labelled counter and histogram updates, then flush
//   series   <connectionString> <keyPrefix> <label> <value> one gauge series set; flushed by Core's exit hook only
//   conflict <connectionString> <keyPrefix> <keyExpiry>    declares WorkerShapes.ConflictName with other buckets and
//            observes once; prints "ready" once its values are in Redis, then observes and flushes again for each
//            "observe" line on stdin (answered "observed"), until another line or the end of input
//   gauge    <connectionString> <keyPrefix> <mode> <value> sets (or with a leading '+', increments) one gauge of that
//            aggregation mode, prints "ready" once it is in Redis, then waits for a line on stdin: "exit" shuts the backend
//            down (the writer retires at once) and exits; the test may kill it instead (its heartbeat then expires)
//   types    <connectionString> <keyPrefix> <version> <state>  info, enum and unit gauge of TypesWorkload; "state <name>"
//            lines on stdin change the enum
if (args.Length < 3)
{
    Console.Error.WriteLine("usage: load|series|conflict <connectionString> <keyPrefix> ...");
    return 64;
}

switch (args[0])
{
    case "load":
        {
            var config = WorkerShapes.Config(args[1], args[2]);
            RedisBackend.Initialize(config);
            var iterations = int.Parse(args[3], CultureInfo.InvariantCulture);
            var counters = new RedisBackend[WorkerShapes.Shards.Length];
            for (var s = 0; s < counters.Length; s++)
            {
                counters[s] = new RedisBackend(config, WorkerShapes.Counter.WithLabelValues(["load", WorkerShapes.Shards[s]]), null);
            }

            var series = WorkerShapes.Histogram.WithLabelValues(["load"]);
            var buckets = WorkerShapes.Histogram.Buckets.Select(b => new RedisBackend(config, series, HistogramBucket.ForUpperBound(b))).ToArray();
            var sum = new RedisBackend(config, series, HistogramBucket.Sum);
            for (var i = 0; i < iterations; i++)
            {
                counters[i % counters.Length].Inc(1);
                buckets[i % buckets.Length].Inc(1);
                sum.Inc(0.25);
            }

            var (ok, error) = await RedisStore.Get(config).Flusher.TryFlushAsync(TimeSpan.FromSeconds(30), CancellationToken.None);
            if (!ok)
            {
                Console.Error.WriteLine($"flush failed: {error}");
                return 2;
            }

            Console.WriteLine("flushed");
            return 0;
        }

    case "exemplar":
        {
            // exemplar <connectionString> <keyPrefix> <trace id> <unix seconds>: one counter increment and one histogram
            // observation, each with an exemplar stamped with the given time; flushed before exit.
            var config = WorkerShapes.Config(args[1], args[2]);
            RedisBackend.Initialize(config);
            var timestamp = double.Parse(args[4], CultureInfo.InvariantCulture);
            var exemplar = Exemplar.Of("trace_id", args[3]);
            var counter = new RedisBackend(config, WorkerShapes.Counter.WithLabelValues(["exemplar", "a"]), null);
            counter.Inc(1);
            counter.RecordExemplar(new RecordedExemplar(exemplar, 1, timestamp));
            var series = WorkerShapes.Histogram.WithLabelValues(["exemplar"]);
            var bucket = new RedisBackend(config, series, HistogramBucket.ForUpperBound(1));
            var sum = new RedisBackend(config, series, HistogramBucket.Sum);
            sum.ObserveHistogram(bucket, 0.5);
            bucket.RecordExemplar(new RecordedExemplar(exemplar, 0.5, timestamp));
            var (ok, error) = await RedisStore.Get(config).Flusher.TryFlushAsync(TimeSpan.FromSeconds(30), CancellationToken.None);
            if (!ok)
            {
                Console.Error.WriteLine($"flush failed: {error}");
                return 2;
            }

            Console.WriteLine("flushed");
            return 0;
        }

    case "series":
        {
            // Through Core, whose single process-exit hook shuts the backend down: the value reaches Redis only that way.
            var backend = ConfiguredBackend.Create<RedisBackend>(WorkerShapes.Config(args[1], args[2], "1h"));
            backend.CreateValue(WorkerShapes.ChildGauge.WithLabelValues([args[3]])).Set(double.Parse(args[4], CultureInfo.InvariantCulture));
            Console.WriteLine("set; exiting without an explicit flush");
            return 0;
        }

    case "conflict":
        {
            var config = WorkerShapes.Config(args[1], args[2], "50ms", args[3]);
            await using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
            var histogram = new Histogram(WorkerShapes.ConflictName, "Declared with other buckets than the test's.", registry: registry, buckets: WorkerShapes.ConflictChildBuckets);
            histogram.Observe(7);
            await registry.Backend.FlushAsync();
            Console.WriteLine("ready");

            // Each "observe" line writes and flushes again, refreshing the keys' expiry, and is answered "observed" once
            // sent; "stop" or the end of stdin ends the process.
            while (await Console.In.ReadLineAsync() is "observe")
            {
                histogram.Observe(7);
                await registry.Backend.FlushAsync();
                Console.WriteLine("observed");
            }

            Console.WriteLine("stopped");
            return 0;
        }

    case "gauge":
        {
            var config = WorkerShapes.GaugeConfig(args[1], args[2]);
            var mode = Enum.Parse<GaugeAggregation>(args[3]);
            var gauge = new RedisBackend(config, WorkerShapes.ModeGauge(mode, Environment.ProcessId), null);
            var value = double.Parse(args[4].TrimStart('+'), CultureInfo.InvariantCulture);
            if (args[4].StartsWith('+'))
            {
                gauge.Inc(value);
            }
            else
            {
                gauge.Set(value);
            }

            var (ok, error) = await RedisStore.Get(config).Flusher.TryFlushAsync(TimeSpan.FromSeconds(30), CancellationToken.None);
            if (!ok)
            {
                Console.Error.WriteLine($"flush failed: {error}");
                return 2;
            }

            Console.WriteLine("ready");
            if (await Console.In.ReadLineAsync() == "exit")
            {
                await RedisBackend.ShutdownAsync(config, CancellationToken.None);
                Console.WriteLine("retired");
            }

            return 0;
        }

    case "hold":
        {
            // hold <connectionString> <keyPrefix>: through Core, counter redis_held_total{i="0"} and {i="1"}, each child kept;
            // answers stdin lines until it closes: "inc" adds 1 to both and flushes, "render" prints this process's scrape
            // of the family on one line, "render-om" the same in OpenMetrics, "exemplar <trace>" adds 1 to {i="0"} with that
            // exemplar and flushes.
            var config = WorkerShapes.Config(args[1], args[2]);
            using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
            var held = new Counter(WorkerShapes.Held, "Series a holding process keeps.", ["i"], registry: registry);
            Counter[] children = [held.Labels("0"), held.Labels("1")];
            await registry.Backend.FlushAsync();
            Console.WriteLine("ready");
            while (await Console.In.ReadLineAsync() is { } line)
            {
                switch (line)
                {
                    case "inc":
                        foreach (var child in children)
                        {
                            child.Inc();
                        }

                        await registry.Backend.FlushAsync();
                        Console.WriteLine("incremented");
                        break;
                    case "render":
                        Console.WriteLine("rendered " + string.Join(" ", registry.Render().Split('\n').Where(l => l.StartsWith(WorkerShapes.Held + "{", StringComparison.Ordinal))));
                        break;
                    case "render-om":
                        Console.WriteLine("rendered-om " + string.Join(" | ", registry.Render(ExpositionFormat.OpenMetrics).Split('\n').Where(l => l.StartsWith(WorkerShapes.Held + "{", StringComparison.Ordinal))));
                        break;
                    case var exemplar when exemplar.StartsWith("exemplar ", StringComparison.Ordinal):
                        children[0].Inc(1, Exemplar.Of("trace_id", exemplar["exemplar ".Length..]));
                        await registry.Backend.FlushAsync();
                        Console.WriteLine("recorded");
                        break;
                }
            }

            return 0;
        }

    case "types":
        {
            // types <connectionString> <keyPrefix> <version> <state>: through the metric API, an info with this version,
            // the shared enum in this state and a gauge with a unit, flushed, then "ready"; each "state <name>" line on
            // stdin changes the state and is answered "set <name>" once flushed.
            await using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(WorkerShapes.Config(args[1], args[2], "50ms")));
            var types = new Metrics.Tests.TypesWorkload(registry);
            types.Build.Set(args[3]);
            types.State.State(args[4]);
            types.Queue.Inc(1);
            await registry.Backend.FlushAsync();
            Console.WriteLine("ready");
            while (await Console.In.ReadLineAsync() is { } line)
            {
                var state = line["state ".Length..];
                types.State.State(state);
                await registry.Backend.FlushAsync();
                Console.WriteLine("set " + state);
            }

            return 0;
        }

    case "cardinality":
        {
            // cardinality <connectionString> <keyPrefix> <worker> <count> <limit>: through Core, after one scrape (which counts
            // the series in Redis), creates that many label sets of redis_card_total under the limit, then flushes.
            var config = WorkerShapes.Config(args[1], args[2]);
            using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
            var counter = new Counter(WorkerShapes.Card, "One of many series.", ["worker", "i"], registry: registry) { CardinalityLimit = int.Parse(args[5], CultureInfo.InvariantCulture) };
            _ = registry.Render();
            for (var i = 0; i < int.Parse(args[4], CultureInfo.InvariantCulture); i++)
            {
                counter.Labels(args[3], i.ToString(CultureInfo.InvariantCulture)).Inc();
            }

            await registry.Backend.FlushAsync();
            Console.WriteLine("created");
            return 0;
        }

    case "overflow":
        {
            // overflow <connectionString> <keyPrefix> <worker> <count> <limit>: through Core, scrapes (which counts the series
            // in Redis), creates that many label sets of redis_card_total under the limit, flushes and prints "created"; then
            // "more <n>" scrapes, creates n more and flushes ("created"), "render" prints the overflow counter's line of this
            // process's scrape ("rendered <line>", '-' when absent), until stdin closes.
            var config = WorkerShapes.Config(args[1], args[2]);
            using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
            var counter = new Counter(WorkerShapes.Card, "One of many series.", ["worker", "i"], registry: registry) { CardinalityLimit = int.Parse(args[5], CultureInfo.InvariantCulture) };
            var next = 0;
            async Task CreateAsync(int count)
            {
                _ = registry.Render();
                for (var end = next + count; next < end; next++)
                {
                    counter.Labels(args[3], next.ToString(CultureInfo.InvariantCulture)).Inc();
                }

                await registry.Backend.FlushAsync();
                Console.WriteLine("created");
            }

            await CreateAsync(int.Parse(args[4], CultureInfo.InvariantCulture));
            while (await Console.In.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("more ", StringComparison.Ordinal))
                {
                    await CreateAsync(int.Parse(line["more ".Length..], CultureInfo.InvariantCulture));
                }
                else if (line == "render")
                {
                    var overflow = registry.Render().Split('\n').FirstOrDefault(l => l.StartsWith("metrics_cardinality_overflow_total{", StringComparison.Ordinal));
                    Console.WriteLine("rendered " + (overflow ?? "-"));
                }
            }

            return 0;
        }

    case "writer":
        {
            // writer <connectionString> <keyPrefix> <counter|histogram> <worker> <count> <limit>: a process that never scrapes
            // (a fleet worker behind a separate scraper): through Core, creates that many label sets of WorkerShapes.Card
            // (or CardHistogram) under the limit once connected, flushes and prints "created"; then "more <n>" flushes (which reads the
            // series counts), creates n more and flushes ("created"), until stdin closes.
            var config = WorkerShapes.Config(args[1], args[2], flushInterval: "5s");
            using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
            var limit = int.Parse(args[6], CultureInfo.InvariantCulture);

            // Connected first, as a worker that has run for a while is: before its first connection a process counts only its own series.
            new Gauge("redis_writer_up", "Set once connected.", registry: registry).Set(1);
            await registry.Backend.FlushAsync();
            Action<string, string> update;
            if (args[3] == "histogram")
            {
                var histogram = new Histogram(WorkerShapes.CardHistogram, "One of many histogram series.", ["worker", "i"], registry: registry, buckets: [0.1, 1, 10]) { CardinalityLimit = limit };
                update = (w, i) => histogram.Labels(w, i).Observe(0.5);
            }
            else
            {
                var counter = new Counter(WorkerShapes.Card, "One of many series.", ["worker", "i"], registry: registry) { CardinalityLimit = limit };
                update = (w, i) => counter.Labels(w, i).Inc();
            }

            var next = 0;
            async Task CreateAsync(int count)
            {
                for (var end = next + count; next < end; next++)
                {
                    update(args[4], next.ToString(CultureInfo.InvariantCulture));
                }

                await registry.Backend.FlushAsync();
                Console.WriteLine("created");
            }

            await CreateAsync(int.Parse(args[5], CultureInfo.InvariantCulture));
            while (await Console.In.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("more ", StringComparison.Ordinal))
                {
                    await registry.Backend.FlushAsync();
                    await CreateAsync(int.Parse(line["more ".Length..], CultureInfo.InvariantCulture));
                }
            }

            return 0;
        }

    default:
        Console.Error.WriteLine($"unknown mode '{args[0]}'");
        return 64;
}

/// <summary>The metric shapes shared by the worker and the tests that start it.</summary>
public static class WorkerShapes
{
    public const string ConflictName = "schema_seconds";

    public const string Held = "redis_held_total";

    public const string Card = "redis_card_total";

    public const string CardHistogram = "redis_card_seconds";

    public static readonly string[] Shards = ["a", "a,b", "\"q\"", "line\nbreak", ""];

    public static readonly MetricDescriptor Counter = new("load_total", "Load.", MetricType.Counter, ["kind", "shard"]);

    public static readonly MetricDescriptor Histogram = new("load_seconds", "Load.", MetricType.Histogram, ["kind"], buckets: [0.1, 1, double.PositiveInfinity]);

    public static readonly MetricDescriptor ChildGauge = new("child_gauge", "Set by a child process.", MetricType.Gauge, ["who"]);

    /// <summary>The buckets the conflict worker declares <see cref="ConflictName"/> with; the test declares others.</summary>
    public static readonly double[] ConflictChildBuckets = [5, 50];

    /// <summary>The conflict worker's family, as the host describes it (+Inf added).</summary>
    public static readonly MetricDescriptor ConflictChild = new(ConflictName, "", MetricType.Histogram, buckets: [5, 50, double.PositiveInfinity]);

    /// <summary>
    /// The gauge of one aggregation mode; PerProcess and LivePerProcess carry the pid label the host adds. The mode is in
    /// the name too, so the ten modes never share a definition.
    /// </summary>
    public static MetricDescriptor ModeGauge(GaugeAggregation mode, int? pid = null) =>
        mode is GaugeAggregation.PerProcess or GaugeAggregation.LivePerProcess
            ? new($"mode_{mode.ToString().ToLowerInvariant()}", "A gauge.", MetricType.Gauge, ["pid"], pid is { } p ? [p.ToString(CultureInfo.InvariantCulture)] : null, gaugeAggregation: mode)
            : new($"mode_{mode.ToString().ToLowerInvariant()}", "A gauge.", MetricType.Gauge, gaugeAggregation: mode);

    /// <summary>A configuration with a short heartbeat, so a killed writer counts as dead within two seconds, with room for a stall of the loaded test machine.</summary>
    public static BackendConfig GaugeConfig(string connectionString, string keyPrefix) => new(new Dictionary<string, string?>
    {
        ["ConnectionString"] = connectionString,
        ["KeyPrefix"] = keyPrefix,
        ["FlushInterval"] = "50ms",
        ["HeartbeatInterval"] = "100ms",
        ["HeartbeatTimeout"] = "2s",
    });

    public static BackendConfig Config(string connectionString, string keyPrefix, string flushInterval = "100ms", string? keyExpiry = null)
    {
        var values = new Dictionary<string, string?>
        {
            ["ConnectionString"] = connectionString,
            ["KeyPrefix"] = keyPrefix,
            ["FlushInterval"] = flushInterval,
        };
        if (keyExpiry is not null)
        {
            values["KeyExpiry"] = keyExpiry;
        }

        return new BackendConfig(values);
    }
}
