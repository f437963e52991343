using System.Runtime.CompilerServices;

namespace Metrics;

/// <summary>
/// Lock-free arithmetic on a double stored as its 64-bit pattern, the representation a backend value keeps in memory,
/// in a mapped file or in a <see cref="IMetricBackend.ValueCell"/>.
/// </summary>
/// <remarks>
/// Every update is a compare-and-swap of the whole pattern, so NaN, infinities and negative zero stored by
/// <see cref="Write"/> read back bit for bit, and concurrent additions apply one at a time.
/// </remarks>
public static class AtomicDouble
{
    /// <summary>
    /// Contract 1.1, additive: the bits a backend writes into a <see cref="IMetricBackend.ValueCell"/> word it has stopped using
    /// (its value moved, for example to a store file that replaced a deleted one). A signalling NaN no arithmetic
    /// produces: the host's <see cref="TryAddToCell"/> never adds to it, so an update aimed at a moved cell goes to the
    /// backend, and the host then reads <see cref="IMetricBackend.ValueCell"/> again.
    /// </summary>
    public const long MovedCell = 0x7FF0_0000_4D4F_5644;

    /// <summary>Reads the double stored at <paramref name="bits"/>.</summary>
    /// <param name="bits">The word holding the double's bits.</param>
    /// <returns>The value.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Read(ref long bits) => BitConverter.Int64BitsToDouble(Volatile.Read(ref bits));

    /// <summary>Stores <paramref name="value"/> at <paramref name="bits"/> (a release store; atomic for an aligned word).</summary>
    /// <param name="bits">The word holding the double's bits.</param>
    /// <param name="value">The value to store.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write(ref long bits, double value) => Volatile.Write(ref bits, BitConverter.DoubleToInt64Bits(value));

    /// <summary>Tries once to add <paramref name="value"/>; fails only when another thread changed the word meanwhile.</summary>
    /// <param name="bits">The word holding the double's bits.</param>
    /// <param name="value">The amount to add.</param>
    /// <returns>Whether the addition was applied.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryAdd(ref long bits, double value)
    {
        var current = Volatile.Read(ref bits);
        return Interlocked.CompareExchange(ref bits, BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(current) + value), current) == current;
    }

    /// <summary>
    /// Contract 1.1, additive: how the host adds at a <see cref="IMetricBackend.ValueCell"/>. Tries once to add
    /// <paramref name="value"/>; fails when another thread changed the word meanwhile, and when the word holds
    /// <see cref="MovedCell"/>, which it leaves as it is. The caller then calls the backend's <see cref="IMetricBackend.Inc"/>.
    /// </summary>
    /// <remarks>
    /// Unlike <see cref="TryAdd"/>, retrying it in a loop never succeeds on a moved word: only the backend may decide what
    /// the marker means.
    /// </remarks>
    /// <param name="bits">The value cell's word.</param>
    /// <param name="value">The amount to add.</param>
    /// <returns>Whether the addition was applied.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryAddToCell(ref long bits, double value)
    {
        var current = Volatile.Read(ref bits);
        // One compare of a register already loaded: a moved word must never take an update, or the update would be lost.
        return current != MovedCell
               && Interlocked.CompareExchange(ref bits, BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(current) + value), current) == current;
    }

    /// <summary>Adds <paramref name="value"/>, retrying until no other thread interferes.</summary>
    /// <param name="bits">The word holding the double's bits.</param>
    /// <param name="value">The amount to add.</param>
    /// <returns>The value after the addition.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Add(ref long bits, double value)
    {
        var current = Volatile.Read(ref bits);
        while (true)
        {
            var next = BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(current) + value);
            var seen = Interlocked.CompareExchange(ref bits, next, current);
            if (seen == current)
            {
                return BitConverter.Int64BitsToDouble(next);
            }

            current = seen;
        }
    }

    /// <summary>Replaces the value with the result of <paramref name="update"/> applied to it, atomically.</summary>
    /// <param name="bits">The word holding the double's bits.</param>
    /// <param name="update">Computes the new value from the current one; may run more than once.</param>
    /// <returns>The value stored.</returns>
    public static double Update(ref long bits, Func<double, double> update)
    {
        ArgumentNullException.ThrowIfNull(update);
        var current = Volatile.Read(ref bits);
        while (true)
        {
            var next = BitConverter.DoubleToInt64Bits(update(BitConverter.Int64BitsToDouble(current)));
            var seen = Interlocked.CompareExchange(ref bits, next, current);
            if (seen == current)
            {
                return BitConverter.Int64BitsToDouble(next);
            }

            current = seen;
        }
    }
}
