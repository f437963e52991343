[assembly: Metrics.MetricBackend(typeof(Metrics.Conformance.BrokenBackend.BrokenDecBackend))]

namespace Metrics.Conformance.BrokenBackend;

/// <summary>A plugin whose Dec adds: the runner must report it and exit non-zero.</summary>
public sealed class BrokenDecBackend : IMetricBackend<BrokenDecBackend>
{
    private long _bits;

    public BrokenDecBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
    }

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value) => AtomicDouble.Add(ref _bits, value);

    public void Dec(double value) => Inc(value);

    public void Set(double value) => Interlocked.Exchange(ref _bits, BitConverter.DoubleToInt64Bits(value));

    public double Get() => AtomicDouble.Read(ref _bits);
}
