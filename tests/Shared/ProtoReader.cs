using System.Buffers.Binary;
using System.Text;

namespace Metrics.Tests;

/// <summary>
/// A minimal protobuf reader for tests, written from the wire format alone (independent of the library's writer):
/// a message is read into its fields by number, each a varint, a fixed64 or a length-delimited byte string.
/// </summary>
internal sealed class ProtoMessage
{
    private readonly Dictionary<int, List<object>> _fields = [];

    public static List<ProtoMessage> ReadDelimited(ReadOnlySpan<byte> data)
    {
        var messages = new List<ProtoMessage>();
        var pos = 0;
        while (pos < data.Length)
        {
            var length = (int)ReadVarint(data, ref pos);
            messages.Add(Parse(data.Slice(pos, length)));
            pos += length;
        }

        return messages;
    }

    public static ProtoMessage Parse(ReadOnlySpan<byte> data)
    {
        var message = new ProtoMessage();
        var pos = 0;
        while (pos < data.Length)
        {
            var tag = ReadVarint(data, ref pos);
            var field = (int)(tag >> 3);
            object value;
            switch (tag & 7)
            {
                case 0:
                    value = ReadVarint(data, ref pos);
                    break;
                case 1:
                    value = BinaryPrimitives.ReadUInt64LittleEndian(data[pos..]);
                    pos += 8;
                    break;
                case 2:
                    value = ReadBytes(data, ref pos);
                    break;
                default:
                    throw new InvalidDataException($"wire type {tag & 7} at {pos}");
            }

            if (!message._fields.TryGetValue(field, out var list))
            {
                message._fields[field] = list = [];
            }

            list.Add(value);
        }

        return message;
    }

    public bool Has(int field) => _fields.ContainsKey(field);

    public ulong Varint(int field) => _fields.TryGetValue(field, out var v) ? (ulong)v[^1] : 0;

    public long SInt(int field) => ZigZag(Varint(field));

    public double Double(int field) => _fields.TryGetValue(field, out var v) ? BitConverter.UInt64BitsToDouble((ulong)v[^1]) : 0;

    public string String(int field) => _fields.TryGetValue(field, out var v) ? Encoding.UTF8.GetString((byte[])v[^1]) : "";

    public ProtoMessage? Message(int field) => _fields.TryGetValue(field, out var v) ? Parse((byte[])v[^1]) : null;

    public List<ProtoMessage> Messages(int field) => _fields.TryGetValue(field, out var v) ? [.. v.Select(b => Parse((byte[])b))] : [];

    public List<long> SInts(int field) => _fields.TryGetValue(field, out var v) ? [.. v.Select(x => ZigZag((ulong)x))] : [];

    private static long ZigZag(ulong v) => (long)(v >> 1) ^ -(long)(v & 1);

    private static byte[] ReadBytes(ReadOnlySpan<byte> data, ref int pos)
    {
        var length = (int)ReadVarint(data, ref pos);
        var bytes = data.Slice(pos, length).ToArray();
        pos += length;
        return bytes;
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> data, ref int pos)
    {
        ulong result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = data[pos++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return result;
            }
        }
    }
}
