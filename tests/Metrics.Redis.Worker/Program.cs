using System.Globalization;
using Metrics;
using Metrics.Backends.Redis;

// Child process for the multi-process tests. Usage:
//   load   <connectionString> <keyPrefix> <iterations>   labelled counter and histogram updates, then flush
//   series <connectionString> <keyPrefix> <label> <value> one gauge series set; flushed by the exit hook only
if (args.Length < 3)
{
    Console.Error.WriteLine("usage: load|series <connectionString> <keyPrefix> ...");
    return 64;
}

// The series mode never flushes by itself: its value reaches Redis only through the flush at process exit.
var config = WorkerShapes.Config(args[1], args[2], args[0] == "series" ? "1h" : "100ms");
RedisBackend.Initialize(config);
switch (args[0])
{
    case "load":
        {
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

            break;
        }

    case "series":
        new RedisBackend(config, WorkerShapes.ChildGauge.WithLabelValues([args[3]]), null).Set(double.Parse(args[4], CultureInfo.InvariantCulture));
        Console.WriteLine("set; exiting without an explicit flush");
        return 0;

    default:
        Console.Error.WriteLine($"unknown mode '{args[0]}'");
        return 64;
}

if (!RedisStore.Get(config).TryFlush(TimeSpan.FromSeconds(30), out var error))
{
    Console.Error.WriteLine($"flush failed: {error}");
    return 2;
}

Console.WriteLine("flushed");
return 0;

/// <summary>The metric shapes shared by the worker and the tests that start it.</summary>
public static class WorkerShapes
{
    public static readonly string[] Shards = ["a", "a,b", "\"q\"", "line\nbreak", ""];

    public static readonly MetricDescriptor Counter = new("load_total", "Load.", MetricType.Counter, ["kind", "shard"]);

    public static readonly MetricDescriptor Histogram = new("load_seconds", "Load.", MetricType.Histogram, ["kind"], buckets: [0.1, 1, double.PositiveInfinity]);

    public static readonly MetricDescriptor ChildGauge = new("child_gauge", "Set by a child process.", MetricType.Gauge, ["who"]);

    public static BackendConfig Config(string connectionString, string keyPrefix, string flushInterval = "100ms") => new(new Dictionary<string, string?>
    {
        ["ConnectionString"] = connectionString,
        ["KeyPrefix"] = keyPrefix,
        ["FlushInterval"] = flushInterval,
    });
}
