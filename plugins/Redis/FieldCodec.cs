using System.Globalization;
using System.Text;

namespace Metrics.Backends.Redis;

/// <summary>
/// Encodes a series' label values and histogram part as one hash field, without ambiguity for any label text:
/// each label value is written as its UTF-8 byte length in decimal, <c>:</c>, then the bytes; then <c>#</c> and
/// the part (<c>sum</c>, <c>count</c>, a bucket bound, or nothing for a counter or gauge).
/// </summary>
/// <remarks>
/// Length prefixes mean no character needs escaping: a separator, quote, newline or <c>#</c> inside a value is read
/// as data because the reader counts bytes. Values are encoded strictly, so two different strings never map to the
/// same bytes (an unpaired surrogate is refused when the value is created rather than replaced).
/// </remarks>
internal static class FieldCodec
{
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Refuses label values that have no UTF-8 form (an unpaired surrogate), so <see cref="Encode"/> never fails later.</summary>
    /// <exception cref="ArgumentException">A value holds an unpaired UTF-16 surrogate.</exception>
    public static void Validate(IReadOnlyList<string> labelValues)
    {
        foreach (var value in labelValues)
        {
            ByteCount(value);
        }
    }

    /// <summary>The field of the series <paramref name="labelValues"/> and <paramref name="part"/>, in one exact-size array.</summary>
    /// <exception cref="ArgumentException">A value holds an unpaired UTF-16 surrogate.</exception>
    public static byte[] Encode(IReadOnlyList<string> labelValues, HistogramBucket? part)
    {
        var count = labelValues.Count;
        Span<int> lengths = count <= 16 ? stackalloc int[count] : new int[count];
        var total = 1;
        for (var i = 0; i < count; i++)
        {
            lengths[i] = ByteCount(labelValues[i]);
            total += Digits(lengths[i]) + 1 + lengths[i];
        }

        var partText = part is { } p ? p.ToString() : null;
        total += partText?.Length ?? 0;
        var field = new byte[total];
        var pos = 0;
        for (var i = 0; i < count; i++)
        {
            lengths[i].TryFormat(field.AsSpan(pos), out var written, default, CultureInfo.InvariantCulture);
            pos += written;
            field[pos++] = (byte)':';
            pos += Strict.GetBytes(labelValues[i], field.AsSpan(pos));
        }

        field[pos++] = (byte)'#';
        if (partText is not null)
        {
            Encoding.ASCII.GetBytes(partText, field.AsSpan(pos));
        }

        return field;
    }

    private static int ByteCount(string value)
    {
        try
        {
            return Strict.GetByteCount(value);
        }
        catch (EncoderFallbackException ex)
        {
            throw new ArgumentException($"A label value contains an unpaired UTF-16 surrogate at index {ex.Index} and cannot be stored as UTF-8.", "labelValues", ex);
        }
    }

    private static int Digits(int value)
    {
        var digits = 1;
        while (value >= 10)
        {
            value /= 10;
            digits++;
        }

        return digits;
    }

    /// <summary>
    /// Decodes a field written by <see cref="Encode"/>; <paramref name="seriesLength"/> is the length of its series part
    /// (the label values up to and including '#'), which every part of one series shares.
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<byte> field, int labelCount, out string[] labelValues, out HistogramBucket? part, out int seriesLength)
    {
        labelValues = new string[labelCount];
        part = null;
        seriesLength = 0;
        var pos = 0;
        for (var i = 0; i < labelCount; i++)
        {
            if (!TryReadValue(field, ref pos, out var value))
            {
                return false;
            }

            labelValues[i] = Strict.GetString(value);
        }

        if (!EndsSeries(field, pos))
        {
            return false;
        }

        seriesLength = pos + 1;
        var rest = field[(pos + 1)..];
        if (rest.Length == 0)
        {
            return true;
        }

        try
        {
            part = HistogramBucket.Parse(Encoding.ASCII.GetString(rest));
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>
    /// The length of the series part of <paramref name="field"/> (its <paramref name="labelCount"/> label values up to and
    /// including '#'), without decoding the values; -1 when it is not a field of a family with that many labels.
    /// </summary>
    public static int SeriesLength(ReadOnlySpan<byte> field, int labelCount)
    {
        var pos = 0;
        for (var i = 0; i < labelCount; i++)
        {
            if (!TryReadValue(field, ref pos, out _))
            {
                return -1;
            }
        }

        return EndsSeries(field, pos) ? pos + 1 : -1;
    }

    /// <summary>Reads the length-prefixed label value at <paramref name="pos"/> and moves past it.</summary>
    private static bool TryReadValue(ReadOnlySpan<byte> field, ref int pos, out ReadOnlySpan<byte> value)
    {
        value = default;
        var colon = field[pos..].IndexOf((byte)':');
        if (colon <= 0 || !int.TryParse(field.Slice(pos, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var length)
            || length > field.Length - pos - colon - 1)
        {
            return false;
        }

        value = field.Slice(pos + colon + 1, length);
        pos += colon + 1 + length;
        return true;
    }

    private static bool EndsSeries(ReadOnlySpan<byte> field, int pos) => pos < field.Length && field[pos] == (byte)'#';
}
