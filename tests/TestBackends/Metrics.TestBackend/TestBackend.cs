using System.Collections.Concurrent;

[assembly: Metrics.MetricBackend(typeof(Metrics.TestBackend.TestBackend))]

namespace Metrics.TestBackend;

/// <summary>
/// Stores values in memory, scaled by the <c>Multiplier</c> setting on read, so a scrape shows that this plugin,
/// and not the built-in Memory backend, holds the values.
/// </summary>
public sealed class TestBackend : IMetricBackend<TestBackend>
{
    private static readonly ConcurrentDictionary<BackendConfig, double> Multipliers = new();
    private readonly double _multiplier;
    private readonly Lock _lock = new();
    private double _value;

    public TestBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) =>
        _multiplier = Multipliers.TryGetValue(config, out var m) ? m : throw new InvalidOperationException("Initialize was not called for this configuration.");

    /// <summary>How many times Initialize ran, read by the tests through reflection.</summary>
    public static int InitializeCount { get; private set; }

    public static void Initialize(BackendConfig config)
    {
        // Calls into a dependency from the plugin folder, so the tests can see where dependencies load from.
        Extra.Marker.Touch();
        Multipliers[config] = config.GetDouble("Multiplier", 1);
        InitializeCount++;
    }

    public void Inc(double value)
    {
        lock (_lock)
        {
            _value += value;
        }
    }

    public void Dec(double value) => Inc(-value);

    public void Set(double value)
    {
        lock (_lock)
        {
            _value = value;
        }
    }

    public double Get()
    {
        lock (_lock)
        {
            return _value * _multiplier;
        }
    }
}
