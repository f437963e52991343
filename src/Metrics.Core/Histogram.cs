using System.Globalization;
using System.Runtime.CompilerServices;

namespace Metrics;

/// <summary>Observations counted into buckets by value (for example request latencies), from which quantiles are estimated.</summary>
public sealed unsafe class Histogram : Metric<Histogram>, IDurationSink
{
    /// <summary>The default buckets, suited to latencies in seconds: .005 to 10 (+Inf is added).</summary>
    public static IReadOnlyList<double> DefaultBuckets { get; } = [.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10];

    private readonly IMetricBackend[]? _buckets;
    private readonly IMetricBackend? _sum;
    private readonly double[] _bounds;

    // Value cells of every bucket and of the sum when the backend has them all: an observation is then two
    // compare-and-swaps here, no call.
    private readonly nint[]? _bucketCells;
    // Read again when the backend moved the value (the old word then holds AtomicDouble.MovedCell); so are the cells above.
    private long* _sumCell;
    private readonly bool _atomicObserve;

    // When this series may take its next automatic exemplar (Environment.TickCount64); see MetricRegistry.AutomaticExemplars.
    private long _nextAutomaticExemplar;

    // Native buckets when the histogram is native and the backend stores them; observations then take the out-of-line
    // path, so a classic histogram's inlined observe is unchanged.
    private readonly NativeSeries? _native;
    private readonly nint[]? _nativeClassicCells;

    // Native without classic buckets beyond +Inf: the +Inf bucket is never written, its count is the native buckets'
    // total, taken at scrape time. One compare-and-swap fewer per observation, and the text formats' _count can never
    // disagree with the protobuf count.
    private readonly bool _nativeOnly;

    // What the native fast path reads, one load from this object each: the schema's wide mantissa table and the series'
    // current cells (with their base key and schema). Replaced by the series whenever it adds a bucket or lowers the schema.
    private readonly double _nativeZeroThreshold;
    private WideSlot[]? _nativeSlots;
    private nint[] _nativeCells = [0, int.MinValue, 0];

    // The series' direct cells (NativeSeries.TryCountDirect): positive values in the range of its buckets find their cell
    // with one load. Tried first; null when the series has no such table.
    private nint[]? _nativeDirect;

    /// <summary>The constructor of earlier versions, kept for code compiled against them; new code gets the one with a unit.</summary>
    /// <param name="name">The metric name.</param>
    /// <param name="help">What it observes.</param>
    /// <param name="labelNames">The label names.</param>
    /// <param name="defaultLabels">Values used for labels a child does not set.</param>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <param name="buckets">Upper bounds; see the constructor with a unit.</param>
    /// <param name="native">Native histogram settings, or null.</param>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public Histogram(string name, string help, string[]? labelNames, IReadOnlyDictionary<string, string>? defaultLabels, MetricRegistry? registry, IEnumerable<double>? buckets, NativeHistogramOptions? native)
        : this(name, help, labelNames, defaultLabels, registry, buckets, native, null)
    {
    }

    /// <summary>Creates a histogram and registers it.</summary>
    /// <param name="name">The metric name.</param>
    /// <param name="help">What it observes.</param>
    /// <param name="labelNames">The label names every observation must have values for; <c>le</c> is reserved.</param>
    /// <param name="defaultLabels">Values used for labels a child does not set.</param>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <param name="buckets">
    /// Upper bounds, strictly increasing; +Inf is added when missing. When null: <see cref="DefaultBuckets"/>, or only +Inf
    /// for a native histogram (give buckets to keep classic ones beside the native ones for text-format scrapers).
    /// </param>
    /// <param name="native">
    /// Makes this a native histogram (see <see cref="NativeHistogramOptions"/>); classic only when null, or when the
    /// backend does not store native buckets.
    /// </param>
    /// <param name="unit">
    /// The OpenMetrics unit (<c>seconds</c>, <c>bytes</c>...), shown as <c># UNIT</c> in OpenMetrics only; the name must
    /// end with <c>_&lt;unit&gt;</c>. None when null.
    /// </param>
    public Histogram(string name, string help, string[]? labelNames = null, IReadOnlyDictionary<string, string>? defaultLabels = null, MetricRegistry? registry = null, IEnumerable<double>? buckets = null, NativeHistogramOptions? native = null, string? unit = null)
        : this(MetricRegistry.CreateFamily(MetricType.Histogram, name, help, labelNames, defaultLabels, registry, ValidateBuckets(name, buckets ?? (native is null ? DefaultBuckets : [double.PositiveInfinity])), GaugeAggregation.Sum, native, unit))
    {
    }

    private Histogram(MetricFamily family)
        : base(family, new string?[family.LabelNames.Length], MetricRegistry.RootValues(family))
    {
        _bounds = family.Buckets;
        if (FullValues is not null && family.TryGetChild(FullValues, out var existing))
        {
            // The same metric created again: this object shares the registered series.
            var shared = (Histogram)existing;
            _buckets = shared._buckets;
            _sum = shared._sum;
            _bucketCells = shared._bucketCells;
            _sumCell = shared._sumCell;
            _atomicObserve = shared._atomicObserve;
            _native = shared._native;
            _nativeClassicCells = shared._nativeClassicCells;
            _nativeOnly = shared._nativeOnly;
            _nativeZeroThreshold = shared._nativeZeroThreshold;
            _native?.Attach(this);
        }
        else if (FullValues is not null)
        {
            (_buckets, _sum) = CreateRootValues(CreateValues);
            (_bucketCells, var sumCell, _atomicObserve) = CellsOf(family, _buckets, _sum);
            _sumCell = (long*)sumCell;
            (_native, _nativeClassicCells, _bucketCells) = NativeOf(family, FullValues, _bucketCells);
            _nativeOnly = _native is not null && _bounds.Length == 1;
            _nativeZeroThreshold = _native?.ZeroThreshold ?? 0;
            _native?.Attach(this);

            family.AddChild(this, FullValues);
        }
    }

    private Histogram(MetricFamily family, string?[] setValues, string[]? fullValues)
        : base(family, setValues, fullValues)
    {
        _bounds = family.Buckets;
        if (fullValues is not null)
        {
            (_buckets, _sum) = CreateValues();
            (_bucketCells, var sumCell, _atomicObserve) = CellsOf(family, _buckets, _sum);
            _sumCell = (long*)sumCell;
            (_native, _nativeClassicCells, _bucketCells) = NativeOf(family, fullValues, _bucketCells);
            _nativeOnly = _native is not null && _bounds.Length == 1;
            _nativeZeroThreshold = _native?.ZeroThreshold ?? 0;
            _native?.Attach(this);
        }
    }

    /// <summary>Given by <see cref="NativeSeries"/> under its lock: the state <see cref="ObserveThroughBackend"/> counts with.</summary>
    internal void PublishNative(WideSlot[]? slots, nint[] cells, nint[]? direct)
    {
        Volatile.Write(ref _nativeCells, cells);
        Volatile.Write(ref _nativeSlots, slots);
        Volatile.Write(ref _nativeDirect, direct);
    }

    /// <summary>The bucket upper bounds, ending with +Inf.</summary>
    public IReadOnlyList<double> Buckets => Family.ReadOnlyBuckets;

    internal IMetricBackend[]? BucketValues => _buckets;

    internal IMetricBackend? SumValue => _sum;

    /// <summary>The native buckets of this series, or null when it keeps classic buckets only.</summary>
    internal NativeSeries? NativeValues => _native;

    /// <summary>
    /// Whether this series is native with no classic bucket but +Inf, which it then never writes: a scrape takes the
    /// count from the native buckets.
    /// </summary>
    internal bool NativeOnly => _nativeOnly;

    /// <summary>
    /// The schema this series counts new observations at, or null when it is not native (not declared so, or its backend
    /// does not store native buckets). Lower than configured after the bucket limit halved the resolution.
    /// </summary>
    public int? NativeSchema => _native?.Schema;

    /// <summary><paramref name="count"/> buckets starting at <paramref name="start"/>, each <paramref name="width"/> above the previous.</summary>
    /// <param name="start">The first upper bound.</param>
    /// <param name="width">The distance between bounds; positive.</param>
    /// <param name="count">The number of bounds; at least 1.</param>
    /// <returns>The bounds (+Inf not included: the histogram adds it).</returns>
    public static double[] LinearBuckets(double start, double width, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (!(width > 0) || double.IsInfinity(width))
        {
            throw new ArgumentOutOfRangeException(nameof(width), width, "Bucket width must be a positive finite number.");
        }

        if (!double.IsFinite(start))
        {
            throw new ArgumentOutOfRangeException(nameof(start), start, "The first bucket bound must be finite.");
        }

        var buckets = new double[count];
        for (var i = 0; i < count; i++)
        {
            buckets[i] = start + (i * width);
        }

        return buckets;
    }

    /// <summary><paramref name="count"/> buckets starting at <paramref name="start"/>, each <paramref name="factor"/> times the previous.</summary>
    /// <param name="start">The first upper bound; positive.</param>
    /// <param name="factor">The growth factor; greater than 1.</param>
    /// <param name="count">The number of bounds; at least 1.</param>
    /// <returns>The bounds (+Inf not included: the histogram adds it).</returns>
    public static double[] ExponentialBuckets(double start, double factor, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (!(start > 0) || double.IsInfinity(start))
        {
            throw new ArgumentOutOfRangeException(nameof(start), start, "The first bucket bound of exponential buckets must be a positive finite number.");
        }

        if (!(factor > 1) || double.IsInfinity(factor))
        {
            throw new ArgumentOutOfRangeException(nameof(factor), factor, "The factor of exponential buckets must be a finite number greater than 1.");
        }

        var buckets = new double[count];
        var bound = start;
        for (var i = 0; i < count; i++)
        {
            buckets[i] = bound;
            bound *= factor;
        }

        return buckets;
    }

    /// <summary>Records one observation.</summary>
    /// <param name="value">The observed value; NaN is refused.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Observe(double value)
    {
        var cells = _bucketCells;
        if (cells is not null && !double.IsNaN(value))
        {
            var index = BucketIndex(_bounds, value);
            if (!AtomicDouble.TryAddToCell(ref *(long*)cells[index], 1))
            {
                _buckets![index].Inc(1);
                FollowIfMoved(cells, index);
            }

            if (!AtomicDouble.TryAddToCell(ref *_sumCell, value))
            {
                _sum!.Inc(value);
                FollowSumIfMoved();
            }

            if (Family.Registry.AutoExemplars)
            {
                ExemplarSupport.RecordAutomatic(Family, _buckets![index], ref _nextAutomaticExemplar, value);
            }

            return;
        }

        // A native-only observation whose bucket the direct table finds: its compare-and-swap and the sum's, inlined as
        // the classic ones are, so it pays no call. The sum goes first: a locked instruction holds back every load after
        // it, so the cell is looked up before it and the lookup overlaps the sum's update instead of preceding both.
        var sumCell = _sumCell;
        nint nativeCell;
        if (_nativeOnly && sumCell != null && (nativeCell = NativeSeries.DirectCell(value, _nativeZeroThreshold, _nativeDirect)) != 0)
        {
            if (!AtomicDouble.TryAddToCell(ref *sumCell, value))
            {
                _sum!.Inc(value);
                FollowSumIfMoved();
            }

            if (!AtomicDouble.TryAddToCell(ref *(long*)nativeCell, 1))
            {
                CountNativeRaced(value);
            }
        }
        else
        {
            ObserveThroughBackend(value);
        }

        if (Family.Registry.AutoExemplars)
        {
            ExemplarSupport.RecordAutomatic(Family, _buckets![BucketIndex(_bounds, value)], ref _nextAutomaticExemplar, value);
        }
    }

    /// <summary>
    /// Records one observation and stores <paramref name="exemplar"/> as the latest exemplar of the bucket it falls in
    /// (shown in OpenMetrics scrapes after that <c>_bucket</c> sample). An empty exemplar records only the observation.
    /// </summary>
    /// <param name="value">The observed value; NaN is refused.</param>
    /// <param name="exemplar">The exemplar, validated when it was built; build it once and reuse it where you can.</param>
    public void Observe(double value, in Exemplar exemplar)
    {
        if (exemplar.IsEmpty)
        {
            Observe(value);
            return;
        }

        var cells = _bucketCells;
        var index = 0;
        if (cells is not null && !double.IsNaN(value))
        {
            index = BucketIndex(_bounds, value);
            if (!AtomicDouble.TryAddToCell(ref *(long*)cells[index], 1))
            {
                _buckets![index].Inc(1);
                FollowIfMoved(cells, index);
            }

            if (!AtomicDouble.TryAddToCell(ref *_sumCell, value))
            {
                _sum!.Inc(value);
                FollowSumIfMoved();
            }
        }
        else
        {
            ObserveThroughBackend(value);
            index = BucketIndex(_bounds, value);
        }

        ExemplarSupport.Record(Family, _buckets![index], exemplar, value);
    }

    /// <summary>Starts a timer that observes the elapsed seconds when disposed.</summary>
    /// <returns>The timer.</returns>
    public MetricTimer NewTimer()
    {
        if (_buckets is null)
        {
            ThrowNotObservable();
        }

        return new MetricTimer(this);
    }

    void IDurationSink.ObserveDuration(double seconds) => Observe(seconds);

    internal static double[] ValidateBuckets(string name, IEnumerable<double> buckets)
    {
        var list = buckets.ToList();
        if (list.Count == 0)
        {
            throw new ArgumentException($"Histogram '{name}' needs at least one bucket bound (+Inf is added automatically).", nameof(buckets));
        }

        for (var i = 0; i < list.Count; i++)
        {
            if (double.IsNaN(list[i]))
            {
                throw new ArgumentException($"Histogram '{name}' has NaN as a bucket bound; bounds must be numbers.", nameof(buckets));
            }

            if (i > 0 && !(list[i] > list[i - 1]))
            {
                throw new ArgumentException(
                    $"Histogram '{name}' buckets must be sorted and unique: {list[i - 1].ToString(CultureInfo.InvariantCulture)} is followed by {list[i].ToString(CultureInfo.InvariantCulture)}.",
                    nameof(buckets));
            }
        }

        if (!double.IsPositiveInfinity(list[^1]))
        {
            list.Add(double.PositiveInfinity);
        }

        return [.. list];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int BucketIndex(double[] bounds, double value)
    {
        // Linear search wins for the usual dozen bounds: it is branch-predictable and cache-friendly.
        if (bounds.Length <= 16)
        {
            for (var i = 0; i < bounds.Length - 1; i++)
            {
                if (value <= bounds[i])
                {
                    return i;
                }
            }

            return bounds.Length - 1;
        }

        var index = Array.BinarySearch(bounds, value);
        return index >= 0 ? index : ~index;
    }

    private static (nint[]? Buckets, nint Sum, bool AtomicObserve) CellsOf(MetricFamily family, IMetricBackend[] buckets, IMetricBackend sum)
    {
        var atomicObserve = (family.Backend.Capabilities & BackendCapabilities.AtomicHistogramObserve) != 0;
        var sumCell = sum.ValueCell;
        if (atomicObserve || sumCell == 0)
        {
            return (null, 0, atomicObserve);
        }

        var cells = new nint[buckets.Length];
        for (var i = 0; i < cells.Length; i++)
        {
            cells[i] = buckets[i].ValueCell;
            if (cells[i] == 0)
            {
                return (null, 0, false);
            }
        }

        return (cells, sumCell, false);
    }

    private static (NativeSeries? Native, nint[]? ClassicCells, nint[]? FastCells) NativeOf(MetricFamily family, string[] fullValues, nint[]? cells) =>
        family.NativeEnabled ? (new NativeSeries(family, fullValues, family.Native!), cells, null) : (null, null, cells);

    // Inlined into ObserveOutOfLine: native observations the fast path in ObserveThroughBackend did not take.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ObserveNative(double value)
    {
        var native = _native!;
        if (_atomicObserve)
        {
            // The native bucket goes with the sum: the protobuf count is the native buckets' total, so that pair must agree.
            _sum!.ObserveHistogram(native.Find(value).Value, value);
            if (!_nativeOnly)
            {
                _buckets![BucketIndex(_bounds, value)].Inc(1);
            }

            return;
        }

        if (!native.TryCount(value))
        {
            native.Find(value).Value.Inc(1);
        }

        if (!_nativeOnly)
        {
            var index = BucketIndex(_bounds, value);
            var cells = _nativeClassicCells;
            if (cells is null || !AtomicDouble.TryAddToCell(ref *(long*)cells[index], 1))
            {
                _buckets![index].Inc(1);
                if (cells is not null)
                {
                    FollowIfMoved(cells, index);
                }
            }
        }

        var sumCell = _sumCell;
        if (sumCell == null || !AtomicDouble.TryAddToCell(ref *sumCell, value))
        {
            _sum!.Inc(value);
            if (sumCell != null)
            {
                FollowSumIfMoved();
            }
        }
    }

    // The direct cell's compare-and-swap raced, or its value moved: count as the out-of-line path does (the sum is done).
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void CountNativeRaced(double value)
    {
        if (!_native!.TryCount(value))
        {
            _native.Find(value).Value.Inc(1);
        }
    }

    // The cell arrays are shared by every object of the series; a cell is replaced only by another real cell.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FollowIfMoved(nint[] cells, int index)
    {
        if (Volatile.Read(ref *(long*)cells[index]) == AtomicDouble.MovedCell && _buckets![index].ValueCell is not 0 and var moved)
        {
            cells[index] = moved;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void FollowSumIfMoved()
    {
        if (Volatile.Read(ref *_sumCell) == AtomicDouble.MovedCell && _sum!.ValueCell is not 0 and var moved)
        {
            _sumCell = (long*)moved;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ObserveThroughBackend(double value)
    {
        // A native observation into an existing bucket with value cells: the bucket's compare-and-swap (and the classic
        // bucket's, when kept) and the sum's, in a method small enough to save few registers. Everything else (NaN
        // included) goes on out of line.
        var sumCell = _sumCell;
        if (sumCell != null && _native is not null
            && (NativeSeries.TryCountDirect(value, _nativeZeroThreshold, _nativeDirect) || NativeSeries.TryCountPublished(value, _nativeZeroThreshold, _nativeSlots, _nativeCells)))
        {
            if (!_nativeOnly)
            {
                // Value cells for the sum mean value cells for every classic bucket too (CellsOf).
                var index = BucketIndex(_bounds, value);
                if (!AtomicDouble.TryAddToCell(ref *(long*)_nativeClassicCells![index], 1))
                {
                    _buckets![index].Inc(1);
                    FollowIfMoved(_nativeClassicCells, index);
                }
            }

            if (!AtomicDouble.TryAddToCell(ref *sumCell, value))
            {
                _sum!.Inc(value);
                FollowSumIfMoved();
            }

            return;
        }

        ObserveOutOfLine(value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ObserveOutOfLine(double value)
    {
        if (_native is not null && !double.IsNaN(value))
        {
            ObserveNative(value);
            return;
        }

        var buckets = _buckets;
        if (buckets is null || double.IsNaN(value))
        {
            ThrowInvalid(value);
        }

        var bucket = buckets![BucketIndex(_bounds, value)];
        if (_atomicObserve)
        {
            _sum!.ObserveHistogram(bucket, value);
            return;
        }

        bucket.Inc(1);
        _sum!.Inc(value);
    }

    private protected override Histogram CreateChild(string?[] setValues, string[]? fullValues) => new(Family, setValues, fullValues);

    private (IMetricBackend[] Buckets, IMetricBackend Sum) CreateValues()
    {
        MetricDescriptor? descriptor = null;
        var buckets = new IMetricBackend[_bounds.Length];
        for (var i = 0; i < buckets.Length; i++)
        {
            buckets[i] = Family.CreateValue(FullValues!, HistogramBucket.ForUpperBound(_bounds[i]), ref descriptor);
        }

        return (buckets, Family.CreateValue(FullValues!, HistogramBucket.Sum, ref descriptor));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowInvalid(double value)
    {
        if (_buckets is null)
        {
            ThrowNotObservable();
        }

        throw new ArgumentOutOfRangeException(nameof(value), value, $"Histogram '{Name}' cannot observe NaN.");
    }
}
