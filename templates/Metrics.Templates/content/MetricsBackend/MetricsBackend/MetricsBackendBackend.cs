[assembly: Metrics.MetricBackend(typeof(MetricsBackend.MetricsBackendBackend))]

namespace MetricsBackend;

using global::Metrics;

/// <summary>
/// One metric value of the MetricsBackend backend. The host creates one instance per value: one series of a counter or
/// gauge, or one bucket, sum or count of a histogram or summary series.
/// </summary>
/// <remarks>
/// This starting point keeps the value in process memory. Replace the storage with yours; the conformance tests in
/// MetricsBackend.Tests say what each member must do, and fail with a message naming the likely bug.
/// </remarks>
public sealed class MetricsBackendBackend : IMetricBackend<MetricsBackendBackend>
{
    private long _bits;

    /// <summary>Creates a value reading 0.</summary>
    /// <param name="config">The backend's configuration section (Metrics:BackendConfig).</param>
    /// <param name="metric">The metric that owns the value: name, type, label names and values.</param>
    /// <param name="histogramBucket">Which part of a histogram or summary series this value is, or null.</param>
    public MetricsBackendBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
    }

    /// <summary>
    /// Called once per configuration before the first value: read and validate settings here with the typed reads of
    /// <see cref="BackendConfig"/>, so a wrong setting fails the application at startup with a message naming the key.
    /// </summary>
    /// <param name="config">The backend's configuration section.</param>
    public static void Initialize(BackendConfig config) => _ = config.GetInt32("MaxSeries", 10_000);

    /// <inheritdoc/>
    public void Inc(double value) => AtomicDouble.Add(ref _bits, value);

    /// <inheritdoc/>
    public void Dec(double value) => AtomicDouble.Add(ref _bits, -value);

    /// <inheritdoc/>
    public void Set(double value) => Interlocked.Exchange(ref _bits, BitConverter.DoubleToInt64Bits(value));

    /// <inheritdoc/>
    public double Get() => AtomicDouble.Read(ref _bits);
}
