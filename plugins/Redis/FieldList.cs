using System.Buffers.Binary;

namespace Metrics.Backends.Redis;

/// <summary>How a read of a family's field list relates to what the reader had read before.</summary>
internal enum FieldListRead
{
    /// <summary>The family holds no data (never written, expired, or every series removed with its keys).</summary>
    Empty,

    /// <summary>Same generation, and the tail starts where the reader stopped: its entries follow those read before.</summary>
    Continue,

    /// <summary>Another generation (a removal, keys created afresh): the tail is the whole list.</summary>
    Restart,

    /// <summary>Another generation yet not the whole list: a reply older than what the reader took in (two reads crossed).</summary>
    Stale,
}

/// <summary>
/// The reading side of a family's append-only field list (see <see cref="Scripts.ApplyBatch"/>): an 8-byte generation,
/// then entries of '+' (or '-' once removed), the field's length as a 4-byte little-endian integer, and the field.
/// </summary>
internal static class FieldList
{
    /// <summary>The generation in front of the entries; a reader that has read nothing starts its next read here.</summary>
    public const int HeaderLength = 8;

    /// <summary>
    /// Classifies a reply of <see cref="Scripts.ReadFieldList"/> or <see cref="Scripts.CollectSlots"/>: the list's
    /// <paramref name="generation"/> and where its tail starts (<paramref name="from"/>), against the generation and list
    /// length the reader had read.
    /// </summary>
    public static FieldListRead Classify(byte[] generation, long from, byte[] readGeneration, long readLength) =>
        generation.Length == 0 ? FieldListRead.Empty
        : from == readLength && generation.AsSpan().SequenceEqual(readGeneration) ? FieldListRead.Continue
        : from == HeaderLength ? FieldListRead.Restart
        : FieldListRead.Stale;
}

/// <summary>The entries of a field list's tail, in order; stops at an entry that is cut short or malformed.</summary>
internal ref struct FieldListEntries(ReadOnlySpan<byte> tail)
{
    private const int EntryHeader = 5;

    private readonly ReadOnlySpan<byte> _tail = tail;

    /// <summary>Bytes of the tail taken by the entries read so far.</summary>
    public int Consumed { get; private set; }

    /// <summary>Whether every byte of the tail was read as whole entries.</summary>
    public readonly bool Complete => Consumed == _tail.Length;

    /// <summary>The next entry: whether it is live ('+') and its field; false at the end or at an entry that does not parse.</summary>
    public bool TryNext(out bool live, out ReadOnlySpan<byte> field)
    {
        var rest = _tail[Consumed..];
        if (rest.Length >= EntryHeader)
        {
            var length = BinaryPrimitives.ReadInt32LittleEndian(rest[1..]);
            if (length >= 0 && length <= rest.Length - EntryHeader)
            {
                live = rest[0] == (byte)'+';
                field = rest.Slice(EntryHeader, length);
                Consumed += EntryHeader + length;
                return true;
            }
        }

        live = false;
        field = default;
        return false;
    }
}
