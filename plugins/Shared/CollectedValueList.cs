using System.Collections;

namespace Metrics.Backends;

/// <summary>
/// The values of one family for one collection, stored in chunks small enough to stay off the large object heap: a
/// family of ten thousand series in one array would be a large object every scrape, and each of those brings a full
/// garbage collection closer, whose cost grows with everything the process holds.
/// </summary>
internal sealed class CollectedValueList : IReadOnlyList<CollectedValue>
{
    // Read-only statics are constants to the optimizing JIT, so the indexer still shifts by an immediate. Declared first:
    // static fields initialize in textual order.
    private static readonly int ChunkShift = 16 - (int)Math.Ceiling(Math.Log2(System.Runtime.CompilerServices.Unsafe.SizeOf<CollectedValue>()));

    /// <summary>Values per chunk: a power of two whose chunk takes at most 64 KiB, under the 85,000-byte large-object
    /// threshold whatever size <see cref="CollectedValue"/> has (it grows when exemplars keep labels inline).</summary>
    internal static readonly int ChunkSize = 1 << ChunkShift;

    private CollectedValue[][] _chunks = [];
    private int _count;

    public int Count => _count;

    public CollectedValue this[int index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfNegative(index);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _count);
            return _chunks[index >> ChunkShift][index & (ChunkSize - 1)];
        }
    }

    public void Add(CollectedValue value)
    {
        var chunk = _count >> ChunkShift;
        if (chunk == _chunks.Length)
        {
            Array.Resize(ref _chunks, Math.Max(4, _chunks.Length * 2));
        }

        (_chunks[chunk] ??= new CollectedValue[ChunkSize])[_count & (ChunkSize - 1)] = value;
        _count++;
    }

    /// <summary>Replaces the value at <paramref name="index"/> (which must exist).</summary>
    public void Set(int index, CollectedValue value)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)_count, nameof(index));
        _chunks[index >> ChunkShift][index & (ChunkSize - 1)] = value;
    }

    public Enumerator GetEnumerator() => new(this);

    IEnumerator<CollectedValue> IEnumerable<CollectedValue>.GetEnumerator() => GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Walks the chunks without an allocation when the caller knows the concrete type.</summary>
    public struct Enumerator(CollectedValueList list) : IEnumerator<CollectedValue>
    {
        private int _index = -1;

        public readonly CollectedValue Current => list._chunks[_index >> ChunkShift][_index & (ChunkSize - 1)];

        readonly object IEnumerator.Current => Current;

        public bool MoveNext() => ++_index < list._count;

        public void Reset() => _index = -1;

        public readonly void Dispose()
        {
        }
    }
}
