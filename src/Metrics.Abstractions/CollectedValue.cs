namespace Metrics;

/// <summary>One stored value returned by <see cref="IMetricBackend{TSelf}.Collect"/>.</summary>
/// <param name="LabelValues">The series' full label values, in the order of the family's label names.</param>
/// <param name="Bucket">The histogram or summary part, or <see langword="null"/> for a counter or gauge.</param>
/// <param name="Value">The stored value.</param>
public readonly record struct CollectedValue(IReadOnlyList<string> LabelValues, HistogramBucket? Bucket, double Value)
{
    /// <summary>The latest exemplar stored for this value, from a backend declaring <see cref="BackendCapabilities.Exemplars"/>; null when none.</summary>
    public RecordedExemplar? Exemplar { get; init; }
}
