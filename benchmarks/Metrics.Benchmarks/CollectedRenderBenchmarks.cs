using BenchmarkDotNet.Attributes;

namespace Metrics.Benchmarks;

/// <summary>
/// Rendering the same 11,000 series as <see cref="Render11kSeries"/> from what a shared backend collected, in each format:
/// the writers' collected path (series found by position, histogram parts grouped), without a store's own read cost. The
/// values come back in the same arrays every scrape, as a store kept indexed returns them. No peer has this path.
/// </summary>
[MemoryDiagnoser]
public class RenderCollected11kSeries
{
    private readonly MemoryStream _stream = new();
    private MetricRegistry _registry = null!;

    [Params(ExpositionFormat.PrometheusText, ExpositionFormat.OpenMetrics, ExpositionFormat.Protobuf)]
    public ExpositionFormat Format { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _registry = new MetricRegistry(backend: ConfiguredBackend.Create<CollectedStore>());
        _ = new Counter("http_requests_total", "Requests served.", ["endpoint", "method"], registry: _registry);
        _ = new Histogram("http_request_duration_seconds", "Request latency.", ["endpoint"], registry: _registry);

        var counters = new CollectedValue[SeriesData.CounterSeries];
        for (var i = 0; i < counters.Length; i++)
        {
            counters[i] = new CollectedValue([SeriesData.Endpoints[i], SeriesData.Method(i)], null, i + 1);
        }

        var bounds = Histogram.DefaultBuckets.Append(double.PositiveInfinity).ToArray();
        var histograms = new List<CollectedValue>(SeriesData.HistogramSeries * (bounds.Length + 1));
        for (var i = 0; i < SeriesData.HistogramSeries; i++)
        {
            string[] labels = [SeriesData.Endpoints[i]];
            var observed = SeriesData.Observations.Select(value => value * (1 + (i % 7))).ToArray();
            var below = 0.0;
            foreach (var bound in bounds)
            {
                // Stored per bucket, not cumulative, as backends hold them.
                double upTo = observed.Count(value => value <= bound);
                histograms.Add(new CollectedValue(labels, HistogramBucket.ForUpperBound(bound), upTo - below));
                below = upTo;
            }

            histograms.Add(new CollectedValue(labels, HistogramBucket.Sum, observed.Sum()));
        }

        CollectedStore.Values = [counters, histograms];

        // Grows the destination once, so that the stream's growth is not timed.
        _stream.Capacity = 4 * 1024 * 1024;
    }

    [Benchmark(Description = "Metrics (collected)")]
    public Task Render()
    {
        _stream.Position = 0;
        return _registry.WriteAsync(_stream, Format);
    }

    /// <summary>A shared backend whose collection returns the values the setup built; updates go nowhere.</summary>
    public sealed class CollectedStore : IMetricBackend<CollectedStore>
    {
        public CollectedStore(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
        {
        }

        public static IReadOnlyList<CollectedValue>[] Values { get; set; } = [];

        public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses;

        public static void Initialize(BackendConfig config)
        {
        }

        // Families past the two the setup declared (the registry's cardinality overflow counter) hold nothing.
        public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) =>
            [.. Values, .. Enumerable.Repeat<IReadOnlyList<CollectedValue>>([], Math.Max(0, families.Count - Values.Length))];

        public void Inc(double value)
        {
        }

        public void Dec(double value)
        {
        }

        public void Set(double value)
        {
        }

        public double Get() => 0;
    }
}
