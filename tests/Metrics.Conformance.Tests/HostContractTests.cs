using System.Collections.Concurrent;

namespace Metrics.Conformance.Tests;

/// <summary>
/// What the suite cannot observe from outside a third-party backend, checked here with instrumented backends:
/// Initialize runs once per type and configuration, and the descriptor arrives complete and unchanged.
/// </summary>
public class HostContractTests
{
    [Fact]
    public void Initialize_runs_once_per_configuration_before_the_first_value()
    {
        var one = new BackendConfig([new("Store", Guid.NewGuid().ToString("N"))]);
        var equal = new BackendConfig([new("Store", one["Store"])]);
        var other = new BackendConfig([new("Store", Guid.NewGuid().ToString("N"))]);

        Parallel.For(0, 16, _ => ConfiguredBackend.Create<CountingBackend>(one).CreateValue(new MetricDescriptor("x", "x", MetricType.Counter)));
        ConfiguredBackend.Create<CountingBackend>(equal).CreateValue(new MetricDescriptor("y", "y", MetricType.Counter));
        ConfiguredBackend.Create<CountingBackend>(other).CreateValue(new MetricDescriptor("z", "z", MetricType.Counter));

        Assert.Equal(1, CountingBackend.Initialized[one]);
        Assert.Equal(1, CountingBackend.Initialized[other]);
        Assert.Equal(0, CountingBackend.CreatedBeforeInitialize);
    }

    [Fact]
    public void The_suite_passes_a_backend_that_counts_Initialize()
    {
        var created = new ConcurrentBag<BackendConfig>();
        var results = ConformanceTarget.ForType<CountingBackend>(
                () =>
                {
                    var config = new BackendConfig([new("Store", Guid.NewGuid().ToString("N"))]);
                    created.Add(config);
                    return config;
                },
                new ConformanceOptions { IncrementsPerThread = 20_000 })
            .WithInvalidConfigs([new([new("Store", "")])]).RunAll();
        Assert.All(results, r => Assert.True(r.Passed, r.Failure?.Message));
        var initialized = CountingBackend.Initialized.Where(pair => created.Contains(pair.Key)).ToList();
        Assert.NotEmpty(initialized);
        // Once per configuration, and once more after each ShutdownAsync of it; and every check releases what it
        // selected, so each initialization is followed by exactly one ShutdownAsync.
        Assert.All(initialized, pair => Assert.Equal(pair.Value, CountingBackend.ShutDown.GetValueOrDefault(pair.Key)));
        // The lifecycle check shuts a configuration down and uses it again.
        Assert.Contains(initialized, pair => pair.Value == 2);
    }

    [Fact]
    public void The_descriptor_built_by_the_suite_arrives_unchanged()
    {
        RecordingBackend.Seen.Clear();
        var target = ConformanceTarget.ForType<RecordingBackend>(options: new ConformanceOptions { IncrementsPerThread = 1_000 });
        var result = ConformanceSuite.Run(ConformanceSuite.Find("DistinctBucketsDoNotShareValues"), target);
        Assert.True(result.Passed, result.Failure?.Message);
        var bucket = Assert.Single(RecordingBackend.Seen, s => s.Metric.Name.StartsWith("buckets_", StringComparison.Ordinal) && s.Metric.LabelValues[0] == "/" && s.Bucket == HistogramBucket.ForUpperBound(0.10000000000000002));
        Assert.Equal("Conformance histogram.", bucket.Metric.Help);
        Assert.Equal(MetricType.Histogram, bucket.Metric.Type);
        Assert.Equal(["path"], bucket.Metric.LabelNames);
        Assert.Equal([-1, 0, 1e-300, 0.1, 0.10000000000000002, 0.5, 1, 1.0000000000000002, 2.5, 1e300, double.PositiveInfinity], bucket.Metric.Buckets);
    }

    [Fact]
    public void The_metrics_API_hands_the_backend_complete_descriptors()
    {
        RecordingBackend.Seen.Clear();
        var registry = new MetricRegistry("app", ConfiguredBackend.Create<RecordingBackend>());
        var histogram = new Histogram("latency_seconds", "Latency.", ["route", "env"], new Dictionary<string, string> { ["env"] = "prod" }, registry, [0.5, 1]);
        histogram.Labels("/a,b").Observe(0.7);
        var counter = new Counter("requests_total", "Requests.", ["code"], registry: registry);
        counter.Labels(string.Empty).Inc();
        var summary = new Summary("size_bytes", "Sizes.", registry: registry);
        summary.Observe(3);

        var parts = RecordingBackend.Seen.Where(s => s.Metric.Name == "app_latency_seconds").ToList();
        Assert.Equal([HistogramBucket.ForUpperBound(0.5), HistogramBucket.ForUpperBound(1), HistogramBucket.ForUpperBound(double.PositiveInfinity), HistogramBucket.Sum], parts.Select(p => p.Bucket!.Value));
        Assert.All(parts, p =>
        {
            Assert.Equal("Latency.", p.Metric.Help);
            Assert.Equal(MetricType.Histogram, p.Metric.Type);
            Assert.Equal(["route", "env"], p.Metric.LabelNames);
            Assert.Equal(["/a,b", "prod"], p.Metric.LabelValues);
            Assert.Equal([0.5, 1, double.PositiveInfinity], p.Metric.Buckets);
        });
        var requests = Assert.Single(RecordingBackend.Seen, s => s.Metric.Name == "app_requests_total");
        Assert.Equal([string.Empty], requests.Metric.LabelValues);
        Assert.Null(requests.Bucket);
        Assert.Equal([HistogramBucket.Count, HistogramBucket.Sum], RecordingBackend.Seen.Where(s => s.Metric.Name == "app_size_bytes").Select(s => s.Bucket!.Value));
    }

    [Fact]
    public void The_metrics_API_follows_a_moved_value_cell_after_one_call_through_the_backend()
    {
        var registry = new MetricRegistry("moving", ConfiguredBackend.Create<MovingBackend>(new BackendConfig([new("Store", Guid.NewGuid().ToString("N"))])));
        var counter = new Counter("requests_total", "Requests.", registry: registry);
        var summary = new Summary("size_bytes", "Sizes.", registry: registry);
        var histogram = new Histogram("latency_seconds", "Latency.", registry: registry, buckets: [1]);
        counter.Inc(2);
        summary.Observe(3);
        histogram.Observe(0.5);
        Assert.Equal(0, MovingBackend.Calls);

        MovingBackend.MoveAll();
        // Each moved word is refused once and that update goes to the backend.
        counter.Inc(1);
        Assert.Equal(1, MovingBackend.Calls);
        // The summary reads both cells again when its count was moved, so its sum goes straight to the new word.
        summary.Observe(4);
        Assert.Equal(2, MovingBackend.Calls);
        // The histogram's bucket and sum are read again one at a time.
        histogram.Observe(0.5);
        Assert.Equal(4, MovingBackend.Calls);
        Assert.Equal(1, counter.Value);
        Assert.Equal(1, summary.Count);
        Assert.Equal(4, summary.Sum);

        counter.Inc(1);
        summary.Observe(1);
        histogram.Observe(0.5);
        // The host read the new cells: no more calls.
        Assert.Equal(4, MovingBackend.Calls);
        Assert.Equal(2, counter.Value);
        Assert.Equal(2, summary.Count);
        Assert.Equal(5, summary.Sum);
    }

    /// <summary>Moves every value to a new word on demand, as a shared backend does when its store file is replaced: what the old word held is lost.</summary>
    public sealed unsafe class MovingBackend : IMetricBackend<MovingBackend>
    {
        private static readonly ConcurrentQueue<MovingBackend> All = [];
        private static int _calls;
        private long[] _word = GC.AllocateArray<long>(1, pinned: true);

        public MovingBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) => All.Enqueue(this);

        public static int Calls => Volatile.Read(ref _calls);

        public nint ValueCell => (nint)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _word[0]);

        public static void Initialize(BackendConfig config)
        {
        }

        public static void MoveAll()
        {
            foreach (var value in All)
            {
                var old = value._word;
                value._word = GC.AllocateArray<long>(1, pinned: true);
                // The old word stays reachable from the host's pointer only: keep it alive, as the contract asks.
                Kept.Enqueue(old);
                Volatile.Write(ref old[0], AtomicDouble.MovedCell);
            }
        }

        private static readonly ConcurrentQueue<long[]> Kept = [];

        public void Inc(double value)
        {
            Interlocked.Increment(ref _calls);
            AtomicDouble.Add(ref _word[0], value);
        }

        public void Dec(double value) => Inc(-value);

        public void Set(double value) => AtomicDouble.Write(ref _word[0], value);

        public double Get() => AtomicDouble.Read(ref _word[0]);
    }

    /// <summary>Counts Initialize per configuration and notices values created before it.</summary>
    public sealed class CountingBackend : IMetricBackend<CountingBackend>
    {
        private readonly Cell _cell = new();

        public CountingBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
        {
            if (!Initialized.ContainsKey(config))
            {
                Interlocked.Increment(ref _createdBeforeInitialize);
            }
        }

        public static ConcurrentDictionary<BackendConfig, int> Initialized { get; } = new();

        public static ConcurrentDictionary<BackendConfig, int> ShutDown { get; } = new();

        public static ValueTask ShutdownAsync(BackendConfig config, CancellationToken cancellationToken)
        {
            ShutDown.AddOrUpdate(config, 1, (_, n) => n + 1);
            return ValueTask.CompletedTask;
        }

        public static int CreatedBeforeInitialize => Volatile.Read(ref _createdBeforeInitialize);

        private static int _createdBeforeInitialize;

        public static void Initialize(BackendConfig config)
        {
            // Gives up the processor a few times, so racing selections overlap here if the host does not serialize them.
            for (var i = 0; i < 100; i++)
            {
                Thread.Yield();
            }
            _ = config.GetRequiredString("Store");
            Initialized.AddOrUpdate(config, 1, (_, n) => n + 1);
        }

        public void Inc(double value) => _cell.Add(value);

        public void Dec(double value) => _cell.Add(-value);

        public void Set(double value) => _cell.Set(value);

        public double Get() => _cell.Value;
    }

    /// <summary>Records every descriptor and part it is created with.</summary>
    public sealed class RecordingBackend : IMetricBackend<RecordingBackend>
    {
        private readonly Cell _cell = new();

        public RecordingBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) => Seen.Enqueue((metric, histogramBucket));

        public static ConcurrentQueue<(MetricDescriptor Metric, HistogramBucket? Bucket)> Seen { get; } = [];

        public static void Initialize(BackendConfig config)
        {
        }

        public void Inc(double value) => _cell.Add(value);

        public void Dec(double value) => _cell.Add(-value);

        public void Set(double value) => _cell.Set(value);

        public double Get() => _cell.Value;
    }
}
