using System.Globalization;
using BenchmarkDotNet.Attributes;

namespace Metrics.Benchmarks;

/// <summary>
/// Our native histogram's observation against our classic one (default buckets) on the Memory backend, with the same
/// values as <see cref="HistogramObserve"/>: the classic observation is the baseline, so Ratio below 1 is faster.
/// </summary>
[MemoryDiagnoser]
public class NativeHistogramObserve
{
    private Histogram _classic = null!;
    private Histogram _native = null!;
    private Histogram _both = null!;
    private uint _next; // unsigned: a long run makes more than int.MaxValue calls

    [Benchmark(Baseline = true, Description = "classic (default buckets)")]
    public void ClassicObserve() => _classic.Observe(NextValue());

    [Benchmark(Description = "native (factor 1.1, schema 3)")]
    public void NativeObserve() => _native.Observe(NextValue());

    [Benchmark(Description = "native + classic")]
    public void BothObserve() => _both.Observe(NextValue());

    [GlobalSetup]
    public void Setup()
    {
        var registry = Peers.OurRegistry();
        var native = new NativeHistogramOptions { BucketFactor = 1.1 };
        _classic = new Histogram("classic_seconds", "Latency.", registry: registry);
        _native = new Histogram("native_seconds", "Latency.", registry: registry, native: native);
        _both = new Histogram("both_seconds", "Latency.", registry: registry, buckets: Histogram.DefaultBuckets, native: native);

        // Native buckets are created on first use; a steady-state observation finds its bucket.
        foreach (var value in SeriesData.Observations)
        {
            _native.Observe(value);
            _both.Observe(value);
        }
    }

    // Cycles through values that land in different buckets, so the bucket search is not one predicted branch.
    private double NextValue() => SeriesData.Observations[(int)(_next++ % (uint)SeriesData.Observations.Length)];
}

/// <summary>
/// Bytes one scrape carries for one histogram series: classic with default buckets against native (factor 1.1), in
/// the formats each can be scraped in, for a few sets of observations.
/// </summary>
internal static class ScrapeSize
{
    public static void Run(TextWriter output)
    {
        var sets = new (string Name, double[] Values)[]
        {
            ("7 values, 3 ms to 12 s (the observe benchmarks')", SeriesData.Observations),
            ("10,000 log-normal, median 50 ms, σ 1", LogNormal(10_000, sigma: 1)),
            ("10,000 log-normal, median 50 ms, σ 2", LogNormal(10_000, sigma: 2)),
        };

        output.WriteLine("Scrape bytes of one histogram series (no labels), Memory backend");
        output.WriteLine();
        output.WriteLine("| observations | classic, text 0.0.4 | classic, protobuf | native, protobuf | native buckets | native + classic, protobuf |");
        output.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (var (name, values) in sets)
        {
            var classicText = Bytes(values, native: false, classic: true, ExpositionFormat.PrometheusText);
            var classicProto = Bytes(values, native: false, classic: true, ExpositionFormat.Protobuf);
            var nativeProto = Bytes(values, native: true, classic: false, ExpositionFormat.Protobuf);
            var bothProto = Bytes(values, native: true, classic: true, ExpositionFormat.Protobuf);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {classicText:N0} | {classicProto:N0} | {nativeProto:N0} | {NativeBuckets(values)} | {bothProto:N0} |"));
        }

        output.WriteLine();
        output.WriteLine("Classic: the 11 default bounds plus +Inf. Native: schema 3 (buckets 9% wide), only the buckets used.");
    }

    private static long Bytes(double[] values, bool native, bool classic, ExpositionFormat format)
    {
        var registry = new MetricRegistry();
        var histogram = new Histogram("latency_seconds", "Request latency.", registry: registry,
            buckets: classic ? Histogram.DefaultBuckets : null,
            native: native ? new NativeHistogramOptions { BucketFactor = 1.1 } : null);
        foreach (var value in values)
        {
            histogram.Observe(value);
        }

        using var stream = new MemoryStream();
        registry.WriteAsync(stream, format).GetAwaiter().GetResult();
        return stream.Length;
    }

    // Distinct schema-3 buckets the values fall into: bucket index ceil(log2(v) × 8), as Prometheus defines them.
    private static int NativeBuckets(double[] values) => values.Select(v => Math.Ceiling(Math.Log2(v) * 8)).Distinct().Count();

    private static double[] LogNormal(int count, double sigma)
    {
        var random = new Random(42);
        return [.. Enumerable.Range(0, count).Select(_ =>
            0.05 * Math.Exp(sigma * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble())))];
    }
}
