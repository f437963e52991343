using System.Runtime.CompilerServices;

[assembly: Metrics.MetricBackend(typeof(Metrics.Backends.Memory.MemoryBackend))]

namespace Metrics.Backends.Memory;

/// <summary>
/// The default backend: one value in process memory, updated lock-free with compare-and-swap on the double's bits.
/// The word lives in pinned memory and is handed to the metric as its <see cref="ValueCell"/>, so an uncontended
/// update is one compare-and-swap with no call into the backend. Under contention, whole-number increments of a
/// counter, histogram or summary value spread over per-processor cells (as <c>java.util.concurrent.atomic.LongAdder</c>),
/// so threads hammering one counter do not fight for one cache line.
/// </summary>
/// <remarks>
/// <para>
/// No update allocates once the value exists; the contention cells are allocated once, on the first contended
/// whole-number increment. Fractional increments always apply one at a time to the one word, so ten threads adding 0.1
/// read exactly what the same additions in sequence give; whole numbers summed apart in the cells are exact.
/// </para>
/// <para>
/// Gauge values never use cells: a gauge mixes <c>Set</c> with <c>Inc</c>/<c>Dec</c>, and one word keeps every read a
/// value the gauge really held. Each created value is its own: two registries of one process never share one (the
/// Memory backend does not declare <see cref="BackendCapabilities.SharedAcrossProcesses"/>).
/// </para>
/// </remarks>
public sealed unsafe class MemoryBackend : IMetricBackend<MemoryBackend>
{
    private readonly bool _mayStripe;

    // Keeps the pinned block holding _bits alive as long as this value.
    private readonly long[] _block;
    private readonly long* _bits;
    private Cells? _cells;
    private ExemplarSlot? _exemplar;

    /// <summary>Creates a value reading 0.</summary>
    /// <param name="config">Unused: the Memory backend has no settings.</param>
    /// <param name="metric">The metric; only its type matters (gauges never stripe).</param>
    /// <param name="histogramBucket">Unused.</param>
    public MemoryBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
        ArgumentNullException.ThrowIfNull(metric);
        _mayStripe = metric.Type != MetricType.Gauge;
        _bits = PinnedWords.Allocate(out _block);
    }

    /// <summary>Nothing to set up: the Memory backend has no settings.</summary>
    /// <param name="config">Ignored.</param>
    public static void Initialize(BackendConfig config)
    {
    }

    /// <summary>Native histogram buckets are values like any other here, and each value keeps its latest exemplar (<see cref="BackendCapabilities.NativeHistogramBuckets"/>).</summary>
    public static BackendCapabilities Capabilities => BackendCapabilities.NativeHistogramBuckets | BackendCapabilities.Exemplars;

    /// <summary>The pinned word holding the value's bits; a metric adds to it directly and calls <see cref="Inc"/> only when that races.</summary>
    public nint ValueCell => (nint)_bits;

    private ref long Bits => ref Unsafe.AsRef<long>(_bits);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Inc(double value)
    {
        if (!AtomicDouble.TryAdd(ref Bits, value))
        {
            AddContended(value);
        }
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dec(double value) => Inc(-value);

    /// <summary>Replaces the value, and forgets the value's exemplar (see <see cref="RecordExemplar"/>).</summary>
    /// <param name="value">The new value.</param>
    public void Set(double value)
    {
        // A release store is atomic for an aligned long and races safely with the CAS in Inc: a racing Inc either
        // lands before it and is overwritten, or fails its CAS and retries after it. A locked exchange would add a full
        // fence to every gauge set for no extra guarantee.
        AtomicDouble.Write(ref Bits, value);
        // Increments that landed in a cell before this point are overwritten, those after it count: either order is a
        // valid linearization of an Inc racing a Set.
        _cells?.Clear();

        // The host removes an in-process series by setting its values to 0: the exemplar of an increment made before
        // must not come back with the series. Only counters and histograms ever hold one, so a gauge pays one null test.
        if (_exemplar is { } slot)
        {
            ForgetExemplar(slot);
        }
    }

    /// <inheritdoc/>
    public double Get()
    {
        var value = AtomicDouble.Read(ref Bits);
        var cells = _cells;
        return cells is null ? value : cells.AddTo(value);
    }

    /// <summary>
    /// Keeps <paramref name="exemplar"/> unless the stored one is later. The slot is allocated with the first exemplar,
    /// reused after. <see cref="Set"/> empties it: that is how the host removes a series of an in-process backend.
    /// </summary>
    /// <param name="exemplar">The exemplar.</param>
    public void RecordExemplar(in RecordedExemplar exemplar) => (_exemplar ?? InflateExemplar()).Write(exemplar);

    /// <inheritdoc/>
    public RecordedExemplar? GetExemplar() => Volatile.Read(ref _exemplar)?.Read();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ForgetExemplar(ExemplarSlot slot) => slot.Clear();

    private ExemplarSlot InflateExemplar()
    {
        Interlocked.CompareExchange(ref _exemplar, new ExemplarSlot(), null);
        return _exemplar!;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void AddContended(double value)
    {
        // Only whole numbers go to the cells: their partial sums are exact, while fractional ones would round
        // differently from adding each increment in turn.
        if (!_mayStripe || value != Math.Floor(value) || Math.Abs(value) > 1L << 53)
        {
            var spinner = default(SpinWait);
            while (!AtomicDouble.TryAdd(ref Bits, value))
            {
                spinner.SpinOnce(sleep1Threshold: -1);
            }

            return;
        }

        var cells = _cells ?? Inflate();
        cells.Add(value);
    }

    private Cells Inflate()
    {
        Interlocked.CompareExchange(ref _cells, new Cells(), null);
        return _cells!;
    }

    /// <summary>
    /// The latest exemplar. The label set and two doubles must change together, so writers take the slot by making its
    /// version odd (one compare-and-swap: a lock costs twice that on every exemplar observation) and readers (scrapes)
    /// copy it again when the version moved while they copied. A torn copy is never returned, and each reference field
    /// is written atomically, so a discarded torn copy is harmless.
    /// </summary>
    private sealed class ExemplarSlot
    {
        private int _version;
        private RecordedExemplar _value;
        private bool _present;

        public void Write(in RecordedExemplar exemplar)
        {
            var version = Volatile.Read(ref _version);
            if ((version & 1) != 0 || Interlocked.CompareExchange(ref _version, version + 1, version) != version)
            {
                version = Acquire();
            }

            if (!_present || exemplar.TimestampUnixSeconds >= _value.TimestampUnixSeconds)
            {
                _value = exemplar;
                _present = true;
            }

            Volatile.Write(ref _version, version + 2);
        }

        /// <summary>Empties the slot, whatever its timestamp: the series was removed.</summary>
        public void Clear()
        {
            var version = Acquire();
            _value = default;
            _present = false;
            Volatile.Write(ref _version, version + 2);
        }

        public RecordedExemplar? Read()
        {
            var spinner = default(SpinWait);
            while (true)
            {
                var version = Volatile.Read(ref _version);
                if ((version & 1) == 0)
                {
                    var value = _value;
                    var present = _present;

                    // The copy above must be complete before the version is read again.
                    Interlocked.MemoryBarrier();
                    if (Volatile.Read(ref _version) == version)
                    {
                        return present ? value : null;
                    }
                }

                spinner.SpinOnce(sleep1Threshold: -1);
            }
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private int Acquire()
        {
            var spinner = default(SpinWait);
            while (true)
            {
                var version = Volatile.Read(ref _version);
                if ((version & 1) == 0 && Interlocked.CompareExchange(ref _version, version + 1, version) == version)
                {
                    return version;
                }

                spinner.SpinOnce(sleep1Threshold: -1);
            }
        }
    }

    /// <summary>Hands out 8-byte words from pinned blocks, so metrics can keep a plain pointer to a value's bits.</summary>
    private static class PinnedWords
    {
        private const int BlockSize = 512;
        private static readonly Lock Gate = new();
        private static long[] s_block = NewBlock();
        private static int s_next;

        public static long* Allocate(out long[] block)
        {
            lock (Gate)
            {
                if (s_next == BlockSize)
                {
                    s_block = NewBlock();
                    s_next = 0;
                }

                block = s_block;
                return (long*)Unsafe.AsPointer(ref block[s_next++]);
            }
        }

        // Pinned-heap blocks never move and are collected once no value refers to them.
        private static long[] NewBlock() => GC.AllocateArray<long>(BlockSize, pinned: true);
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
            var count = (int)Math.Min(16, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(2, Environment.ProcessorCount)));
            _mask = count - 1;
            _slots = new long[(count + 1) * Stride];
        }

        public void Add(double value) => AtomicDouble.Add(ref _slots[((Thread.GetCurrentProcessorId() & _mask) + 1) * Stride], value);

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
    }
}
