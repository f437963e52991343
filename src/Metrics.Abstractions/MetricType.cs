namespace Metrics;

/// <summary>The kind of metric a value belongs to.</summary>
public enum MetricType
{
    /// <summary>A monotonically increasing total; values only receive <see cref="IMetricBackend.Inc"/> with non-negative amounts.</summary>
    Counter,

    /// <summary>A value that goes up and down; receives <c>Inc</c>, <c>Dec</c> and <c>Set</c>.</summary>
    Gauge,

    /// <summary>Observations counted into buckets; one value per bucket plus one for the sum.</summary>
    Histogram,

    /// <summary>Observations summarised by a count and a sum; one value each.</summary>
    Summary,
}
