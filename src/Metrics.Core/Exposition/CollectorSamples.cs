namespace Metrics;

/// <summary>What both exposition writers make of a custom collector's snapshot before writing it in their format.</summary>
internal static class CollectorSamples
{
    /// <summary>The snapshot's metric name with the registry's prefix.</summary>
    public static string Name(MetricRegistry registry, MetricSnapshot snapshot) =>
        registry.Prefix is null ? snapshot.Name : $"{registry.Prefix}_{snapshot.Name}";

    /// <summary>
    /// The name the samples of <paramref name="name"/> (prefixed) carry: a counter's <c>_total</c> name, as the registry's
    /// own counters keep in every format, and an info's <c>_info</c> name.
    /// </summary>
    public static string SampleName(string name, MetricSnapshotKind kind) => kind switch
    {
        MetricSnapshotKind.Counter => NameRules.CounterBase(name) + "_total",
        MetricSnapshotKind.Info => name + "_info",
        _ => name,
    };

    /// <summary>
    /// Fills <paramref name="perBucket"/> with the sample's per-bucket counts: the writers take them as backends store
    /// them, collectors give cumulative ones, as exposed.
    /// </summary>
    public static Span<double> PerBucket(HistogramSample sample, double[] perBucket, int bounds)
    {
        var previous = 0.0;
        for (var i = 0; i < bounds; i++)
        {
            perBucket[i] = sample.CumulativeCounts[i] - previous;
            previous = sample.CumulativeCounts[i];
        }

        return perBucket.AsSpan(0, bounds);
    }
}
