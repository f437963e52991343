using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Metrics;

/// <summary>One native bucket's backend value, with its value cell when the backend has one.</summary>
internal sealed class NativeEntry(HistogramBucket bucket, IMetricBackend value)
{
    public HistogramBucket Bucket { get; } = bucket;

    public IMetricBackend Value { get; } = value;

    public nint Cell { get; } = value.ValueCell;
}

/// <summary>
/// The native buckets of one histogram series: finds the backend value of an observation's bucket without locking or
/// allocating once that bucket exists, and creates it on first use, halving the resolution when the series would exceed
/// its bucket limit.
/// </summary>
internal sealed class NativeSeries
{
    private readonly MetricFamily _family;
    private readonly string[] _fullValues;
    private readonly double _zeroThreshold;
    private readonly int _maxBuckets;
    private readonly Lock _lock = new();
    private MetricDescriptor? _descriptor;
    private Table _table;
    private NativeEntry? _zero;
    private nint _zeroCell;

    // Every value created, at every schema, for scrapes of backends that do not collect in batch.
    private NativeEntry[] _all = [];

    // Buckets in use at the current schema, values created or not: what the limit counts.
    private HashSet<long> _occupied = [];

    // The histograms observing into this series, told the value cells of every new table (see Histogram.PublishNative).
    private Histogram[] _owners = [];

    public NativeSeries(MetricFamily family, string[] fullValues, NativeHistogramOptions options)
    {
        _family = family;
        _fullValues = fullValues;
        _zeroThreshold = options.ZeroThreshold;
        _maxBuckets = options.MaxBucketNumber;
        _table = new Table(options.Schema, 8);
    }

    /// <summary>The schema new observations are counted at.</summary>
    public int Schema => Volatile.Read(ref _table).Schema;

    public double ZeroThreshold => _zeroThreshold;

    /// <summary>Every native value created so far (zero bucket included), for a scrape.</summary>
    public NativeEntry[] Entries => Volatile.Read(ref _all);

    /// <summary>The observation count of this series: the zero bucket plus every native bucket, at every schema.</summary>
    public double Count()
    {
        var count = 0.0;
        foreach (var entry in Entries)
        {
            count += entry.Value.Get();
        }

        return count;
    }

    /// <summary>
    /// Adds 1 to the bucket <paramref name="value"/> falls into with one compare-and-swap on its value cell, or returns
    /// false (and changes nothing) when that bucket has no value yet, its backend no value cell, another thread changed
    /// the cell meanwhile, or the value is NaN: the caller then adds through <see cref="Find"/>, or refuses NaN.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe bool TryCount(double value)
    {
        var table = Volatile.Read(ref _table);
        var magnitude = Math.Abs(value);
        if (!(magnitude > _zeroThreshold))
        {
            // NaN lands here too, and is refused.
            var zero = _zeroCell;
            return zero != 0 && !double.IsNaN(value) && AtomicDouble.TryAddToCell(ref *(long*)zero, 1);
        }

        var bits = BitConverter.DoubleToInt64Bits(magnitude);
        var slots = table.Slots;
        var index = (ulong)((bits >> 52) - 1) < 0x7FE && slots is not null
            ? NativeBuckets.IndexOfNormal(bits, table.Schema, slots)
            : NativeBuckets.Index(magnitude, table.Schema);
        return TryCountCell(table.DenseCells, index, value);
    }

    /// <summary>
    /// The fast path of a histogram holding this series' published state (<see cref="Attach"/>): as <see cref="TryCount"/>,
    /// but from the wide mantissa table and the cells array the histogram holds itself, so the bucket's cell is two
    /// dependent loads away instead of five. False also for what only <see cref="TryCount"/> handles: the zero bucket,
    /// NaN, subnormal and infinite values, schemas below 0, and tables caught in the middle of a schema change.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe bool TryCountPublished(double value, double zeroThreshold, WideSlot[]? slots, nint[] cells)
    {
        var bits = BitConverter.DoubleToInt64Bits(value);
        var magnitude = bits & long.MaxValue;
        if (slots is null || !(BitConverter.Int64BitsToDouble(magnitude) > zeroThreshold) || (ulong)((magnitude >> 52) - 1) >= 0x7FE)
        {
            return false;
        }

        var at = (ulong)(NativeBuckets.BiasedKeyOfNormal(bits, slots, out var shift) - cells[2]);

        // The two arrays are published one after the other: counting needs both at one schema.
        if (shift != cells[1] || at >= (ulong)(cells.Length - Table.CellsHeader))
        {
            return false;
        }

        var cell = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(cells), (nint)at + Table.CellsHeader);
        return cell != 0 && AtomicDouble.TryAddToCell(ref *(long*)cell, 1);
    }

    /// <summary>
    /// The fastest path, for a positive value in the range of the series' existing buckets: the value's top bits index
    /// <paramref name="direct"/> (a <see cref="Table.DirectCells"/>), whose entry holds the slot's bound and the cells of
    /// the two buckets the slot can fall into, so the bucket's cell is one load from the value away, as a classic
    /// bucket's is. 0 for what it does not cover: the caller goes on to <see cref="TryCountPublished"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint DirectCell(double value, double zeroThreshold, nint[]? direct)
    {
        // Negative values and NaN fail the comparison; infinity and subnormal values give slot numbers outside the array.
        if (direct is null || !(value > zeroThreshold))
        {
            return 0;
        }

        var bits = BitConverter.DoubleToInt64Bits(value);
        ref var header = ref MemoryMarshal.GetArrayDataReference(direct);
        var at = (ulong)((bits >> (int)Unsafe.Add(ref header, 1)) - header);
        if (at >= (ulong)Unsafe.Add(ref header, 2))
        {
            return 0;
        }

        ref var entry = ref Unsafe.Add(ref header, Table.DirectHeader + (3 * (nint)at));
        return (bits & NativeBuckets.MantissaMask) > entry ? Unsafe.Add(ref entry, 2) : Unsafe.Add(ref entry, 1);
    }

    /// <summary>Adds 1 through <see cref="DirectCell"/>, or returns false (nothing changed) when it gives no cell or the compare-and-swap races.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe bool TryCountDirect(double value, double zeroThreshold, nint[]? direct)
    {
        var cell = DirectCell(value, zeroThreshold, direct);
        return cell != 0 && AtomicDouble.TryAddToCell(ref *(long*)cell, 1);
    }

    /// <summary>Adds 1 through the cell of bucket <paramref name="index"/> on the side of <paramref name="value"/>'s sign in <paramref name="cells"/> (laid out as <see cref="Table.DenseCells"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe bool TryCountCell(nint[] cells, int index, double value)
    {
        // The key is the index above the value's sign bit.
        var at = (ulong)((((long)index << 1) | (long)((ulong)BitConverter.DoubleToInt64Bits(value) >> 63)) - cells[0]);
        if (at >= (ulong)(cells.Length - Table.CellsHeader))
        {
            return false;
        }

        var cell = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(cells), (nint)at + Table.CellsHeader);
        return cell != 0 && AtomicDouble.TryAddToCell(ref *(long*)cell, 1);
    }

    /// <summary>Makes <paramref name="owner"/> count through this series: it is given every table's cells from now on.</summary>
    public void Attach(Histogram owner)
    {
        lock (_lock)
        {
            _owners = [.. _owners, owner];
            owner.PublishNative(NativeBuckets.WideSlotsOf(_table.Schema), _table.DenseCells, _table.DirectCells);
        }
    }

    // Under the lock, after every change of table.
    private void Publish(Table table)
    {
        var slots = NativeBuckets.WideSlotsOf(table.Schema);
        foreach (var owner in _owners)
        {
            owner.PublishNative(slots, table.DenseCells, table.DirectCells);
        }
    }

    /// <summary>The entry of the bucket <paramref name="value"/> (not NaN) falls into, created on first use.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public NativeEntry Find(double value)
    {
        var table = Volatile.Read(ref _table);
        long key;
        if (value > _zeroThreshold)
        {
            key = (long)NativeBuckets.Index(value, table.Schema) << 1;
        }
        else if (value < -_zeroThreshold)
        {
            key = ((long)NativeBuckets.Index(-value, table.Schema) << 1) | 1;
        }
        else
        {
            return _zero ?? CreateZero();
        }

        return table.Find(key) ?? Add(value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private NativeEntry CreateZero()
    {
        lock (_lock)
        {
            if (_zero is null)
            {
                var entry = Create(HistogramBucket.NativeZero);
                Volatile.Write(ref _zero, entry);
                _zeroCell = entry.Cell;
            }

            return _zero!;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private NativeEntry Add(double value)
    {
        lock (_lock)
        {
            var table = _table;
            var negative = value < 0;
            var magnitude = Math.Abs(value);
            var key = Key(magnitude, negative, table.Schema);
            while (_maxBuckets > 0 && !_occupied.Contains(key) && _occupied.Count >= _maxBuckets && table.Schema > HistogramBucket.MinNativeSchema)
            {
                // Halve the resolution. Values already written stay at their schema: every scrape merges them into the
                // coarsest schema present, exactly, so nothing needs moving (and in a shared store nothing could be).
                var coarser = table.Schema - 1;
                var occupied = new HashSet<long>();
                foreach (var old in _occupied)
                {
                    occupied.Add(((long)NativeBuckets.Reduce((int)(old >> 1), table.Schema, coarser) << 1) | (old & 1));
                }

                _occupied = occupied;
                table = new Table(coarser, 8);
                key = Key(magnitude, negative, coarser);
            }

            if (table.Find(key) is { } existing)
            {
                Volatile.Write(ref _table, table);
                Publish(table);
                return existing;
            }

            var index = (int)(key >> 1);
            var entry = Create(negative ? HistogramBucket.NativeNegative(table.Schema, index) : HistogramBucket.NativePositive(table.Schema, index));
            _occupied.Add(key);
            table = table.With(key, entry);
            Volatile.Write(ref _table, table);
            Publish(table);
            return entry;
        }
    }

    private static long Key(double magnitude, bool negative, int schema) =>
        ((long)NativeBuckets.Index(magnitude, schema) << 1) | (negative ? 1L : 0L);

    private NativeEntry Create(HistogramBucket bucket)
    {
        var entry = new NativeEntry(bucket, _family.CreateValue(_fullValues, bucket, ref _descriptor));
        Volatile.Write(ref _all, [.. _all, entry]);
        return entry;
    }

    /// <summary>
    /// An immutable map from bucket key to entry, replaced whole on every insert (inserts are rare). Keys are bucket
    /// indexes (times two, plus the sign), so a series' keys are close together: they are looked up by subtraction in a
    /// dense array when they span at most <see cref="MaxDenseSpan"/>, and by open addressing otherwise (values of very
    /// different magnitudes, or both signs far apart).
    /// </summary>
    private sealed class Table
    {
        // 2,048 slots (16 KB) cover 1,024 buckets of one sign: over 120 powers of two at schema 3, beyond any latency's range.
        private const int MaxDenseSpan = 2048;

        /// <summary>The words before the cells in <see cref="DenseCells"/>.</summary>
        public const int CellsHeader = 3;

        /// <summary>The words before the entries in <see cref="DirectCells"/>.</summary>
        public const int DirectHeader = 3;

        // At most this many slots in DirectCells (24 bytes each, 24 KB in all): 32 powers of two at schema 3, one at
        // schema 8. Values spread wider take the dense array's path.
        private const int MaxDirectSlots = 1024;

        // Slots kept on each side of those the existing buckets span, for the same reason as DenseSlack.
        private const int DirectSlack = 8;

        // Room left on each side of the keys in use, so that the next buckets (the neighbours of those in use) fit
        // without making the dense array any larger than the span needs.
        private const int DenseSlack = 16;

        private readonly long[] _keys;
        private readonly NativeEntry?[] _entries;
        private readonly int _mask;
        private readonly int _count;
        private readonly NativeEntry?[]? _dense;

        public Table(int schema, int capacity)
        {
            Schema = schema;
            Slots = NativeBuckets.SlotsOf(schema);
            DenseCells = [0, schema + 1, 0];
            _keys = new long[capacity];
            _entries = new NativeEntry?[capacity];
            _mask = capacity - 1;
        }

        private Table(int schema, long[] keys, NativeEntry?[] entries, int count)
        {
            Schema = schema;
            Slots = NativeBuckets.SlotsOf(schema);
            DenseCells = [0, schema + 1, 0];
            _keys = keys;
            _entries = entries;
            _mask = keys.Length - 1;
            _count = count;
            long min = long.MaxValue, max = long.MinValue;
            for (var i = 0; i < entries.Length; i++)
            {
                if (entries[i] is not null)
                {
                    min = Math.Min(min, keys[i]);
                    max = Math.Max(max, keys[i]);
                }
            }

            if (count > 0 && max - min < MaxDenseSpan - (2 * DenseSlack))
            {
                DenseBase = min - DenseSlack;
                _dense = new NativeEntry?[max - min + 1 + (2 * DenseSlack)];
                DenseCells = new nint[CellsHeader + _dense.Length];
                DenseCells[0] = (nint)DenseBase;
                DenseCells[1] = schema + 1;
                DenseCells[2] = (nint)(DenseBase + (1023L << (schema + 1)));
                for (var i = 0; i < entries.Length; i++)
                {
                    if (entries[i] is { } entry)
                    {
                        _dense[keys[i] - DenseBase] = entry;
                        DenseCells[CellsHeader + keys[i] - DenseBase] = entry.Cell;
                    }
                }
            }

            DirectCells = BuildDirect(schema, keys, entries);
        }

        /// <summary>
        /// For positive values at schema 0 or above: the slot number (<see cref="NativeBuckets.SlotNumberShift"/>) of the
        /// first entry, the shift and the number of entries, then per slot from that one up its bound mantissa and the
        /// value cells of the bucket at or below the bound and of the one above it (0 where that bucket has no value
        /// yet). Null when there are no such buckets, or they span more than <see cref="MaxDirectSlots"/> slots.
        /// </summary>
        public nint[]? DirectCells { get; }

        public int Schema { get; }

        /// <summary>The schema's mantissa table (<see cref="NativeBuckets.IndexOfNormal"/>); null below schema 0.</summary>
        public IndexSlot[]? Slots { get; }

        /// <summary>The key of the first cell in <see cref="DenseCells"/>.</summary>
        public long DenseBase { get; }

        /// <summary>
        /// <see cref="DenseBase"/>, <see cref="Schema"/> + 1 and <see cref="DenseBase"/> as a key of
        /// <see cref="NativeBuckets.BiasedKeyOfNormal"/>, then the value cells of the entries in the dense array by key minus
        /// <see cref="DenseBase"/>: 0 where no entry is, or its backend has no value cell. Just the header when the keys
        /// are too far apart for a dense array. One array, so a histogram holds it in one field.
        /// </summary>
        public nint[] DenseCells { get; }

        private nint[]? BuildDirect(int schema, long[] keys, NativeEntry?[] entries)
        {
            if (schema < 0)
            {
                return null;
            }

            int min = int.MaxValue, max = int.MinValue;
            for (var i = 0; i < entries.Length; i++)
            {
                if (entries[i] is not null && (keys[i] & 1) == 0)
                {
                    min = Math.Min(min, (int)(keys[i] >> 1));
                    max = Math.Max(max, (int)(keys[i] >> 1));
                }
            }

            if (min > max)
            {
                return null;
            }

            // Bucket i holds (2^((i - 1) / 2^schema), 2^(i / 2^schema)]: the slots from its lower bound's to its upper
            // bound's cover it. Slots of subnormal or infinite values, or NaN, are never in the array.
            var shift = NativeBuckets.SlotNumberShift(schema);
            var first = Math.Max((BitConverter.DoubleToInt64Bits(Math.Pow(2, (min - 1) / (double)(1 << schema))) >> shift) - DirectSlack, 1L << (52 - shift));
            var last = Math.Min((BitConverter.DoubleToInt64Bits(Math.Pow(2, max / (double)(1 << schema))) >> shift) + DirectSlack, (0x7FFL << (52 - shift)) - 1);
            if (last < first || last - first + 1 > MaxDirectSlots)
            {
                return null;
            }

            var direct = new nint[DirectHeader + (3 * (last - first + 1))];
            direct[0] = (nint)first;
            direct[1] = shift;
            direct[2] = (nint)(last - first + 1);
            for (var slot = first; slot <= last; slot++)
            {
                var at = DirectHeader + (3 * (nint)(slot - first));
                direct[at] = (nint)NativeBuckets.SlotOf(slot, schema, out var low);
                direct[at + 1] = Find((long)low << 1)?.Cell ?? 0;
                direct[at + 2] = Find((long)(low + 1) << 1)?.Cell ?? 0;
            }

            return direct;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public NativeEntry? Find(long key)
        {
            var dense = _dense;
            if (dense is not null)
            {
                // A key outside the array is a bucket not created yet; the caller adds it.
                var slot = (ulong)(key - DenseBase);
                return slot < (ulong)dense.Length ? dense[slot] : null;
            }

            return FindHashed(key);
        }

        private NativeEntry? FindHashed(long key)
        {
            var entries = _entries;
            for (var i = Slot(key, _mask); ; i = (i + 1) & _mask)
            {
                var entry = entries[i];
                if (entry is null || _keys[i] == key)
                {
                    return entry;
                }
            }
        }

        public Table With(long key, NativeEntry entry)
        {
            // At most half full, so probes stay short and an empty slot always ends a search.
            var capacity = (_count + 1) * 2 > _keys.Length ? _keys.Length * 2 : _keys.Length;
            var keys = new long[capacity];
            var entries = new NativeEntry?[capacity];
            var mask = capacity - 1;
            for (var i = 0; i < _entries.Length; i++)
            {
                if (_entries[i] is { } existing)
                {
                    Insert(keys, entries, mask, _keys[i], existing);
                }
            }

            Insert(keys, entries, mask, key, entry);
            return new Table(Schema, keys, entries, _count + 1);
        }

        private static void Insert(long[] keys, NativeEntry?[] entries, int mask, long key, NativeEntry entry)
        {
            var i = Slot(key, mask);
            while (entries[i] is not null)
            {
                i = (i + 1) & mask;
            }

            keys[i] = key;
            entries[i] = entry;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int Slot(long key, int mask) => (int)(BitOperations.RotateLeft((ulong)key * 0x9E3779B97F4A7C15UL, 32) & (uint)mask);
    }
}
