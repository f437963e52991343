namespace Metrics.TestBackend.Extra;

public static class Marker
{
    public static int Touches { get; private set; }

    public static void Touch() => Touches++;
}

/// <summary>The assembly's only backend type, without the (BackendConfig, MetricDescriptor, HistogramBucket?) constructor the host needs.</summary>
public sealed class NoCtorBackend : IMetricBackend<NoCtorBackend>
{
    public NoCtorBackend(BackendConfig config)
    {
    }

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
