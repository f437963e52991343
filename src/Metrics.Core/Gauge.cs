using System.Runtime.CompilerServices;

namespace Metrics;

/// <summary>A value that goes up and down: queue length, memory in use, temperature, requests in flight.</summary>
public sealed class Gauge : Metric<Gauge>, IDurationSink
{
    private readonly IMetricBackend? _value;

    /// <summary>The constructor of earlier versions, kept for code compiled against them; new code gets the one with a unit.</summary>
    /// <param name="name">The metric name.</param>
    /// <param name="help">What it measures.</param>
    /// <param name="labelNames">The label names.</param>
    /// <param name="defaultLabels">Values used for labels a child does not set.</param>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <param name="aggregation">How values from several processes combine in a shared backend.</param>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public Gauge(string name, string help, string[]? labelNames, IReadOnlyDictionary<string, string>? defaultLabels, MetricRegistry? registry, GaugeAggregation aggregation)
        : this(name, help, labelNames, defaultLabels, registry, aggregation, null)
    {
    }

    /// <summary>Creates a gauge and registers it.</summary>
    /// <param name="name">The metric name.</param>
    /// <param name="help">What it measures.</param>
    /// <param name="labelNames">The label names every observation must have values for.</param>
    /// <param name="defaultLabels">Values used for labels a child does not set.</param>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <param name="aggregation">
    /// How values from several processes combine in a shared backend. <see cref="GaugeAggregation.PerProcess"/> and
    /// <see cref="GaugeAggregation.LivePerProcess"/> add a <c>pid</c> label in every backend; in memory the other modes
    /// make no difference.
    /// </param>
    /// <param name="unit">
    /// The OpenMetrics unit (<c>seconds</c>, <c>bytes</c>...), shown as <c># UNIT</c> in OpenMetrics only; the name must
    /// end with <c>_&lt;unit&gt;</c>. None when null.
    /// </param>
    public Gauge(string name, string help, string[]? labelNames = null, IReadOnlyDictionary<string, string>? defaultLabels = null, MetricRegistry? registry = null, GaugeAggregation aggregation = GaugeAggregation.Sum, string? unit = null)
        : this(MetricRegistry.CreateFamily(MetricType.Gauge, name, help, labelNames, defaultLabels, registry, null, aggregation, unit: unit))
    {
    }

    private Gauge(MetricFamily family)
        : base(family, new string?[family.LabelNames.Length], MetricRegistry.RootValues(family))
    {
        if (FullValues is not null && family.TryGetChild(FullValues, out var existing))
        {
            // The same metric created again: this object shares the registered series.
            _value = ((Gauge)existing)._value;
        }
        else if (FullValues is not null)
        {
            _value = CreateRootValues(CreateValue);

            family.AddChild(this, FullValues);
        }
    }

    private Gauge(MetricFamily family, string?[] setValues, string[]? fullValues)
        : base(family, setValues, fullValues)
    {
        if (fullValues is not null)
        {
            _value = CreateValue();
        }
    }

    /// <summary>The current value, read from the backend.</summary>
    public double Value => Backing().Get();

    internal IMetricBackend? BackingValue => _value;

    /// <summary>Adds <paramref name="value"/> (default 1).</summary>
    /// <param name="value">The amount; negative amounts subtract.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Inc(double value = 1) => Backing().Inc(value);

    /// <summary>Subtracts <paramref name="value"/> (default 1).</summary>
    /// <param name="value">The amount.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dec(double value = 1) => Backing().Dec(value);

    /// <summary>Sets the value.</summary>
    /// <param name="value">The new value; NaN and infinities are stored as given.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set(double value) => Backing().Set(value);

    /// <summary>Sets the value to the current Unix time in seconds (with millisecond precision).</summary>
    public void SetToCurrentTime() => Set(MetricFamily.UnixNow());

    /// <summary>Increments now and decrements when the returned scope is disposed.</summary>
    /// <returns>The scope; dispose it once.</returns>
    public InProgressScope TrackInProgress()
    {
        Backing();
        return new InProgressScope(this);
    }

    /// <summary>Starts a timer that sets the gauge to the elapsed seconds when disposed.</summary>
    /// <returns>The timer.</returns>
    public MetricTimer NewTimer()
    {
        Backing();
        return new MetricTimer(this);
    }

    void IDurationSink.ObserveDuration(double seconds) => Set(seconds);

    private protected override Gauge CreateChild(string?[] setValues, string[]? fullValues) => new(Family, setValues, fullValues);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private IMetricBackend Backing()
    {
        var value = _value;
        if (value is null)
        {
            ThrowNotObservable();
        }

        return value!;
    }

    private IMetricBackend CreateValue()
    {
        MetricDescriptor? descriptor = null;
        return Family.CreateValue(FullValues!, null, ref descriptor);
    }
}
