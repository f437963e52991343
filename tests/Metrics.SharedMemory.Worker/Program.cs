using System.Diagnostics;
using System.Globalization;
using Metrics;
using Metrics.Backends.Memory;
using Metrics.Backends.SharedMemory;
using Metrics.Tests;

// A child process for the shared-memory tests: each command opens the store named on the command line and
// updates it as an application process would. "ready" on stdout tells the test the values are in place.
var command = args[0];
var config = new BackendConfig(new Dictionary<string, string?>
{
    // "default" leaves the path to the backend: the application's default store.
    ["Path"] = args[1] == "default" ? null : args[1],
    ["ApplicationName"] = Environment.GetEnvironmentVariable("SHM_APP"),
    ["MaxSize"] = Environment.GetEnvironmentVariable("SHM_MAX_SIZE"),
    ["InitialSize"] = Environment.GetEnvironmentVariable("SHM_INITIAL_SIZE"),
    ["MaxProcesses"] = Environment.GetEnvironmentVariable("SHM_MAX_PROCESSES"),
    ["CheckInterval"] = Environment.GetEnvironmentVariable("SHM_CHECK_INTERVAL"),
});

// The backend's log lines reach the test on stdout, one line each.
BackendLog.MaxMessagesPerMinute = 0;
BackendLog.Handler = (_, level, message, _) => Console.WriteLine($"log {level}: {message.ReplaceLineEndings(" ")}");
try
{
    SharedMemoryBackend.Initialize(config);
}
catch (Exception e) when (e is BackendConfigException or InvalidDataException)
{
    // A refused store is an answer the tests check word for word, not a crash.
    Console.WriteLine("refused: " + e.Message);
    return 3;
}

switch (command)
{
    case "count":
    {
        // count <path> <iterations>: labelled counter, a histogram bucket and sum, a summary count and sum.
        var n = long.Parse(args[2], CultureInfo.InvariantCulture);
        var counter = Shared.Backend(config, Shared.Counter, null);
        var bucket = Shared.Backend(config, Shared.Histogram, HistogramBucket.ForUpperBound(0.5));
        var sum = Shared.Backend(config, Shared.Histogram, HistogramBucket.Sum);
        var summaryCount = Shared.Backend(config, Shared.Summary, HistogramBucket.Count);
        var summarySum = Shared.Backend(config, Shared.Summary, HistogramBucket.Sum);
        Console.WriteLine("ready");
        for (var i = 0; i < n; i++)
        {
            counter.Inc(1);
            bucket.Inc(1);
            sum.Inc(0.25);
            summaryCount.Inc(1);
            summarySum.Inc(2);
        }

        break;
    }

    case "exemplar":
    {
        // exemplar <path> <trace id> <unix seconds>: one counter increment and one histogram observation, each with an
        // exemplar carrying the trace id, stamped with the given time (so the test decides which one is the latest).
        var timestamp = double.Parse(args[3], CultureInfo.InvariantCulture);
        var exemplar = Exemplar.Of("trace_id", args[2]);
        var counter = Shared.Backend(config, Shared.Counter, null);
        counter.Inc(1);
        counter.RecordExemplar(new RecordedExemplar(exemplar, 1, timestamp));
        var bucket = Shared.Backend(config, Shared.Histogram, HistogramBucket.ForUpperBound(0.5));
        bucket.Inc(1);
        Shared.Backend(config, Shared.Histogram, HistogramBucket.Sum).Inc(0.25);
        bucket.RecordExemplar(new RecordedExemplar(exemplar, 0.25, timestamp));
        break;
    }

    case "churn":
    {
        // churn <path>: what a short-lived job does: a counter, a histogram observation and aggregated gauges.
        Shared.Backend(config, Shared.Counter, null).Inc(1);
        Shared.Backend(config, Shared.Histogram, HistogramBucket.ForUpperBound(0.5)).Inc(1);
        Shared.Backend(config, Shared.Histogram, HistogramBucket.Sum).Inc(0.25);
        Shared.Backend(config, Shared.Gauge(GaugeAggregation.LiveSum), null).Inc(1);
        Shared.Backend(config, Shared.Gauge(GaugeAggregation.Max), null).Set(Environment.ProcessId);
        break;
    }

    case "gauge":
    {
        // gauge <path> <mode> <value> [pid label]: sets one gauge, then stays alive until stdin closes or it is killed.
        var mode = Enum.Parse<GaugeAggregation>(args[2]);
        // "+5" increments by 5 instead of setting 5: shows whether a taken-over series restarted at 0.
        var increments = args[3].StartsWith('+');
        var value = double.Parse(args[3].TrimStart('+'), CultureInfo.InvariantCulture);
        var descriptor = Shared.Gauge(mode);
        if (mode is GaugeAggregation.PerProcess or GaugeAggregation.LivePerProcess)
        {
            // As the host does: the pid label makes one series per process.
            var pid = args.Length > 4 ? args[4] : Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
            descriptor = new MetricDescriptor(descriptor.Name, "", MetricType.Gauge, ["pid"], [pid], gaugeAggregation: mode);
        }

        var gauge = Shared.Backend(config, descriptor, null);
        if (increments || mode == GaugeAggregation.Sum)
        {
            gauge.Inc(value);
        }
        else
        {
            gauge.Set(value);
        }

        Console.WriteLine("ready " + gauge.Get().ToString("R", CultureInfo.InvariantCulture));
        Console.In.ReadLine();
        break;
    }

    case "schema":
    {
        // schema <path> <bounds>: a process of another release declaring the tests' histogram with other buckets
        // (comma-separated, +Inf added), while still agreeing on the counter. Observes into both, then stays alive until
        // stdin closes or it is killed.
        var bounds = args[2].Split(',').Select(b => double.Parse(b, CultureInfo.InvariantCulture)).Append(double.PositiveInfinity).ToArray();
        var histogram = new MetricDescriptor(Shared.Histogram.Name, "Latency, re-bucketed.", MetricType.Histogram, Shared.Histogram.LabelNames, Shared.Histogram.LabelValues, bounds);
        Shared.Backend(config, histogram, HistogramBucket.ForUpperBound(bounds[0])).Inc(3);
        Shared.Backend(config, histogram, HistogramBucket.Sum).Inc(1.5);
        Shared.Backend(config, Shared.Counter, null).Inc(5);
        Console.WriteLine("ready");
        Console.In.ReadLine();
        break;
    }

    case "spin":
    {
        // spin <path>: increments until killed; "ready" once counting. Each "more N" line on stdin is answered with
        // "counted" once N more increments are in the store: the test's proof that this process is still counting.
        var counter = Shared.Backend(config, Shared.Counter, null);
        var bucket = Shared.Backend(config, Shared.Histogram, HistogramBucket.ForUpperBound(0.5));
        var requested = 0L;
        new Thread(() =>
        {
            while (Console.In.ReadLine() is { } line)
            {
                Volatile.Write(ref requested, long.Parse(line["more ".Length..], CultureInfo.InvariantCulture));
            }
        }) { IsBackground = true }.Start();
        var answerAt = -1L;
        for (var i = 0L; ; i++)
        {
            counter.Inc(1);
            bucket.Inc(1);
            if (i == 1000)
            {
                Console.WriteLine("ready");
            }

            if (Volatile.Read(ref requested) is > 0 and var more)
            {
                Volatile.Write(ref requested, 0);
                answerAt = i + more;
            }

            if (i == answerAt)
            {
                Console.WriteLine("counted");
            }
        }
    }

    case "allocate":
    {
        // allocate <path> <prefix>: creates new series until killed, so a kill lands in the middle of an allocation.
        // "allocated N" after every 100 series tells the test how far it got, so it can pick where to kill.
        var prefix = args[2];
        for (var i = 0; ; i++)
        {
            var descriptor = new MetricDescriptor("alloc_total", "", MetricType.Counter, ["worker", "i"], [prefix, i.ToString(CultureInfo.InvariantCulture)]);
            Shared.Backend(config, descriptor, null).Inc(1);
            if (i > 0 && i % 100 == 0)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"allocated {i}"));
            }
        }
    }

    case "bench":
    {
        // bench <path> <iterations>: ns per Inc of the shared-memory and Memory backends, single thread.
        var n = long.Parse(args[2], CultureInfo.InvariantCulture);
        var shared = new SharedMemoryBackend(config, Shared.Counter, null);
        var memory = new MemoryBackend(config, Shared.Counter, null);
        for (var round = 0; round < 3; round++)
        {
            var sharedNs = Time(shared, n);
            var memoryNs = Time(memory, n);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"shared {sharedNs:F2} ns/op, memory {memoryNs:F2} ns/op, ratio {sharedNs / memoryNs:F2}"));
        }

        static double Time<T>(T backend, long n)
            where T : IMetricBackend
        {
            var watch = Stopwatch.StartNew();
            for (var i = 0L; i < n; i++)
            {
                backend.Inc(1);
            }

            return watch.Elapsed.TotalNanoseconds / n;
        }

        break;
    }

    case "hold":
    {
        // hold <path> <series>: creates that many counter series, then answers commands on stdin until it closes:
        // "inc" adds 1 to every series created so far, "new <label>" creates and increments one more series,
        // "collect" scrapes the store, "stats" prints the backend's statistics, "exemplar <trace>" adds 1 to series 0 with
        // that exemplar (stamped now), "exemplars" prints the trace of every exemplar a scrape of the store finds ('-': none).
        var held = new List<SharedMemoryBackend>();
        var count = int.Parse(args[2], CultureInfo.InvariantCulture);
        for (var i = 0; i < count; i++)
        {
            held.Add(Shared.Backend(config, Shared.Held.WithLabelValues([i.ToString(CultureInfo.InvariantCulture)]), null));
        }

        Console.WriteLine("ready");
        while (Console.In.ReadLine() is { } line)
        {
            var parts = line.Split(' ');
            switch (parts[0])
            {
                case "inc":
                    held.ForEach(h => h.Inc(1));
                    Console.WriteLine("incremented " + held[^1].Get().ToString("R", CultureInfo.InvariantCulture));
                    break;
                case "new":
                    var created = Shared.Backend(config, Shared.Held.WithLabelValues([parts[1]]), null);
                    created.Inc(1);
                    held.Add(created);
                    Console.WriteLine("created");
                    break;
                case "collect":
                    var values = SharedMemoryBackend.CollectAsync(config, [Shared.Held], CancellationToken.None).AsTask().GetAwaiter().GetResult()!;
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"collected {values[0].Count} sum {values[0].Sum(v => v.Value)}"));
                    break;
                case "exemplar":
                    held[0].Inc(1);
                    held[0].RecordExemplar(new RecordedExemplar(Exemplar.Of("trace_id", parts[1]), 1, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0));
                    Console.WriteLine("recorded");
                    break;
                case "exemplars":
                    var found = SharedMemoryBackend.CollectAsync(config, [Shared.Held], CancellationToken.None).AsTask().GetAwaiter().GetResult()![0]
                        .Where(v => v.Exemplar is not null).Select(v => v.Exemplar!.Value.Labels[0].Value).ToList();
                    Console.WriteLine("exemplars " + (found.Count == 0 ? "-" : string.Join(',', found)));
                    break;
                case "stats":
                    foreach (var statistic in SharedMemoryBackend.Statistics(config))
                    {
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stat {statistic.Name} {statistic.Value}"));
                    }

                    break;
            }
        }

        break;
    }

    case "reattach":
    {
        // reattach <path> <after>: a counter, histogram and summary of the metrics API (which cache the mapped words)
        // updated in a loop. Each "check" line on stdin makes the loop scrape once, on its own thread; the first scrape
        // that finds the store reset (and moves to a valid one) starts the count: exactly <after> more updates, then
        // "after <after>" and the loop stops. The updates before that went to the file that was reset.
        var after = long.Parse(args[2], CultureInfo.InvariantCulture);
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<SharedMemoryBackend>(config, "SharedMemory"));
        var counter = new Counter(Shared.Counter.Name, "Requests.", [.. Shared.Counter.LabelNames], registry: registry).Labels([.. Shared.Counter.LabelValues]);
        var histogram = new Histogram(Shared.Histogram.Name, "Latency.", [.. Shared.Histogram.LabelNames], registry: registry, buckets: [0.5]).Labels("GET");
        var summary = new Summary(Shared.Summary.Name, "Sizes.", [.. Shared.Summary.LabelNames], registry: registry).Labels("GET");
        var checks = 0;
        new Thread(() =>
        {
            while (Console.In.ReadLine() is "check")
            {
                Interlocked.Increment(ref checks);
            }
        }) { IsBackground = true }.Start();
        var counted = -1L;
        for (var i = 0L; counted < after; i++)
        {
            counter.Inc();
            histogram.Observe(0.25);
            summary.Observe(2);
            if (counted >= 0)
            {
                counted++;
            }

            if (i == 1000)
            {
                Console.WriteLine("ready");
            }

            if (counted < 0 && Volatile.Read(ref checks) > 0)
            {
                Interlocked.Decrement(ref checks);
                _ = SharedMemoryBackend.CollectAsync(config, [Shared.Counter], CancellationToken.None).AsTask().GetAwaiter().GetResult();
                var resets = SharedMemoryBackend.Statistics(config).Single(s => s.Name == "metrics_backend_store_resets_total").Value;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"checked resets {resets}"));
                counted = resets > 0 ? 0 : -1;
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"after {counted} own {counter.Value}"));
        Console.In.ReadLine();
        break;
    }

    case "read":
    {
        // read <path>: scrapes the store as a fresh process and prints every value of the count command's families.
        var families = new[] { Shared.Counter, Shared.Histogram, Shared.Summary }.Select(f => new MetricDescriptor(f.Name, f.Help, f.Type, f.LabelNames, [], f.Buckets)).ToArray();
        var collected = SharedMemoryBackend.CollectAsync(config, families, CancellationToken.None).AsTask().GetAwaiter().GetResult()!;
        for (var f = 0; f < families.Length; f++)
        {
            foreach (var value in collected[f])
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"value {families[f].Name} {value.Bucket?.ToString() ?? "-"} {value.Value:R}"));
            }
        }

        Console.WriteLine("read");
        break;
    }

    case "series":
    {
        // series <path> <prefix> <count>: creates that many distinct counter series; stops at the first refusal and says so.
        var prefix = args[2];
        var count = int.Parse(args[3], CultureInfo.InvariantCulture);
        for (var i = 0; i < count; i++)
        {
            try
            {
                Shared.Backend(config, Shared.Many.WithLabelValues([prefix, i.ToString(CultureInfo.InvariantCulture)]), null).Inc(1);
            }
            catch (SharedMemoryStoreFullException e)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"full after {i}: refused {SharedMemoryBackend.RefusedSeries}: {e.Message}"));
                return 0;
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"created {count}"));
        break;
    }

    case "cardinality":
    {
        // cardinality <path> <worker> <count> <limit>: through the metric API, creates <count> label sets of shm_card_total
        // under the limit, prints "created"; then "more <n>" creates n more ("created"), and "render" prints this process's
        // scrape of the overflow counter ("rendered <line>", '-' when absent), until stdin closes.
        await using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<SharedMemoryBackend>(config, "SharedMemory"));
        var counter = new Counter("shm_card_total", "One of many series.", ["worker", "i"], registry: registry) { CardinalityLimit = int.Parse(args[4], CultureInfo.InvariantCulture) };
        var next = 0;
        void Create(int count)
        {
            for (var end = next + count; next < end; next++)
            {
                counter.Labels(args[2], next.ToString(CultureInfo.InvariantCulture)).Inc();
            }

            Console.WriteLine("created");
        }

        Create(int.Parse(args[3], CultureInfo.InvariantCulture));
        while (Console.In.ReadLine() is { } line)
        {
            if (line.StartsWith("more ", StringComparison.Ordinal))
            {
                Create(int.Parse(line["more ".Length..], CultureInfo.InvariantCulture));
            }
            else if (line == "render")
            {
                var overflow = registry.Render().Split('\n').FirstOrDefault(l => l.StartsWith("metrics_cardinality_overflow_total{", StringComparison.Ordinal));
                Console.WriteLine("rendered " + (overflow ?? "-"));
            }
        }

        break;
    }

    case "types":
    {
        // types <path> <version> <state>: through the metric API, an info with this version, the shared enum in this
        // state and a gauge with a unit; then "state <name>" lines on stdin change the state (answered "set <name>").
        await using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<SharedMemoryBackend>(config, "SharedMemory"));
        var types = new TypesWorkload(registry);
        types.Build.Set(args[2]);
        types.State.State(args[3]);
        types.Queue.Inc(1);
        Console.WriteLine("ready");
        while (Console.In.ReadLine() is { } line)
        {
            var state = line["state ".Length..];
            types.State.State(state);
            Console.WriteLine("set " + state);
        }

        break;
    }

    default:
        Console.Error.WriteLine($"unknown command {command}");
        return 2;
}

return 0;

internal static class Shared
{
    public static readonly MetricDescriptor Counter = new("shm_requests_total", "Requests.", MetricType.Counter, ["method", "path"], ["GET", "a\"b\n,c=d ü"]);
    public static readonly MetricDescriptor Histogram = new("shm_latency_seconds", "Latency.", MetricType.Histogram, ["method"], ["GET"], [0.5, double.PositiveInfinity]);
    public static readonly MetricDescriptor Summary = new("shm_size_bytes", "Sizes.", MetricType.Summary, ["method"], ["GET"]);

    public static readonly MetricDescriptor Held = new("shm_held_total", "Series a holding process keeps.", MetricType.Counter, ["i"]);
    public static readonly MetricDescriptor Many = new("shm_many_total", "One of very many series.", MetricType.Counter, ["worker", "i"]);

    public static MetricDescriptor Gauge(GaugeAggregation mode) => new($"shm_gauge_{mode.ToString().ToLowerInvariant()}", "A gauge.", MetricType.Gauge, gaugeAggregation: mode);

    public static SharedMemoryBackend Backend(BackendConfig config, MetricDescriptor metric, HistogramBucket? bucket) => new(config, metric, bucket);
}
