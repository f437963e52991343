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
}

/// <summary>
/// Identifies the part of a histogram or summary series a backend value holds: one bucket (by its upper
/// bound), the sum, or the count. Passed as <see langword="null"/> for counters and gauges.
/// </summary>
/// <remarks>
/// A histogram bucket value counts only the observations that fell into that bucket; the host makes
/// buckets cumulative at exposition and exposes <c>_count</c> as the sum of all buckets, so <c>+Inf</c>
/// equals <c>_count</c> in every scrape whatever the backend's consistency.
/// </remarks>
public readonly struct HistogramBucket : IEquatable<HistogramBucket>
{
    private HistogramBucket(HistogramPart part, double upperBound)
    {
        Part = part;
        UpperBound = upperBound;
    }

    /// <summary>The sum part of a histogram or summary series.</summary>
    public static HistogramBucket Sum => new(HistogramPart.Sum, double.NaN);

    /// <summary>The count part of a summary series.</summary>
    public static HistogramBucket Count => new(HistogramPart.Count, double.NaN);

    /// <summary>Which part this is.</summary>
    public HistogramPart Part { get; }

    /// <summary>The bucket's upper bound (<c>le</c>) when <see cref="Part"/> is <see cref="HistogramPart.Bucket"/>; NaN otherwise.</summary>
    public double UpperBound { get; }

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
    /// <param name="text">"sum", "count", "+Inf", "-Inf" or a bound in round-trip invariant format.</param>
    /// <returns>The part.</returns>
    /// <exception cref="FormatException">The text is none of these.</exception>
    public static HistogramBucket Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text switch
        {
            "sum" => Sum,
            "count" => Count,
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
        _ when double.IsPositiveInfinity(UpperBound) => "+Inf",
        _ when double.IsNegativeInfinity(UpperBound) => "-Inf",
        // -0.0 equals 0.0 as a bound, so both have one text: a backend keying by it must not split one bucket in two.
        _ when UpperBound == 0 => "0",
        _ => UpperBound.ToString("R", CultureInfo.InvariantCulture),
    };

    /// <inheritdoc/>
    public bool Equals(HistogramBucket other) =>
        Part == other.Part && (Part != HistogramPart.Bucket || UpperBound.Equals(other.UpperBound));

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is HistogramBucket other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => Part == HistogramPart.Bucket ? HashCode.Combine(Part, UpperBound) : (int)Part;

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
