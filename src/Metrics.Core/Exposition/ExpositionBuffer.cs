using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;

namespace Metrics;

/// <summary>
/// UTF-8 output of an exposition: a growing buffer rented from <see cref="ArrayPool{T}.Shared"/> with the few
/// primitives the formats need (raw bytes, escaped text, Prometheus-style doubles). The owner returns the buffer by
/// disposing, or takes it with <see cref="Detach"/>.
/// </summary>
internal sealed class ExpositionBuffer : IDisposable
{
    // A 5-byte varint holds any length below 32 GiB, beyond any buffer.
    private const int MaxLengthBytes = 5;
    private byte[] _buffer;
    private int _pos;

    public ExpositionBuffer(int initialSize = 64 * 1024) => _buffer = ArrayPool<byte>.Shared.Rent(initialSize);

    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _pos);

    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _pos);

    public int Position => _pos;

    /// <summary>How many bytes fit before the buffer grows.</summary>
    public int Capacity => _buffer.Length;

    /// <summary>Hands the rented buffer to the caller, who returns it to <see cref="ArrayPool{T}.Shared"/>.</summary>
    public byte[] Detach(out int length)
    {
        var buffer = _buffer;
        length = _pos;
        _buffer = [];
        _pos = 0;
        return buffer;
    }

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteByte(byte b)
    {
        Ensure(1);
        _buffer[_pos++] = b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteRaw(ReadOnlySpan<byte> bytes)
    {
        Ensure(bytes.Length);
        bytes.CopyTo(_buffer.AsSpan(_pos));
        _pos += bytes.Length;
    }

    public void WriteInt64(long value)
    {
        Ensure(24);
        value.TryFormat(_buffer.AsSpan(_pos), out var n, default, CultureInfo.InvariantCulture);
        _pos += n;
    }

    /// <summary>Writes an integer with a numeric format such as <c>D3</c> (zero-padded digits).</summary>
    public void WriteInt32(int value, string format)
    {
        Ensure(16);
        value.TryFormat(_buffer.AsSpan(_pos), out var n, format, CultureInfo.InvariantCulture);
        _pos += n;
    }

    /// <summary>
    /// Writes a double as both formats want it: shortest round-trip text, integers without a fraction, lowercase
    /// exponent, and <c>+Inf</c>, <c>-Inf</c>, <c>NaN</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteDouble(double value)
    {
        Ensure(32);
        if (double.IsFinite(value))
        {
            // Integral values (all counts, most totals) take the integer formatter: shorter and faster.
            if (value == Math.Floor(value) && Math.Abs(value) < 1e15 && !(value == 0 && double.IsNegative(value)))
            {
                ((long)value).TryFormat(_buffer.AsSpan(_pos), out var n, default, CultureInfo.InvariantCulture);
                _pos += n;
                return;
            }

            value.TryFormat(_buffer.AsSpan(_pos), out var written, "R", CultureInfo.InvariantCulture);
            var span = _buffer.AsSpan(_pos, written);
            var e = span.IndexOf((byte)'E');
            if (e >= 0)
            {
                span[e] = (byte)'e';
            }

            _pos += written;
            return;
        }

        WriteRaw(double.IsNaN(value) ? "NaN"u8 : value > 0 ? "+Inf"u8 : "-Inf"u8);
    }

    /// <summary>Writes <paramref name="text"/> with backslash and newline escaped, and the double quote when asked.</summary>
    public void WriteEscaped(string text, bool escapeQuote)
    {
        foreach (var rune in text.EnumerateRunes())
        {
            Ensure(8);
            switch (rune.Value)
            {
                case '\\':
                    WriteRaw("\\\\"u8);
                    break;
                case '\n':
                    WriteRaw("\\n"u8);
                    break;
                case '"' when escapeQuote:
                    WriteRaw("\\\""u8);
                    break;
                default:
                    _pos += rune.EncodeToUtf8(_buffer.AsSpan(_pos));
                    break;
            }
        }
    }

    /// <summary>Writes a protobuf base-128 varint.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteVarint(ulong value)
    {
        Ensure(10);
        var buffer = _buffer;
        var pos = _pos;
        while (value >= 0x80)
        {
            buffer[pos++] = (byte)(value | 0x80);
            value >>= 7;
        }

        buffer[pos++] = (byte)value;
        _pos = pos;
    }

    /// <summary>Writes a double as protobuf's fixed64: the IEEE bits, little-endian.</summary>
    public void WriteFixed64(double value)
    {
        Ensure(8);
        System.Buffers.Binary.BinaryPrimitives.WriteDoubleLittleEndian(_buffer.AsSpan(_pos), value);
        _pos += 8;
    }

    /// <summary>
    /// Reserves room for the varint length of a protobuf message about to be written; <see cref="EndLength"/> fills it in.
    /// Returns where the reservation starts.
    /// </summary>
    public int BeginLength()
    {
        Ensure(MaxLengthBytes);
        var start = _pos;
        _pos += MaxLengthBytes;
        return start;
    }

    /// <summary>Writes the length of everything after the reservation at <paramref name="start"/> and closes the gap.</summary>
    public void EndLength(int start)
    {
        var bodyStart = start + MaxLengthBytes;
        var length = (uint)(_pos - bodyStart);
        var size = 1;
        for (var v = length; v >= 0x80; v >>= 7)
        {
            size++;
        }

        // Minimal varints only: some decoders refuse padded ones. The body moves back once per message; messages nest a
        // few levels deep, so each byte moves a few times at most.
        if (size < MaxLengthBytes)
        {
            _buffer.AsSpan(bodyStart, (int)length).CopyTo(_buffer.AsSpan(start + size));
            _pos -= MaxLengthBytes - size;
        }

        var pos = start;
        while (length >= 0x80)
        {
            _buffer[pos++] = (byte)(length | 0x80);
            length >>= 7;
        }

        _buffer[pos] = (byte)length;
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 without allocating.</summary>
    public void WriteUtf8(string text)
    {
        Ensure(System.Text.Encoding.UTF8.GetMaxByteCount(text.Length));
        _pos += System.Text.Encoding.UTF8.GetBytes(text, _buffer.AsSpan(_pos));
    }

    /// <summary>The bytes written since <paramref name="start"/>, for small in-place fix-ups.</summary>
    public Span<byte> Since(int start) => _buffer.AsSpan(start, _pos - start);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Ensure(int count)
    {
        if (_buffer.Length - _pos < count)
        {
            Grow(count);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Grow(int count)
    {
        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _pos + count));
        _buffer.AsSpan(0, _pos).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
    }
}
