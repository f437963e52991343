using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Metrics.Backends.SharedMemory;

/// <summary>What an entry of the store holds for its series.</summary>
internal enum EntryRole : byte
{
    /// <summary>The one shared value of the series (counters, histogram and summary parts, Sum and MostRecent gauges).</summary>
    Value = 0,

    /// <summary>One process slot's contribution to an aggregated gauge.</summary>
    Cell = 1,

    /// <summary>The folded contributions of exited processes of a Max or Min gauge.</summary>
    Archive = 2,

    /// <summary>A series that belongs to one process (PerProcess gauges, whose pid label the host adds).</summary>
    Owned = 3,

    /// <summary>
    /// A record that one process slot uses one definition of a family name: v0 is the owner's epoch, the key's only
    /// "label value" is the definition's text (for the conflict message).
    /// </summary>
    Schema = 4,

    /// <summary>
    /// The latest exemplar of a <see cref="Value"/> entry (same key, this role), in the entry's payload
    /// (<see cref="ExemplarRecord"/>); the value entry's word 1 holds this entry's index once it exists.
    /// </summary>
    Exemplar = 5,
}

/// <summary>
/// Binary key of an entry: a fixed prefix (role, slot, part, bound, family definition) followed by the name and label
/// values, each length-prefixed and stored as raw UTF-16 code units. Length prefixes make the encoding unambiguous for
/// any content, and raw code units keep even unpaired surrogates distinct (UTF-8 would fold them into U+FFFD).
/// </summary>
/// <remarks>
/// The definition (<see cref="MetricDescriptor.DefinitionId"/>) is part of every key, so processes that declare one
/// name differently (other buckets, labels, type or gauge mode) never share a value: each definition has its own.
/// </remarks>
internal static class SeriesKey
{
    /// <summary>Bytes before the name: role (1), part (1), padding (2), slot (4), bound bits (8), definition id (8).</summary>
    public const int PrefixLength = 24;

    private const int SlotOffset = 4;
    private const int DefinitionOffset = 16;

    /// <summary>The 64-bit number <see cref="MetricDescriptor.DefinitionId"/> spells in hex.</summary>
    public static ulong DefinitionOf(MetricDescriptor metric) =>
        ulong.Parse(metric.DefinitionId, System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The key recording that <paramref name="slot"/> uses <paramref name="metric"/>'s definition of its name.</summary>
    public static byte[] Schema(MetricDescriptor metric, int slot) =>
        Encode(metric.Name, [metric.Definition], null, EntryRole.Schema, slot, DefinitionOf(metric));

    public static byte[] Encode(string name, IReadOnlyList<string> labelValues, HistogramBucket? bucket, EntryRole role, int slot, ulong definition)
    {
        var length = PrefixLength + 4 + (name.Length * 2) + 4;
        for (var i = 0; i < labelValues.Count; i++)
        {
            length += 4 + (labelValues[i].Length * 2);
        }

        var key = new byte[length];
        var span = key.AsSpan();
        span[0] = (byte)role;
        var (part, boundBits) = EncodePart(bucket);
        span[1] = part;
        BinaryPrimitives.WriteInt32LittleEndian(span[SlotOffset..], slot);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], boundBits);
        BinaryPrimitives.WriteUInt64LittleEndian(span[DefinitionOffset..], definition);
        var offset = PrefixLength;
        offset = WriteString(span, offset, name);
        BinaryPrimitives.WriteInt32LittleEndian(span[offset..], labelValues.Count);
        offset += 4;
        for (var i = 0; i < labelValues.Count; i++)
        {
            offset = WriteString(span, offset, labelValues[i]);
        }

        return key;
    }

    /// <summary>Returns a copy of <paramref name="key"/> with another role and slot: the same series' cell or archive.</summary>
    public static byte[] WithRole(byte[] key, EntryRole role, int slot)
    {
        var copy = (byte[])key.Clone();
        copy[0] = (byte)role;
        BinaryPrimitives.WriteInt32LittleEndian(copy.AsSpan(SlotOffset), slot);
        return copy;
    }

    public static EntryRole RoleOf(ReadOnlySpan<byte> key) => (EntryRole)key[0];

    public static int SlotOf(ReadOnlySpan<byte> key) => BinaryPrimitives.ReadInt32LittleEndian(key[SlotOffset..]);

    public static ulong DefinitionOf(ReadOnlySpan<byte> key) => BinaryPrimitives.ReadUInt64LittleEndian(key[DefinitionOffset..]);

    /// <summary>Reads the metric name without decoding the label values, so a scrape skips foreign families cheaply.</summary>
    public static ReadOnlySpan<char> NameOf(ReadOnlySpan<byte> key)
    {
        if (key.Length < PrefixLength + 4)
        {
            throw Corrupt();
        }

        var chars = BinaryPrimitives.ReadInt32LittleEndian(key[PrefixLength..]);
        if (chars < 0 || PrefixLength + 4 + (chars * 2L) > key.Length)
        {
            throw Corrupt();
        }

        return MemoryMarshal.Cast<byte, char>(key.Slice(PrefixLength + 4, chars * 2));
    }

    /// <summary>The series identity (definition included) without role and slot, as text: equal for a gauge's cells and archive.</summary>
    public static string GroupKey(ReadOnlySpan<byte> key)
    {
        // Past the slot, the key is 4-byte integers and UTF-16 text: an even length, so it reads as chars.
        var rest = MemoryMarshal.Cast<byte, char>(key[8..]);
        return string.Create(rest.Length + 1, (key[1], rest.ToArray()), static (dest, state) =>
        {
            dest[0] = (char)state.Item1;
            state.Item2.CopyTo(dest[1..]);
        });
    }

    public static string[] DecodeLabels(ReadOnlySpan<byte> key, out HistogramBucket? bucket)
    {
        bucket = DecodePart(key[1], BinaryPrimitives.ReadInt64LittleEndian(key[8..]));
        var offset = PrefixLength;
        _ = ReadString(key, ref offset);
        var count = ReadInt(key, ref offset);
        if (count < 0 || count > (key.Length - offset) / 4)
        {
            throw Corrupt();
        }

        var labels = new string[count];
        for (var i = 0; i < count; i++)
        {
            labels[i] = ReadString(key, ref offset);
        }

        return labels;
    }

    private static (byte Part, long BoundBits) EncodePart(HistogramBucket? bucket)
    {
        if (bucket is not { } b)
        {
            return (0, 0);
        }

        return b.Part switch
        {
            // HistogramBucket equality treats 0.0 and -0.0 as one bound, so the key must too.
            HistogramPart.Bucket => (1, BitConverter.DoubleToInt64Bits(b.UpperBound == 0 ? 0.0 : b.UpperBound)),
            HistogramPart.Sum => (2, 0),
            _ when b.IsNative => (4, b.NativeKey),
            _ => (3, 0),
        };
    }

    private static HistogramBucket? DecodePart(byte part, long boundBits) => part switch
    {
        0 => null,
        1 => HistogramBucket.ForUpperBound(BitConverter.Int64BitsToDouble(boundBits)),
        2 => HistogramBucket.Sum,
        3 => HistogramBucket.Count,
        4 => HistogramBucket.FromNativeKey(boundBits),
        _ => throw Corrupt(),
    };

    private static int WriteString(Span<byte> span, int offset, string value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(span[offset..], value.Length);
        offset += 4;
        MemoryMarshal.AsBytes(value.AsSpan()).CopyTo(span[offset..]);
        return offset + (value.Length * 2);
    }

    private static int ReadInt(ReadOnlySpan<byte> key, ref int offset)
    {
        if (offset + 4 > key.Length)
        {
            throw Corrupt();
        }

        var value = BinaryPrimitives.ReadInt32LittleEndian(key[offset..]);
        offset += 4;
        return value;
    }

    private static string ReadString(ReadOnlySpan<byte> key, ref int offset)
    {
        var chars = ReadInt(key, ref offset);
        if (chars < 0 || offset + (chars * 2L) > key.Length)
        {
            throw Corrupt();
        }

        var value = new string(MemoryMarshal.Cast<byte, char>(key.Slice(offset, chars * 2)));
        offset += chars * 2;
        return value;
    }

    private static InvalidDataException Corrupt() =>
        new("A key in the shared-memory metrics store is malformed: the store file was modified by something other than this backend. Delete the store file to start afresh.");
}
