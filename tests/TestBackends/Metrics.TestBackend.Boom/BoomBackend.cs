using Metrics;

[assembly: MetricBackend(typeof(Boom.BoomBackend))]

namespace Boom;

/// <summary>
/// Fails to start in one of two ways, each hiding the cause under a wrapping exception: its static constructor throws
/// when the file <c>boom-in-static-constructor</c> lies beside the assembly (a file, because a type initializer sees no
/// configuration), and <c>Initialize</c> throws when the setting <c>Fail</c> is true, echoing the secrets it was given.
/// </summary>
public sealed class BoomBackend : IMetricBackend<BoomBackend>
{
    public const string StaticConstructorMarker = "boom-in-static-constructor";

    static BoomBackend()
    {
        var folder = Path.GetDirectoryName(typeof(BoomBackend).Assembly.Location)!;
        if (File.Exists(Path.Combine(folder, StaticConstructorMarker)))
        {
            throw new InvalidOperationException("Boom could not start.", new IOException("Permission denied reading '/etc/boom/boom.key'."));
        }
    }

    public BoomBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
    }

    public static void Initialize(BackendConfig config)
    {
        if (config.GetBoolean("Fail", false))
        {
            var cause = new UnauthorizedAccessException(
                $"Login to {config["Host"]} refused with password '{config["Password"]}' and token {config["ApiToken"]} (connection '{config["ConnectionString"]}').");
            throw new InvalidOperationException("Boom could not connect.", cause);
        }
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
