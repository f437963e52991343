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
    private byte[] _buffer;
    private int _pos;

    public ExpositionBuffer(int initialSize = 64 * 1024) => _buffer = ArrayPool<byte>.Shared.Rent(initialSize);

    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _pos);

    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _pos);

    public int Position => _pos;

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
