using System.Runtime.CompilerServices;

[assembly: Metrics.MetricBackend(typeof(Metrics.Backends.Memory.MemoryBackend))]

namespace Metrics.Backends.Memory;

/// <summary>
/// The default backend: one value in process memory, updated lock-free with compare-and-swap on the
/// double's bits. Under contention an <c>Inc</c> of a counter, histogram or summary value spreads over per-processor
/// cells (as <c>java.util.concurrent.atomic.DoubleAdder</c>), so threads hammering one counter do not fight for one
/// cache line.
/// </summary>
/// <remarks>
/// <para>
/// No update allocates once the value exists; the cells are allocated once, on the first contended update.
/// Until then every update applies in order to one word, so ten <c>Inc(0.1)</c> read exactly what ten double
/// additions give. Once a value has cells, its increments are summed per cell, which is exact for the integral
/// counts of counters and buckets and may round differently from sequential addition for fractional sums.
/// </para>
/// <para>
/// Gauge values never use cells: a gauge mixes <c>Set</c> with <c>Inc</c>/<c>Dec</c>, and one word keeps every read
/// a value the gauge really held.
/// </para>
/// </remarks>
public sealed class MemoryBackend : IMetricBackend<MemoryBackend>
{
    private readonly bool _mayStripe;
    private long _bits;
    private Cells? _cells;

    /// <summary>Creates a value reading 0.</summary>
    /// <param name="config">Unused: the Memory backend has no settings.</param>
    /// <param name="metric">Unused.</param>
    /// <param name="histogramBucket">Unused.</param>
    public MemoryBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
        ArgumentNullException.ThrowIfNull(metric);
        _mayStripe = metric.Type != MetricType.Gauge;
    }

    /// <summary>Nothing to set up: the Memory backend has no settings.</summary>
    /// <param name="config">Ignored.</param>
    public static void Initialize(BackendConfig config)
    {
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Inc(double value)
    {
        if (_cells is null)
        {
            var current = Volatile.Read(ref _bits);
            var next = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(current) + value);
            if (Interlocked.CompareExchange(ref _bits, next, current) == current)
            {
                return;
            }
        }

        AddContended(value);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dec(double value) => Inc(-value);

    /// <inheritdoc/>
    public void Set(double value)
    {
        // A release store is atomic for an aligned long and races safely with the CAS in Inc: a racing Inc either
        // lands before it and is overwritten, or fails its CAS and goes to the cells, counting after it. A locked
        // exchange would add a full fence to every gauge set for no extra guarantee.
        Volatile.Write(ref _bits, BitConverter.DoubleToInt64Bits(value));
        // Increments that landed in a cell before this point are overwritten, those after it count: either
        // order is a valid linearization of an Inc racing a Set.
        _cells?.Clear();
    }

    /// <inheritdoc/>
    public double Get()
    {
        var value = BitConverter.Int64BitsToDouble(Volatile.Read(ref _bits));
        var cells = _cells;
        return cells is null ? value : cells.AddTo(value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void AddContended(double value)
    {
        if (!_mayStripe)
        {
            var spinner = default(SpinWait);
            while (true)
            {
                var current = Volatile.Read(ref _bits);
                var next = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(current) + value);
                if (Interlocked.CompareExchange(ref _bits, next, current) == current)
                {
                    return;
                }

                spinner.SpinOnce(sleep1Threshold: -1);
            }
        }

        var cells = _cells ?? Inflate();
        cells.Add(value);
    }

    private Cells Inflate()
    {
        Interlocked.CompareExchange(ref _cells, new Cells(), null);
        return _cells!;
    }

    /// <summary>Per-processor partial sums, each on its own 128-byte stretch so neighbours do not share a cache line pair.</summary>
    private sealed class Cells
    {
        private const int Stride = 16; // longs: 128 bytes, beyond the adjacent-line prefetcher's pair
        private readonly long[] _slots;
        private readonly int _mask;

        public Cells()
        {
            // Sixteen cells spread the contention of any realistic thread count while bounding a hot value to about 2 KiB.
            var count = (int)Math.Min(16, BitOperations_RoundUpToPowerOf2(Math.Max(2, Environment.ProcessorCount)));
            _mask = count - 1;
            _slots = new long[(count + 1) * Stride];
        }

        public void Add(double value)
        {
            var index = ((Thread.GetCurrentProcessorId() & _mask) + 1) * Stride;
            ref var slot = ref _slots[index];
            while (true)
            {
                var current = Volatile.Read(ref slot);
                var next = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(current) + value);
                if (Interlocked.CompareExchange(ref slot, next, current) == current)
                {
                    return;
                }
            }
        }

        public double AddTo(double value)
        {
            for (var i = Stride; i < _slots.Length; i += Stride)
            {
                // Untouched cells are skipped so that a Set(-0.0) still reads -0.0 (-0.0 + 0.0 is +0.0).
                var bits = Volatile.Read(ref _slots[i]);
                if (bits != 0)
                {
                    value += BitConverter.Int64BitsToDouble(bits);
                }
            }

            return value;
        }

        public void Clear()
        {
            for (var i = Stride; i < _slots.Length; i += Stride)
            {
                Interlocked.Exchange(ref _slots[i], 0);
            }
        }

        private static uint BitOperations_RoundUpToPowerOf2(int value) => System.Numerics.BitOperations.RoundUpToPowerOf2((uint)value);
    }
}
