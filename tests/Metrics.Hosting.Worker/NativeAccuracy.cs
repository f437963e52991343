using Metrics;

namespace Metrics.Hosting.Worker;

/// <summary>
/// The native-histogram accuracy workload, shared as source by the worker processes that observe it and the test that
/// checks what Prometheus computes from it: one seeded set of log-normal latencies and the histogram they go into.
/// </summary>
internal static class NativeAccuracy
{
    public const string Name = "native_accuracy_seconds";

    public const int Seed = 20240917;

    public const int Samples = 1_000_000;

    /// <summary>1.1 gives schema 3: buckets grow by 2^(1/8), so a quantile is within that factor of the true one.</summary>
    public const double BucketFactor = 1.1;

    public const int Schema = 3;

    /// <summary>
    /// Every sample is a whole multiple of 2^-20 s (about a microsecond) and their total stays below 2^33 s, so every
    /// partial sum is a multiple of 2^-20 below 2^53 × 2^-20: exact as a double. The total is therefore the same in
    /// whatever order and grouping the processes, the backends' batching and Prometheus add them, and can be compared
    /// exactly.
    /// </summary>
    public const double Grain = 1.0 / (1 << 20);

    public static Histogram Create(MetricRegistry registry) =>
        new(Name, "Seeded log-normal latencies.", registry: registry, native: new NativeHistogramOptions { BucketFactor = BucketFactor });

    /// <summary>
    /// <paramref name="count"/> log-normal values (median 50 ms, σ = 1, so about 1 in 10^6 lies beyond 7 s), the same in
    /// every process: a seeded <see cref="Random"/> gives the same sequence on every run of the same runtime.
    /// </summary>
    public static double[] Generate(int count = Samples)
    {
        var random = new Random(Seed);
        var values = new double[count];
        var median = Math.Log(0.05);
        for (var i = 0; i < count; i++)
        {
            // Box-Muller: 1 - NextDouble() is in (0, 1], so the logarithm is finite.
            var normal = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
            values[i] = Math.Max(Grain, Math.Round(Math.Exp(median + normal) / Grain) * Grain);
        }

        return values;
    }

    /// <summary>Observes the samples of part <paramref name="part"/> of <paramref name="parts"/> (every parts-th, from part).</summary>
    public static void ObservePart(Histogram histogram, double[] samples, int part, int parts)
    {
        for (var i = part; i < samples.Length; i += parts)
        {
            histogram.Observe(samples[i]);
        }
    }
}
