using System.Runtime.CompilerServices;

namespace Metrics;

/// <summary>
/// Observations summarised by their count and sum (for example request sizes), from which rates and averages follow.
/// </summary>
public sealed unsafe class Summary : Metric<Summary>, IDurationSink
{
    private readonly IMetricBackend? _count;
    private readonly IMetricBackend? _sum;

    // Value cells of the count and the sum when the backend has both: an observation is then two compare-and-swaps.
    // Read again when the backend moved the values (the old word then holds AtomicDouble.MovedCell).
    private long* _countCell;
    private long* _sumCell;

    /// <summary>The constructor of earlier versions, kept for code compiled against them; new code gets the one with a unit.</summary>
    /// <param name="name">The metric name.</param>
    /// <param name="help">What it observes.</param>
    /// <param name="labelNames">The label names.</param>
    /// <param name="defaultLabels">Values used for labels a child does not set.</param>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public Summary(string name, string help, string[]? labelNames, IReadOnlyDictionary<string, string>? defaultLabels, MetricRegistry? registry)
        : this(name, help, labelNames, defaultLabels, registry, null)
    {
    }

    /// <summary>Creates a summary and registers it.</summary>
    /// <param name="name">The metric name.</param>
    /// <param name="help">What it observes.</param>
    /// <param name="labelNames">The label names every observation must have values for; <c>quantile</c> is reserved.</param>
    /// <param name="defaultLabels">Values used for labels a child does not set.</param>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <param name="unit">
    /// The OpenMetrics unit (<c>seconds</c>, <c>bytes</c>...), shown as <c># UNIT</c> in OpenMetrics only; the name must
    /// end with <c>_&lt;unit&gt;</c>. None when null.
    /// </param>
    public Summary(string name, string help, string[]? labelNames = null, IReadOnlyDictionary<string, string>? defaultLabels = null, MetricRegistry? registry = null, string? unit = null)
        : this(MetricRegistry.CreateFamily(MetricType.Summary, name, help, labelNames, defaultLabels, registry, null, GaugeAggregation.Sum, unit: unit))
    {
    }

    private Summary(MetricFamily family)
        : base(family, new string?[family.LabelNames.Length], MetricRegistry.RootValues(family))
    {
        if (FullValues is not null && family.TryGetChild(FullValues, out var existing))
        {
            // The same metric created again: this object shares the registered series.
            var shared = (Summary)existing;
            _count = shared._count;
            _sum = shared._sum;
            _countCell = shared._countCell;
            _sumCell = shared._sumCell;
        }
        else if (FullValues is not null)
        {
            (_count, _sum) = CreateRootValues(CreateValues);
            var (countCell, sumCell) = CellsOf(_count, _sum);
            _countCell = (long*)countCell;
            _sumCell = (long*)sumCell;

            family.AddChild(this, FullValues);
        }
    }

    private Summary(MetricFamily family, string?[] setValues, string[]? fullValues)
        : base(family, setValues, fullValues)
    {
        if (fullValues is not null)
        {
            (_count, _sum) = CreateValues();
            var (countCell, sumCell) = CellsOf(_count, _sum);
            _countCell = (long*)countCell;
            _sumCell = (long*)sumCell;
        }
    }

    /// <summary>The number of observations, read from the backend.</summary>
    public double Count => Observable().Get();

    /// <summary>The sum of observations, read from the backend.</summary>
    public double Sum
    {
        get
        {
            Observable();
            return _sum!.Get();
        }
    }

    internal IMetricBackend? CountValue => _count;

    internal IMetricBackend? SumValue => _sum;

    /// <summary>Records one observation.</summary>
    /// <param name="value">The observed value; NaN is refused.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Observe(double value)
    {
        var countCell = _countCell;
        if (countCell != null && !double.IsNaN(value))
        {
            if (!AtomicDouble.TryAddToCell(ref *countCell, 1))
            {
                _count!.Inc(1);
                FollowIfMoved(countCell);
            }

            var sumCell = _sumCell;
            if (!AtomicDouble.TryAddToCell(ref *sumCell, value))
            {
                _sum!.Inc(value);
                FollowIfMoved(sumCell);
            }

            return;
        }

        var count = _count;
        if (count is null || double.IsNaN(value))
        {
            ThrowInvalid(value);
        }

        count!.Inc(1);
        _sum!.Inc(value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FollowIfMoved(long* cell)
    {
        if (Volatile.Read(ref *cell) == AtomicDouble.MovedCell)
        {
            var (countCell, sumCell) = CellsOf(_count!, _sum!);
            _countCell = (long*)countCell;
            _sumCell = (long*)sumCell;
        }
    }

    private static (nint Count, nint Sum) CellsOf(IMetricBackend count, IMetricBackend sum)
    {
        var countCell = count.ValueCell;
        var sumCell = sum.ValueCell;
        return countCell == 0 || sumCell == 0 ? (0, 0) : (countCell, sumCell);
    }

    /// <summary>Starts a timer that observes the elapsed seconds when disposed.</summary>
    /// <returns>The timer.</returns>
    public MetricTimer NewTimer()
    {
        Observable();
        return new MetricTimer(this);
    }

    void IDurationSink.ObserveDuration(double seconds) => Observe(seconds);

    private protected override Summary CreateChild(string?[] setValues, string[]? fullValues) => new(Family, setValues, fullValues);

    private (IMetricBackend Count, IMetricBackend Sum) CreateValues()
    {
        MetricDescriptor? descriptor = null;
        var count = Family.CreateValue(FullValues!, HistogramBucket.Count, ref descriptor);
        var sum = Family.CreateValue(FullValues!, HistogramBucket.Sum, ref descriptor);
        return (count, sum);
    }

    private IMetricBackend Observable()
    {
        if (_count is null)
        {
            ThrowNotObservable();
        }

        return _count!;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowInvalid(double value)
    {
        Observable();
        throw new ArgumentOutOfRangeException(nameof(value), value, $"Summary '{Name}' cannot observe NaN.");
    }
}
