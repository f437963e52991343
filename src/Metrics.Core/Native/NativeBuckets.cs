using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Metrics;

/// <summary>The arithmetic of native histogram buckets: which bucket a value falls into, and how schemas nest.</summary>
internal static class NativeBuckets
{
    /// <summary>The coarsest schema whose bucket factor 2^(2^-schema) is at most <paramref name="bucketFactor"/>, as client_golang picks it.</summary>
    public static int PickSchema(double bucketFactor)
    {
        var floor = Math.Floor(Math.Log2(Math.Log2(bucketFactor)));
        return floor <= -8 ? HistogramBucket.MaxNativeSchema : floor >= 4 ? HistogramBucket.MinNativeSchema : -(int)floor;
    }

    /// <summary>
    /// The index of the bucket holding <paramref name="magnitude"/> (positive, above the zero threshold) at
    /// <paramref name="schema"/>: the bucket whose range (2^((i-1)·2^-schema), 2^(i·2^-schema)] contains it. Infinity goes
    /// one past the bucket of <see cref="double.MaxValue"/>, as in client_golang.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Index(double magnitude, int schema)
    {
        var bits = BitConverter.DoubleToInt64Bits(magnitude);
        var biased = (int)((bits >> 52) & 0x7FF);

        // Normal, finite numbers at schema 0 or above (every observation of a usual native histogram): the mantissa's
        // top bits pick the candidate bound from a table, and one comparison settles it, instead of a binary search.
        if (schema >= 0 && (uint)(biased - 1) < 0x7FE)
        {
            return IndexOfNormal(bits, schema, Slots[schema]);
        }

        return IndexBySearch(magnitude, schema);
    }

    /// <summary>
    /// <see cref="Index"/> of a positive normal finite number given as its bits, at <paramref name="schema"/> (0 or above)
    /// whose <see cref="SlotsOf"/> table is <paramref name="slots"/>: no branch, two loads from a table of at most
    /// 2^(schema + 2) entries.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int IndexOfNormal(long bits, int schema, IndexSlot[] slots)
    {
        var mantissa = bits & MantissaMask;

        // The slot number is below 2^(schema + SlotExtraBits), the table's length, for every 52-bit mantissa.
        ref var slot = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(slots), (nint)(mantissa >> (52 - SlotExtraBits - schema)));
        return (((int)(bits >> 52) - 1023) << schema) + slot.Index + (mantissa > slot.BoundMantissa ? 1 : 0);
    }

    /// <summary>
    /// How far a positive normal double's bits shift right to give its slot number at <paramref name="schema"/> (0 or
    /// above): the biased exponent above the top schema + 2 mantissa bits, so slot numbers of a series' values are close
    /// together and ordered as the values are.
    /// </summary>
    public static int SlotNumberShift(int schema) => 52 - SlotExtraBits - schema;

    /// <summary>
    /// The slot with number <paramref name="slotNumber"/> (see <see cref="SlotNumberShift"/>) at <paramref name="schema"/>:
    /// values in it fall into bucket <paramref name="lowIndex"/> when their mantissa is at most the returned bound, else into
    /// the bucket above.
    /// </summary>
    public static long SlotOf(long slotNumber, int schema, out int lowIndex)
    {
        var slot = Slots[schema][slotNumber & ((1L << (schema + SlotExtraBits)) - 1)];
        lowIndex = ((int)(slotNumber >> (schema + SlotExtraBits)) - 1023 << schema) + slot.Index;
        return slot.BoundMantissa;
    }

    /// <summary>The mantissa table of <paramref name="schema"/> for <see cref="IndexOfNormal"/>; null below schema 0.</summary>
    public static IndexSlot[]? SlotsOf(int schema) => schema >= 0 ? Slots[schema] : null;

    /// <summary>
    /// The bucket key (index × 2 + sign) of a normal finite number given as its bits, from a table of
    /// <see cref="WideSlotsOf"/>, offset by 1023 × 2^(schema + 1) so no exponent bias is taken off: the slot is the
    /// mantissa's top 10 bits whatever the schema, and the entry says its schema, so one table load is all the key waits for.
    /// </summary>
    /// <param name="bits">The value's bits.</param>
    /// <param name="slots">The wide table of the schema.</param>
    /// <param name="shift">The table's schema plus 1.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long BiasedKeyOfNormal(long bits, WideSlot[] slots, out int shift)
    {
        var magnitude = bits & long.MaxValue;
        var mantissa = magnitude & MantissaMask;

        // 2^WideSlotBits entries: every 52-bit mantissa shifted right by 52 - WideSlotBits is an index into the table.
        ref var slot = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(slots), (nint)(mantissa >> (52 - WideSlotBits)));
        shift = slot.Shift;

        // Both are below 2^53: the difference is negative, its top bit set, exactly when the mantissa is above the bound.
        var above = (long)((ulong)(slot.BoundMantissa - mantissa) >> 63);
        return ((magnitude >> 52) << shift) + slot.Key + (above << 1) + (long)((ulong)bits >> 63);
    }

    /// <summary>
    /// The table of <paramref name="schema"/> for <see cref="BiasedKeyOfNormal"/> (16 KB, built on first use); null below
    /// schema 0.
    /// </summary>
    public static WideSlot[]? WideSlotsOf(int schema)
    {
        if (schema < 0)
        {
            return null;
        }

        var table = Volatile.Read(ref WideSlots[schema]);
        if (table is null)
        {
            // Each narrow slot of the schema covers 2^(8 - schema) wide ones: the same bound settles them all.
            var narrow = Slots[schema];
            table = new WideSlot[1 << WideSlotBits];
            for (var i = 0; i < table.Length; i++)
            {
                var entry = narrow[i >> (WideSlotBits - SlotExtraBits - schema)];
                table[i] = new WideSlot(entry.BoundMantissa, entry.Index * 2, schema + 1);
            }

            table = Interlocked.CompareExchange(ref WideSlots[schema], table, null) ?? table;
        }

        return table;
    }

    /// <summary>
    /// <see cref="Index"/> by frexp and binary search, for what the table does not cover: subnormal numbers, infinity
    /// and schemas of 0 or below.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static int IndexBySearch(double magnitude, int schema)
    {
        var infinite = 0;
        if (double.IsPositiveInfinity(magnitude))
        {
            magnitude = double.MaxValue;
            infinite = 1;
        }

        var fraction = Frexp(magnitude, out var exponent);
        int index;
        if (schema > 0)
        {
            var bounds = NativeBucketBounds.BySchema[schema];
            // The first bound at or above the fraction; bounds are distinct, so an exact hit is that bound.
            var found = Array.BinarySearch(bounds, fraction);
            index = (found >= 0 ? found : ~found) + ((exponent - 1) * bounds.Length);
        }
        else
        {
            index = exponent;
            if (fraction == 0.5)
            {
                // A power of two is the upper bound of the bucket below.
                index--;
            }

            var shift = -schema;
            index = (index + (1 << shift) - 1) >> shift;
        }

        return index + infinite;
    }

    /// <summary>The 52 mantissa bits of a double.</summary>
    public const long MantissaMask = 0x000F_FFFF_FFFF_FFFFL;

    // Each slot of a schema's table covers 2^-(schema + 2) of the mantissa range: a quarter of the narrowest gap
    // between two bounds (about 0.69 × 2^-schema in mantissa terms), so no slot holds more than one bound.
    private const int SlotExtraBits = 2;

    // The slot bits of the finest schema: its narrow table's, so a wide table is exact for every schema.
    private const int WideSlotBits = HistogramBucket.MaxNativeSchema + SlotExtraBits;

    private static readonly WideSlot[]?[] WideSlots = new WideSlot[]?[HistogramBucket.MaxNativeSchema + 1];

    /// <summary>
    /// Per schema from 0 up, per mantissa slot: the first bound at or above the slot's lowest fraction, and that bound's
    /// mantissa. A fraction in the slot is at or below that bound, or above it and below the next (the slot holds at most
    /// one bound). Bounds of one octave share their exponent, so comparing mantissas as integers compares the fractions.
    /// </summary>
    private static readonly IndexSlot[][] Slots = [.. Enumerable.Range(0, NativeBucketBounds.BySchema.Length).Select(BuildSlots)];

    private static IndexSlot[] BuildSlots(int schema)
    {
        var bounds = NativeBucketBounds.BySchema[schema];
        var bits = schema + SlotExtraBits;
        var slots = new IndexSlot[1 << bits];
        for (var slot = 0; slot < slots.Length; slot++)
        {
            var lowest = BitConverter.Int64BitsToDouble(((long)slot << (52 - bits)) | (1022L << 52));
            var found = Array.BinarySearch(bounds, lowest);
            var candidate = found >= 0 ? found : ~found;

            // Past the octave's last bound the candidate is the next octave's first bucket, whose bound (1) no mantissa exceeds.
            var boundMantissa = candidate < bounds.Length ? BitConverter.DoubleToInt64Bits(bounds[candidate]) & MantissaMask : 1L << 52;
            slots[slot] = new IndexSlot(boundMantissa, candidate);
        }

        return slots;
    }

    /// <summary>
    /// The index at <paramref name="coarser"/> of the bucket that wholly contains bucket <paramref name="index"/> of
    /// <paramref name="schema"/>: ceil(index / 2^(schema - coarser)). Exact, because each coarser bucket is the union of
    /// 2^(schema - coarser) finer ones.
    /// </summary>
    public static int Reduce(int index, int schema, int coarser) =>
        schema == coarser ? index : (int)(((long)index + (1L << (schema - coarser)) - 1) >> (schema - coarser));

    /// <summary>Splits a positive finite double into a fraction in [0.5, 1) and a power of two, as C's frexp.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Frexp(double value, out int exponent)
    {
        var bits = BitConverter.DoubleToInt64Bits(value);
        var biased = (int)((bits >> 52) & 0x7FF);
        var adjust = 0;
        if (biased == 0)
        {
            // Subnormal: scale into the normal range first.
            value *= 18446744073709551616.0; // 2^64
            bits = BitConverter.DoubleToInt64Bits(value);
            biased = (int)((bits >> 52) & 0x7FF);
            adjust = 64;
        }

        exponent = biased - 1022 - adjust;
        return BitConverter.Int64BitsToDouble((bits & ~(0x7FFL << 52)) | (1022L << 52));
    }
}

/// <summary>One entry of a schema's mantissa table (see <see cref="NativeBuckets.IndexOfNormal"/>).</summary>
internal readonly struct IndexSlot(long boundMantissa, int index)
{
    /// <summary>The mantissa bits of the candidate bound; 2^52 (above every mantissa) past the octave's last bound.</summary>
    public readonly long BoundMantissa = boundMantissa;

    /// <summary>The candidate bound's position in the octave: the bucket of a fraction at or below it.</summary>
    public readonly int Index = index;
}

/// <summary>One entry of a schema's wide mantissa table (see <see cref="NativeBuckets.BiasedKeyOfNormal"/>).</summary>
internal readonly struct WideSlot(long boundMantissa, int key, int shift)
{
    /// <summary>As <see cref="IndexSlot.BoundMantissa"/>.</summary>
    public readonly long BoundMantissa = boundMantissa;

    /// <summary><see cref="IndexSlot.Index"/> times 2: its bucket's key on the positive side.</summary>
    public readonly int Key = key;

    /// <summary>The table's schema plus 1: how far the exponent shifts to count in keys.</summary>
    public readonly int Shift = shift;
}

/// <summary>
/// One native histogram series merged from its stored buckets, possibly written at several schemas by several processes:
/// everything is reduced to the coarsest schema seen, then laid out as Prometheus spans and deltas.
/// </summary>
internal sealed class NativeHistogramData
{
    private readonly List<(HistogramBucket Bucket, double Count)> _buckets = [];

    public NativeHistogramData(int schema, double zeroThreshold)
    {
        Schema = schema;
        ZeroThreshold = zeroThreshold;
    }

    /// <summary>The schema of the merged buckets: the coarsest added, or the configured one when none was.</summary>
    public int Schema { get; private set; }

    public double ZeroThreshold { get; }

    public double ZeroCount { get; private set; }

    /// <summary>The zero bucket plus every positive and negative bucket: the series' observation count.</summary>
    public double Count { get; private set; }

    public (int Index, double Count)[] Positive { get; private set; } = [];

    public (int Index, double Count)[] Negative { get; private set; } = [];

    public void Add(HistogramBucket bucket, double count)
    {
        Count += count;
        if (bucket.Part == HistogramPart.NativeZero)
        {
            ZeroCount += count;
            return;
        }

        _buckets.Add((bucket, count));
    }

    /// <summary>Merges what was added into <see cref="Positive"/> and <see cref="Negative"/>, sorted by index.</summary>
    public NativeHistogramData Complete()
    {
        if (_buckets.Count == 0)
        {
            return this;
        }

        var schema = int.MaxValue;
        foreach (var (bucket, _) in _buckets)
        {
            schema = Math.Min(schema, bucket.Schema);
        }

        Schema = schema;
        SortedDictionary<int, double>? positive = null, negative = null;
        foreach (var (bucket, count) in _buckets)
        {
            var side = bucket.Part == HistogramPart.NativePositive ? positive ??= [] : negative ??= [];
            var index = NativeBuckets.Reduce(bucket.Index, bucket.Schema, schema);
            side[index] = side.GetValueOrDefault(index) + count;
        }

        Positive = positive is null ? [] : [.. positive.Select(p => (p.Key, p.Value))];
        Negative = negative is null ? [] : [.. negative.Select(p => (p.Key, p.Value))];
        return this;
    }
}
