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

    public static byte[] Encode(IReadOnlyList<string> labelValues, HistogramBucket? part)
    {
        var buffer = new List<byte>(32);
        foreach (var value in labelValues)
        {
            byte[] bytes;
            try
            {
                bytes = Strict.GetBytes(value);
            }
            catch (EncoderFallbackException ex)
            {
                throw new ArgumentException($"A label value contains an unpaired UTF-16 surrogate at index {ex.Index} and cannot be stored as UTF-8.", nameof(labelValues), ex);
            }

            buffer.AddRange(Encoding.ASCII.GetBytes(bytes.Length.ToString(CultureInfo.InvariantCulture)));
            buffer.Add((byte)':');
            buffer.AddRange(bytes);
        }

        buffer.Add((byte)'#');
        if (part is { } p)
        {
            buffer.AddRange(Encoding.ASCII.GetBytes(p.ToString()));
        }

        return [.. buffer];
    }

    /// <summary>Decodes a field written by <see cref="Encode"/>; <see langword="false"/> when it is not one with <paramref name="labelCount"/> labels.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> field, int labelCount, out string[] labelValues, out HistogramBucket? part)
    {
        labelValues = new string[labelCount];
        part = null;
        var pos = 0;
        for (var i = 0; i < labelCount; i++)
        {
            var colon = field[pos..].IndexOf((byte)':');
            if (colon <= 0 || !int.TryParse(field.Slice(pos, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var length))
            {
                return false;
            }

            pos += colon + 1;
            if (length > field.Length - pos)
            {
                return false;
            }

            labelValues[i] = Strict.GetString(field.Slice(pos, length));
            pos += length;
        }

        if (pos >= field.Length || field[pos] != (byte)'#')
        {
            return false;
        }

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
}
