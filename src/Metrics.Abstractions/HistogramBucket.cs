using System.Globalization;

namespace Metrics;

/// <summary>Which part of a histogram or summary series a value holds.</summary>
public enum HistogramPart
{
    /// <summary>The count of observations that fell into one bucket (not cumulative).</summary>
    Bucket,

    /// <summary>The sum of all observations.</summary>
    Sum,

    /// <summary>The number of observations (summaries; a histogram's count is the sum of its buckets).</summary>
    Count,

    /// <summary>
    /// Contract 1.1: a native histogram's positive bucket, identified by <see cref="HistogramBucket.Schema"/> and
    /// <see cref="HistogramBucket.Index"/>; it counts observations in (2^((index-1)·2^-schema), 2^(index·2^-schema)].
    /// </summary>
    NativePositive,

    /// <summary>
    /// Contract 1.1: a native histogram's negative bucket, the mirror image of <see cref="NativePositive"/>: it counts
    /// observations in [-2^(index·2^-schema), -2^((index-1)·2^-schema)).
    /// </summary>
    NativeNegative,

    /// <summary>Contract 1.1: a native histogram's zero bucket: observations whose magnitude is at most the zero threshold.</summary>
    NativeZero,
}

/// <summary>
/// Identifies the part of a histogram or summary series a backend value holds: one bucket (by its upper
/// bound), the sum, or the count. Passed as <see langword="null"/> for counters and gauges.
/// </summary>
/// <remarks>
/// <para>
/// A histogram bucket value counts only the observations that fell into that bucket; the host makes
/// buckets cumulative at exposition and exposes <c>_count</c> as the sum of all buckets, so <c>+Inf</c>
/// equals <c>_count</c> in every scrape whatever the backend's consistency.
/// </para>
/// <para>
/// Contract 1.1 adds the buckets of native histograms (<see cref="HistogramPart.NativePositive"/>,
/// <see cref="HistogramPart.NativeNegative"/>, <see cref="HistogramPart.NativeZero"/>), created on first use and only
/// for a backend that declares <see cref="BackendCapabilities.NativeHistogramBuckets"/>. A backend keys them like any
/// other part: by <see cref="ToString"/> / <see cref="Parse"/>, or by <see cref="Part"/> and <see cref="NativeKey"/>.
/// </para>
/// </remarks>
public readonly struct HistogramBucket : IEquatable<HistogramBucket>
{
    /// <summary>The smallest native schema (each bucket spans a factor of 2^16).</summary>
    public const int MinNativeSchema = -4;

    /// <summary>The largest native schema (each power of two split into 256 buckets).</summary>
    public const int MaxNativeSchema = 8;

    private readonly int _schema;
    private readonly int _index;

    private HistogramBucket(HistogramPart part, double upperBound, int schema = 0, int index = 0)
    {
        Part = part;
        UpperBound = upperBound;
        _schema = schema;
        _index = index;
    }

    /// <summary>The sum part of a histogram or summary series.</summary>
    public static HistogramBucket Sum => new(HistogramPart.Sum, double.NaN);

    /// <summary>The count part of a summary series.</summary>
    public static HistogramBucket Count => new(HistogramPart.Count, double.NaN);

    /// <summary>Contract 1.1: the zero bucket of a native histogram series.</summary>
    public static HistogramBucket NativeZero => new(HistogramPart.NativeZero, double.NaN);

    /// <summary>Which part this is.</summary>
    public HistogramPart Part { get; }

    /// <summary>The bucket's upper bound (<c>le</c>) when <see cref="Part"/> is <see cref="HistogramPart.Bucket"/>; NaN otherwise.</summary>
    public double UpperBound { get; }

    /// <summary>Whether this is a bucket of a native histogram (positive, negative or zero).</summary>
    public bool IsNative => Part >= HistogramPart.NativePositive;

    /// <summary>The schema of a positive or negative native bucket (-4 to 8); 0 for other parts.</summary>
    public int Schema => _schema;

    /// <summary>The index of a positive or negative native bucket within its schema; 0 for other parts.</summary>
    public int Index => _index;

    /// <summary>
    /// A native bucket's identity as one number, for a backend that keys parts by number rather than by text:
    /// unique per (part, schema, index) among native buckets, 0 for every non-native part. <see cref="FromNativeKey"/>
    /// reverses it.
    /// </summary>
    public long NativeKey => IsNative
        ? ((long)(Part - HistogramPart.NativePositive + 1) << 40) | ((long)(_schema - MinNativeSchema) << 32) | (uint)_index
        : 0;

    /// <summary>Contract 1.1: the positive native bucket <paramref name="index"/> of <paramref name="schema"/>.</summary>
    /// <param name="schema">The resolution, <see cref="MinNativeSchema"/> to <see cref="MaxNativeSchema"/>.</param>
    /// <param name="index">The bucket index: its upper bound is 2^(index·2^-schema).</param>
    /// <returns>The bucket part.</returns>
    public static HistogramBucket NativePositive(int schema, int index) => new(HistogramPart.NativePositive, double.NaN, CheckSchema(schema), index);

    /// <summary>Contract 1.1: the negative native bucket <paramref name="index"/> of <paramref name="schema"/> (the mirror of the positive one).</summary>
    /// <param name="schema">The resolution, <see cref="MinNativeSchema"/> to <see cref="MaxNativeSchema"/>.</param>
    /// <param name="index">The bucket index: its lower bound is -2^(index·2^-schema).</param>
    /// <returns>The bucket part.</returns>
    public static HistogramBucket NativeNegative(int schema, int index) => new(HistogramPart.NativeNegative, double.NaN, CheckSchema(schema), index);

    /// <summary>Reverses <see cref="NativeKey"/>.</summary>
    /// <param name="key">A value <see cref="NativeKey"/> returned for a native bucket.</param>
    /// <returns>The native bucket.</returns>
    /// <exception cref="FormatException">The number is not a native bucket key.</exception>
    public static HistogramBucket FromNativeKey(long key)
    {
        var kind = key >> 40;
        if (key < 0 || (key >> 32 & 0xFF) > MaxNativeSchema - MinNativeSchema)
        {
            throw new FormatException($"{key} is not the key of a native histogram bucket.");
        }

        var schema = (int)((key >> 32) & 0xFF) + MinNativeSchema;
        var index = (int)(uint)key;
        return kind switch
        {
            1 when schema <= MaxNativeSchema => NativePositive(schema, index),
            2 when schema <= MaxNativeSchema => NativeNegative(schema, index),
            3 when (key & 0xFF_FFFF_FFFF) == (long)-MinNativeSchema << 32 => NativeZero,
            _ => throw new FormatException($"{key} is not the key of a native histogram bucket."),
        };
    }

    /// <summary>The bucket with upper bound <paramref name="upperBound"/>.</summary>
    /// <param name="upperBound">The bound; +Inf for the last bucket. NaN is not a bound.</param>
    /// <returns>The bucket part.</returns>
    public static HistogramBucket ForUpperBound(double upperBound)
    {
        if (double.IsNaN(upperBound))
        {
            throw new ArgumentOutOfRangeException(nameof(upperBound), "A histogram bucket bound cannot be NaN.");
        }

        return new HistogramBucket(HistogramPart.Bucket, upperBound);
    }

    /// <summary>
    /// Parses the text of <see cref="ToString"/> back into a part, for backends that store it as a key.
    /// </summary>
    /// <param name="text">
    /// "sum", "count", "+Inf", "-Inf", a bound in round-trip invariant format, or a native bucket: "zero",
    /// "pos:&lt;schema&gt;:&lt;index&gt;" or "neg:&lt;schema&gt;:&lt;index&gt;".
    /// </param>
    /// <returns>The part.</returns>
    /// <exception cref="FormatException">The text is none of these.</exception>
    public static HistogramBucket Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text switch
        {
            "sum" => Sum,
            "count" => Count,
            "zero" => NativeZero,
            _ when text.StartsWith("pos:", StringComparison.Ordinal) || text.StartsWith("neg:", StringComparison.Ordinal) => ParseNative(text),
            "+Inf" => ForUpperBound(double.PositiveInfinity),
            "-Inf" => ForUpperBound(double.NegativeInfinity),
            _ when double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var bound) && !double.IsNaN(bound) => ForUpperBound(bound),
            _ => throw new FormatException($"'{text}' is not a histogram part: expected 'sum', 'count', '+Inf' or a number."),
        };
    }

    /// <summary>Canonical, culture-invariant text that round-trips through <see cref="Parse"/>: "sum", "count", "+Inf" or the bound.</summary>
    /// <returns>The text.</returns>
    public override string ToString() => Part switch
    {
        HistogramPart.Sum => "sum",
        HistogramPart.Count => "count",
        HistogramPart.NativeZero => "zero",
        HistogramPart.NativePositive => string.Create(CultureInfo.InvariantCulture, $"pos:{_schema}:{_index}"),
        HistogramPart.NativeNegative => string.Create(CultureInfo.InvariantCulture, $"neg:{_schema}:{_index}"),
        _ when double.IsPositiveInfinity(UpperBound) => "+Inf",
        _ when double.IsNegativeInfinity(UpperBound) => "-Inf",
        // -0.0 equals 0.0 as a bound, so both have one text: a backend keying by it must not split one bucket in two.
        _ when UpperBound == 0 => "0",
        _ => UpperBound.ToString("R", CultureInfo.InvariantCulture),
    };

    /// <inheritdoc/>
    public bool Equals(HistogramBucket other) =>
        Part == other.Part && _schema == other._schema && _index == other._index && (Part != HistogramPart.Bucket || UpperBound.Equals(other.UpperBound));

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is HistogramBucket other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => Part switch
    {
        HistogramPart.Bucket => HashCode.Combine(Part, UpperBound),
        HistogramPart.NativePositive or HistogramPart.NativeNegative => HashCode.Combine(Part, _schema, _index),
        _ => (int)Part,
    };

    private static int CheckSchema(int schema) =>
        schema is < MinNativeSchema or > MaxNativeSchema
            ? throw new ArgumentOutOfRangeException(nameof(schema), schema, $"A native histogram schema is between {MinNativeSchema} and {MaxNativeSchema}.")
            : schema;

    private static HistogramBucket ParseNative(string text)
    {
        var parts = text.Split(':');
        if (parts.Length == 3
            && int.TryParse(parts[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var schema)
            && schema is >= MinNativeSchema and <= MaxNativeSchema
            && int.TryParse(parts[2], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var index)
            // Only the canonical text: two spellings of one bucket would split it in a backend keying by text.
            && parts[1] == schema.ToString(CultureInfo.InvariantCulture)
            && parts[2] == index.ToString(CultureInfo.InvariantCulture))
        {
            return parts[0] == "pos" ? NativePositive(schema, index) : NativeNegative(schema, index);
        }

        throw new FormatException($"'{text}' is not a native histogram bucket: expected 'pos:<schema>:<index>' or 'neg:<schema>:<index>' with a schema from {MinNativeSchema} to {MaxNativeSchema}.");
    }

    /// <summary>Equality of parts.</summary>
    /// <param name="left">One part.</param>
    /// <param name="right">The other part.</param>
    /// <returns>Whether they are the same part.</returns>
    public static bool operator ==(HistogramBucket left, HistogramBucket right) => left.Equals(right);

    /// <summary>Inequality of parts.</summary>
    /// <param name="left">One part.</param>
    /// <param name="right">The other part.</param>
    /// <returns>Whether they differ.</returns>
    public static bool operator !=(HistogramBucket left, HistogramBucket right) => !left.Equals(right);
}
