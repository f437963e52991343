using System.Buffers.Binary;
using System.Text;

namespace Metrics.Backends.Redis;

/// <summary>
/// An exemplar as a field value of a family's exemplar hash: the timestamp and the value as little-endian doubles
/// (the timestamp first, so the store script compares it without decoding the rest), then each label name and value
/// as a 16-bit little-endian byte count and its UTF-8.
/// </summary>
internal static class ExemplarCodec
{
    public static byte[] Encode(in RecordedExemplar exemplar)
    {
        var pairs = exemplar.Labels.Pairs();
        var length = 16;
        foreach (var part in pairs)
        {
            length += 2 + Encoding.UTF8.GetByteCount(part);
        }

        var payload = new byte[length];
        BinaryPrimitives.WriteDoubleLittleEndian(payload, exemplar.TimestampUnixSeconds);
        BinaryPrimitives.WriteDoubleLittleEndian(payload.AsSpan(8), exemplar.Value);
        var position = 16;
        foreach (var part in pairs)
        {
            var written = Encoding.UTF8.GetBytes(part, payload.AsSpan(position + 2));
            BinaryPrimitives.WriteUInt16LittleEndian(payload.AsSpan(position), (ushort)written);
            position += 2 + written;
        }

        return payload;
    }

    /// <summary>Decodes a stored exemplar; false for bytes no Metrics writer produced (the scrape leaves that exemplar out).</summary>
    public static bool TryDecode(ReadOnlySpan<byte> payload, out RecordedExemplar exemplar)
    {
        exemplar = default;
        if (payload.Length < 16)
        {
            return false;
        }

        var timestamp = BinaryPrimitives.ReadDoubleLittleEndian(payload);
        var value = BinaryPrimitives.ReadDoubleLittleEndian(payload[8..]);
        var parts = new List<string>(4);
        var position = 16;
        while (position < payload.Length)
        {
            if (position + 2 > payload.Length)
            {
                return false;
            }

            var count = BinaryPrimitives.ReadUInt16LittleEndian(payload[position..]);
            if (position + 2 + count > payload.Length)
            {
                return false;
            }

            parts.Add(Encoding.UTF8.GetString(payload.Slice(position + 2, count)));
            position += 2 + count;
        }

        try
        {
            exemplar = new RecordedExemplar(Exemplar.FromPairs([.. parts]), value, timestamp);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
