namespace Metrics.TestBackend.Ambiguous;

public sealed class FirstBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<FirstBackend>
{
    public BackendConfig Config => config;

    public MetricDescriptor Metric => metric;

    public HistogramBucket? Bucket => histogramBucket;

    public static void Initialize(BackendConfig config)
    {
    }

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

public sealed class SecondBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<SecondBackend>
{
    public BackendConfig Config => config;

    public MetricDescriptor Metric => metric;

    public HistogramBucket? Bucket => histogramBucket;

    public static void Initialize(BackendConfig config)
    {
    }

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
