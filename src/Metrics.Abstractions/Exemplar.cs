using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text;

namespace Metrics;

/// <summary>
/// An OpenMetrics exemplar's label set (for example <c>trace_id</c>): a reference from one counter increment or histogram
/// observation to the request that made it. Validated once when built, so a cached exemplar costs nothing to reuse.
/// </summary>
/// <remarks>
/// OpenMetrics limits an exemplar's label set to 128 UTF-8 characters (code points) in all, names and values together;
/// names follow the label-name rule (<c>[a-zA-Z_][a-zA-Z0-9_]*</c>) and appear once. <c>default(Exemplar)</c> is no
/// exemplar (<see cref="IsEmpty"/>).
/// </remarks>
/// <example>
/// <code>
/// var exemplar = new Exemplar(("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"));
/// </code>
/// </example>
public readonly struct Exemplar : IEquatable<Exemplar>
{
    /// <summary>The OpenMetrics limit on an exemplar's label set: characters of every name and value together.</summary>
    public const int MaxCharacters = 128;

    private static readonly SearchValues<char> LabelNameChars = SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");

    // Every UTF-16 surrogate, U+D800 to U+DFFF. SearchValues rather than IndexOfAnyInRange: the latter allocates on
    // every call in the precompiled framework code that runs before tiering replaces it.
    private static readonly SearchValues<char> Surrogates = SearchValues.Create(string.Create(0xE000 - 0xD800, 0, static (chars, _) =>
    {
        for (var i = 0; i < chars.Length; i++)
        {
            chars[i] = (char)(0xD800 + i);
        }
    }));

    // One or two labels (a trace id, a span id) live in the struct itself, names and values interleaved, so an exemplar
    // built per observation allocates nothing. More labels, or pairs a backend read back, are one array instead.
    private readonly InlinePairs _inline;
    private readonly string[]? _pairs;

    /// <summary>Builds and validates an exemplar from (name, value) pairs.</summary>
    /// <param name="labels">At least one pair; names valid and distinct, values not null, 128 characters in all.</param>
    /// <exception cref="ArgumentException">A name is invalid or repeated, no pair is given, or the set exceeds <see cref="MaxCharacters"/>.</exception>
    /// <exception cref="ArgumentNullException">A name or value is null.</exception>
    public Exemplar(params ReadOnlySpan<(string Name, string Value)> labels)
    {
        if (labels.IsEmpty)
        {
            throw new ArgumentException("An exemplar needs at least one label, for example (\"trace_id\", id); use default(Exemplar) for none.", nameof(labels));
        }

        if (labels.Length <= InlinePairs.Labels)
        {
            for (var i = 0; i < labels.Length; i++)
            {
                _inline[2 * i] = labels[i].Name;
                _inline[(2 * i) + 1] = labels[i].Value;
            }

            Validate(((ReadOnlySpan<string?>)_inline)[..(2 * labels.Length)]);
            return;
        }

        var pairs = new string[labels.Length * 2];
        for (var i = 0; i < labels.Length; i++)
        {
            pairs[2 * i] = labels[i].Name;
            pairs[(2 * i) + 1] = labels[i].Value;
        }

        Validate(pairs);
        _pairs = pairs;
    }

    private Exemplar(string[] pairs, bool validated)
    {
        _ = validated;
        _pairs = pairs;
    }

    /// <summary>Whether this is no exemplar (<c>default(Exemplar)</c>).</summary>
    public bool IsEmpty => _pairs is null && _inline[0] is null;

    /// <summary>The number of labels.</summary>
    public int Count => _pairs is not null ? _pairs.Length / 2 : _inline[0] is null ? 0 : _inline[2] is null ? 1 : 2;

    /// <summary>The label at <paramref name="index"/>.</summary>
    /// <param name="index">0 to <see cref="Count"/> - 1.</param>
    /// <returns>The label's name and value.</returns>
    public (string Name, string Value) this[int index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfNegative(index);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
            var pairs = Pairs();
            return (pairs[2 * index], pairs[(2 * index) + 1]);
        }
    }

    /// <summary>An exemplar of one label, validated.</summary>
    /// <param name="name">The label name.</param>
    /// <param name="value">The label value.</param>
    /// <returns>The exemplar.</returns>
    public static Exemplar Of(string name, string value) => new((name, value));

    /// <summary>An exemplar of two labels, validated.</summary>
    /// <param name="name1">The first label name.</param>
    /// <param name="value1">The first label value.</param>
    /// <param name="name2">The second label name.</param>
    /// <param name="value2">The second label value.</param>
    /// <returns>The exemplar.</returns>
    public static Exemplar Of(string name1, string value1, string name2, string value2) => new((name1, value1), (name2, value2));

    /// <summary>
    /// Rebuilds an exemplar from names and values interleaved (as a backend stores them), validating them: a store
    /// another process wrote is not trusted.
    /// </summary>
    /// <param name="pairs">Name, value, name, value, ...; the array is kept, not copied.</param>
    /// <returns>The exemplar.</returns>
    /// <exception cref="ArgumentException">The pairs break a rule of <see cref="Exemplar(ReadOnlySpan{ValueTuple{string, string}})"/>.</exception>
    public static Exemplar FromPairs(string[] pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        if (pairs.Length == 0 || pairs.Length % 2 != 0)
        {
            throw new ArgumentException("An exemplar's pairs hold a name and a value for each label, at least one label.", nameof(pairs));
        }

        Validate(pairs);
        return new Exemplar(pairs, validated: true);
    }

    /// <summary>Names and values interleaved, for backends that store them; empty for <see cref="IsEmpty"/>.</summary>
    /// <returns>
    /// A span over the exemplar's own storage (the struct itself for one or two labels): do not change it, and use it
    /// while the exemplar it came from is in scope.
    /// </returns>
    [UnscopedRef]
    public ReadOnlySpan<string> Pairs()
    {
        if (_pairs is not null)
        {
            return _pairs;
        }

        // The inline slots are set in order, so the labels in use are the first non-null ones; none is null once set.
        return ((ReadOnlySpan<string?>)_inline)[..(2 * Count)]!;
    }

    /// <inheritdoc/>
    public bool Equals(Exemplar other)
    {
        if (_pairs is not null && ReferenceEquals(_pairs, other._pairs))
        {
            return true;
        }

        return IsEmpty == other.IsEmpty && Pairs().SequenceEqual(other.Pairs());
    }

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Exemplar other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = default(HashCode);
        foreach (var part in Pairs())
        {
            hash.Add(part);
        }

        return hash.ToHashCode();
    }

    /// <summary>The label set as OpenMetrics writes it: <c>{trace_id="..."}</c>.</summary>
    /// <returns>The text.</returns>
    public override string ToString()
    {
        var text = new StringBuilder("{");
        var pairs = Pairs();
        for (var i = 0; i < Count; i++)
        {
            if (i > 0)
            {
                text.Append(',');
            }

            text.Append(pairs[2 * i]).Append("=\"").Append(pairs[(2 * i) + 1].Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)).Append('"');
        }

        return text.Append('}').ToString();
    }

    /// <summary>Equal label sets.</summary>
    /// <param name="left">One exemplar.</param>
    /// <param name="right">The other.</param>
    /// <returns>Whether they are equal.</returns>
    public static bool operator ==(Exemplar left, Exemplar right) => left.Equals(right);

    /// <summary>Different label sets.</summary>
    /// <param name="left">One exemplar.</param>
    /// <param name="right">The other.</param>
    /// <returns>Whether they differ.</returns>
    public static bool operator !=(Exemplar left, Exemplar right) => !left.Equals(right);

    private static void Validate(ReadOnlySpan<string?> pairs)
    {
        var characters = 0;
        for (var i = 0; i < pairs.Length; i += 2)
        {
            var name = pairs[i] ?? throw new ArgumentNullException(nameof(pairs), "An exemplar label name is null.");
            var value = pairs[i + 1] ?? throw new ArgumentNullException(nameof(pairs), $"Exemplar label '{name}' has a null value; use an empty string for an empty value.");
            if (!IsLabelName(name))
            {
                throw new ArgumentException($"Exemplar label name '{name}' is not a valid label name: use letters, digits and '_', not starting with a digit.", nameof(pairs));
            }

            for (var j = 0; j < i; j += 2)
            {
                if (pairs[j] == name)
                {
                    throw new ArgumentException($"Exemplar label '{name}' is given twice; give each label once.", nameof(pairs));
                }
            }

            characters += name.Length + CodePoints(value);
        }

        if (characters > MaxCharacters)
        {
            throw new ArgumentException(
                $"Exemplar labels have {characters} characters in names and values together, over the OpenMetrics limit of {MaxCharacters}: shorten the values or give fewer labels.",
                nameof(pairs));
        }
    }

    private static int CodePoints(string value)
    {
        // Vectorized: a value without surrogates (any trace id) has one character per UTF-16 unit.
        var first = value.AsSpan().IndexOfAny(Surrogates);
        if (first < 0)
        {
            return value.Length;
        }

        var count = first;
        for (var i = first; i < value.Length; i++)
        {
            // A surrogate pair is one character; an unpaired surrogate counts as one (it becomes U+FFFD in UTF-8).
            if (char.IsHighSurrogate(value[i]) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
            }

            count++;
        }

        return count;
    }

    private static bool IsLabelName(string name) =>
        name.Length != 0 && !char.IsAsciiDigit(name[0]) && !name.AsSpan().ContainsAnyExcept(LabelNameChars);

    /// <summary>Storage for up to <see cref="Labels"/> labels, names and values interleaved.</summary>
    [InlineArray(2 * Labels)]
    private struct InlinePairs
    {
        /// <summary>The labels an exemplar holds without an array.</summary>
        public const int Labels = 2;

        private string? _element;
    }
}

/// <summary>An exemplar as a backend stores it: the label set, the value it came with and when it was recorded.</summary>
/// <param name="Labels">The exemplar's labels.</param>
/// <param name="Value">The increment or observation the exemplar was given with.</param>
/// <param name="TimestampUnixSeconds">When it was recorded, in seconds since the Unix epoch; the latest wins.</param>
public readonly record struct RecordedExemplar(Exemplar Labels, double Value, double TimestampUnixSeconds);
