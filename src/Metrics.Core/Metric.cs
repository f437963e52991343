using System.Runtime.CompilerServices;
using System.Text;

namespace Metrics;

/// <summary>
/// A metric, or one of its children with some or all labels set. Every metric type derives from this.
/// </summary>
/// <remarks>
/// A metric with label names is a family: <c>Labels(...)</c> returns a child. A child whose labels all have a
/// value (given, or from the defaults) is observable; asking again for the same full label set returns the same
/// child. A child with only some labels set is a partial child: cache it and complete it later with another
/// <c>Labels(...)</c> call; observing it throws.
/// </remarks>
public abstract class Metric
{
    private byte[]? _labelBytes;

    private protected Metric(MetricFamily family, string?[] setValues, string[]? fullValues)
    {
        Family = family;
        SetValues = setValues;
        FullValues = fullValues;
        CreatedUnixSeconds = MetricFamily.UnixNow();
    }

    /// <summary>The exposed metric name, registry prefix included.</summary>
    public string Name => Family.Name;

    /// <summary>The help text.</summary>
    public string Help => Family.Help;

    /// <summary>The label names, in declaration order (a per-process gauge's <c>pid</c> label included).</summary>
    public IReadOnlyList<string> LabelNames => Family.LabelNames;

    /// <summary>
    /// This child's full label values (defaults included) in the order of <see cref="LabelNames"/>,
    /// or null when some label has no value yet.
    /// </summary>
    public IReadOnlyList<string>? LabelValues => FullValues;

    /// <summary>Whether every label has a value, so the metric can be observed.</summary>
    public bool IsObservable => FullValues is not null;

    /// <summary>The backend the values are stored in.</summary>
    public ConfiguredBackend Backend => Family.Backend;

    /// <summary>
    /// The label value of the overflow series: once a family holds as many series as its cardinality limit, every update
    /// for a new label set goes to the one series whose labels all have this value.
    /// </summary>
    public const string OverflowLabelValue = "__overflow__";

    /// <summary>
    /// The most series (label sets) this metric's family holds, or null (the default) to use the registry's
    /// <see cref="MetricRegistry.CardinalityLimit"/>. Past it, a new label set is not created: its updates go to the
    /// overflow series (every label <see cref="OverflowLabelValue"/>), counted in
    /// <c>metrics_cardinality_overflow_total{metric="..."}</c>. Series already created are not affected by lowering it.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to less than 1.</exception>
    public int? CardinalityLimit
    {
        get => Family.CardinalityLimit;
        set => Family.CardinalityLimit = value;
    }

    /// <summary>
    /// Removes every series of this metric's family: they leave the scrape (of every process, for a backend that declares
    /// <see cref="BackendCapabilities.RemovesSeries"/>) and free their memory once nothing holds them. A child kept by
    /// user code stays usable: its next update brings its series back, starting from 0.
    /// </summary>
    /// <returns>How many series this registry held.</returns>
    public int Clear() => Family.Clear();

    internal MetricFamily Family { get; }

    internal string?[] SetValues { get; }

    internal string[]? FullValues { get; }

    internal double CreatedUnixSeconds { get; }

    /// <summary>UTF-8 of the escaped label pairs (<c>a="x",b="y"</c>), the same in both exposition formats.</summary>
    internal byte[] LabelBytes => _labelBytes ??= RenderLabels(Family.LabelNames, FullValues!);

    internal static byte[] RenderLabels(IReadOnlyList<string> names, IReadOnlyList<string> values)
    {
        if (names.Count == 0)
        {
            return [];
        }

        // Sized first and encoded straight into the result: a first scrape of a large shared store renders every label
        // set it has not seen, so this runs once per series and must not build strings on the way.
        var utf8 = Encoding.UTF8;
        var length = names.Count - 1;
        for (var i = 0; i < names.Count; i++)
        {
            var value = values[i].AsSpan();
            length += utf8.GetByteCount(names[i]) + 3 + utf8.GetByteCount(value) + value.Count('\\') + value.Count('"') + value.Count('\n');
        }

        var bytes = new byte[length];
        var pos = 0;
        for (var i = 0; i < names.Count; i++)
        {
            if (i > 0)
            {
                bytes[pos++] = (byte)',';
            }

            pos += utf8.GetBytes(names[i], bytes.AsSpan(pos));
            bytes[pos++] = (byte)'=';
            bytes[pos++] = (byte)'"';
            var rest = values[i].AsSpan();
            int special;
            while ((special = rest.IndexOfAny(LabelEscapes)) >= 0)
            {
                // A surrogate pair never surrounds an ASCII character, so encoding the text between escapes piece by piece
                // gives the same bytes as encoding it whole.
                pos += utf8.GetBytes(rest[..special], bytes.AsSpan(pos));
                bytes[pos++] = (byte)'\\';
                bytes[pos++] = rest[special] == '\n' ? (byte)'n' : (byte)rest[special];
                rest = rest[(special + 1)..];
            }

            pos += utf8.GetBytes(rest, bytes.AsSpan(pos));
            bytes[pos++] = (byte)'"';
        }

        return bytes;
    }

    private static readonly System.Buffers.SearchValues<char> LabelEscapes = System.Buffers.SearchValues.Create("\\\"\n");

    /// <summary>Creates a root metric's values; a backend that refuses them must not leave the name taken by a metric that does not exist.</summary>
    private protected T CreateRootValues<T>(Func<T> create)
    {
        try
        {
            return create();
        }
        catch
        {
            Family.Registry.Unregister(this);
            throw;
        }
    }

    /// <summary>Creates the child for a complete label set; called once per series, under the family's add lock.</summary>
    internal abstract Metric CreateCompleteChild(string[] fullValues);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private protected void ThrowNotObservable()
    {
        var missing = new List<string>();
        for (var i = 0; i < Family.LabelNames.Length; i++)
        {
            if (SetValues[i] is null && Family.Defaults[i] is null)
            {
                missing.Add(Family.LabelNames[i]);
            }
        }

        throw new InvalidOperationException(
            $"Metric '{Name}' cannot be observed: label(s) {string.Join(", ", missing.Select(m => $"'{m}'"))} have no value. Call Labels(...) with values for them first (or give them default labels).");
    }
}

/// <summary>The labels API shared by every metric type; <typeparamref name="TSelf"/> is the metric type.</summary>
/// <typeparam name="TSelf">The concrete metric type, returned by <c>Labels</c>.</typeparam>
public abstract class Metric<TSelf> : Metric
    where TSelf : Metric<TSelf>
{
    private protected Metric(MetricFamily family, string?[] setValues, string[]? fullValues)
        : base(family, setValues, fullValues)
    {
    }

    /// <summary>Returns this instance: no label to set. (An empty label set returns the same object, as in the seed library.)</summary>
    /// <returns>This instance.</returns>
    public TSelf Labels() => Unsafe.As<TSelf>(this);

    /// <summary>
    /// Returns the child with the given label values, assigned in declaration order to the labels this instance has
    /// not set yet. Give a value for each of them, or (when some have defaults) a value for each label without a
    /// default. Finding an existing child allocates nothing.
    /// </summary>
    /// <param name="values">The label values; any string, including empty, but not null.</param>
    /// <returns>The complete child (the same object for the same full label set), or a partial child.</returns>
    /// <exception cref="ArgumentException">The number of values fits neither rule.</exception>
    public TSelf Labels(params ReadOnlySpan<string> values)
    {
        var family = Family;
        var names = family.LabelNames;
        var set = SetValues;

        // Fast path: the family itself with every user label given in order.
        if (values.Length == family.UserLabelCount && IsNothingSet(set))
        {
            if (values.Length == names.Length)
            {
                // Every child of a family is a TSelf (made by CreateChild), so the checked cast, a generic-dictionary
                // lookup in this shared generic code, would only add to the hot path.
                return Unsafe.As<TSelf>(family.GetOrAddChild(values, this));
            }

            if (names.Length <= 8)
            {
                // A per-process gauge: the pid label comes last, from the defaults.
                var withPid = default(LabelBuffer);
                Span<string> full = withPid;
                values.CopyTo(full);
                full[values.Length] = family.Defaults[values.Length]!;
                return Unsafe.As<TSelf>(family.GetOrAddChild(full[..names.Length], this));
            }
        }

        if (values.Length == 0)
        {
            return Unsafe.As<TSelf>(this);
        }

        var buffer = default(LabelBuffer);
        var merged = names.Length <= 8 ? ((Span<string>)buffer)[..names.Length] : new string[names.Length];
        if (!TryMergeValues(values, merged!, out var unset, out var unsetWithoutDefault))
        {
            if (unset == 0)
            {
                throw new ArgumentException(
                    $"This child of metric '{Name}' has every label set already, so it takes no more values. Call Labels(...) on the metric itself, or change a label by name with Labels((name, value)).",
                    nameof(values));
            }

            throw new ArgumentException(
                $"Metric '{Name}' got {values.Length} label value(s), but expects one per label not set yet ({unset}: {DescribeUnset(false)})" +
                (unset != unsetWithoutDefault ? $" or one per label without a default ({unsetWithoutDefault}: {DescribeUnset(true)})" : string.Empty) +
                ". Use Labels((name, value), ...) to set labels by name.",
                nameof(values));
        }

        return Resolve(merged);
    }

    /// <summary>
    /// Returns the child with the given labels set by name. A label this instance already has (given or defaulted) is
    /// replaced; labels not named keep their current or default value.
    /// </summary>
    /// <param name="labels">(name, value) pairs; each name must be one of <see cref="Metric.LabelNames"/>, named once.</param>
    /// <returns>The complete child (the same object for the same full label set), or a partial child.</returns>
    /// <exception cref="ArgumentException">An unknown label name, or a label named twice.</exception>
    public TSelf Labels(params ReadOnlySpan<(string Name, string Value)> labels)
    {
        var family = Family;
        var names = family.LabelNames;
        var buffer = default(LabelBuffer);
        var merged = names.Length <= 8 ? ((Span<string>)buffer)[..names.Length] : new string[names.Length];
        SetValues.CopyTo(merged!);
        ulong named = 0;
        foreach (var (name, value) in labels)
        {
            var index = Array.IndexOf(names, name);
            if (index < 0 || index >= family.UserLabelCount)
            {
                throw new ArgumentException(
                    $"Metric '{Name}' has no label named '{name}'. Its labels are [{string.Join(", ", names.Take(family.UserLabelCount))}].",
                    nameof(labels));
            }

            var bit = 1UL << (index & 63);
            if ((named & bit) != 0 && CountNamed(labels, name) > 1)
            {
                throw new ArgumentException($"Label '{name}' of metric '{Name}' is named twice in one Labels call; give each label once.", nameof(labels));
            }

            named |= bit;
            merged[index] = value ?? throw new ArgumentNullException(nameof(labels), $"Label '{name}' of metric '{Name}' got a null value; use an empty string for an empty value.");
        }

        return Resolve(merged);
    }

    /// <summary>Returns the child with the given labels set by name, as <see cref="Labels(ReadOnlySpan{ValueTuple{string, string}})"/>.</summary>
    /// <param name="labels">Label names and values.</param>
    /// <returns>The complete child, or a partial child.</returns>
    public TSelf Labels(IReadOnlyDictionary<string, string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var pairs = new (string, string)[labels.Count];
        var i = 0;
        foreach (var (name, value) in labels)
        {
            pairs[i++] = (name, value);
        }

        return Labels(pairs.AsSpan());
    }

    /// <summary>
    /// Removes the series with the given label values, assigned as <see cref="Labels(ReadOnlySpan{string})"/> assigns
    /// them; on a child with every label set, <c>Remove()</c> removes that child's series. The series leaves the scrape
    /// (of every process, for a backend that declares <see cref="BackendCapabilities.RemovesSeries"/>; a shared backend
    /// without it keeps the stored values, so other scrapes still show them) and its memory is freed once nothing holds
    /// the child. A child kept by user code stays usable: its next update (or <c>Labels</c> with the same values, which
    /// returns that same child) brings the series back, starting from 0.
    /// </summary>
    /// <param name="values">The label values; none on a complete child.</param>
    /// <returns>Whether this registry held the series (false for a series only other processes created, which is still removed from the store).</returns>
    /// <exception cref="ArgumentException">The values do not complete the label set.</exception>
    public bool Remove(params ReadOnlySpan<string> values)
    {
        var family = Family;
        if (values.Length == 0)
        {
            if (FullValues is null)
            {
                ThrowNotObservable();
            }

            return family.Remove(FullValues!);
        }

        var merged = new string?[family.LabelNames.Length];
        if (!TryMergeValues(values, merged, out var unset, out var unsetWithoutDefault))
        {
            throw new ArgumentException(
                $"Metric '{Name}' got {values.Length} label value(s) to remove, but expects one per label not set yet ({unset}: {DescribeUnset(false)}) or one per label without a default ({unsetWithoutDefault}: {DescribeUnset(true)}).",
                nameof(values));
        }

        var full = new string[merged.Length];
        for (var i = 0; i < merged.Length; i++)
        {
            full[i] = merged[i] ?? family.Defaults[i]!;
        }

        return family.Remove(full);
    }

    /// <summary>
    /// Fills <paramref name="merged"/> with this instance's set values and <paramref name="values"/> in declaration order,
    /// as <c>Labels</c> and <c>Remove</c> assign them: one value per label not set yet, or one per label without a
    /// default (those with one keep it, left null here). False, with the counts for the message, when the number of
    /// values fits neither rule.
    /// </summary>
    private bool TryMergeValues(ReadOnlySpan<string> values, Span<string?> merged, out int unset, out int unsetWithoutDefault)
    {
        var family = Family;
        SetValues.CopyTo(merged);
        unset = 0;
        unsetWithoutDefault = 0;
        for (var i = 0; i < family.UserLabelCount; i++)
        {
            if (merged[i] is null)
            {
                unset++;
                unsetWithoutDefault += family.Defaults[i] is null ? 1 : 0;
            }
        }

        if (values.Length != unset && values.Length != unsetWithoutDefault)
        {
            return false;
        }

        var skipDefaulted = values.Length != unset;
        var next = 0;
        for (var i = 0; i < family.UserLabelCount && next < values.Length; i++)
        {
            if (merged[i] is null && !(skipDefaulted && family.Defaults[i] is not null))
            {
                merged[i] = values[next++] ?? throw new ArgumentNullException(nameof(values), $"Label '{family.LabelNames[i]}' of metric '{Name}' got a null value; use an empty string for an empty value.");
            }
        }

        return true;
    }

    private protected abstract TSelf CreateChild(string?[] setValues, string[]? fullValues);

    // Kept out of Labels: a lambda capturing the loop variable there would allocate a closure on every call.
    private static int CountNamed(ReadOnlySpan<(string Name, string Value)> labels, string name)
    {
        var count = 0;
        foreach (var label in labels)
        {
            if (label.Name == name)
            {
                count++;
            }
        }

        return count;
    }

    private static bool IsNothingSet(string?[] set)
    {
        foreach (var value in set)
        {
            if (value is not null)
            {
                return false;
            }
        }

        return true;
    }

    internal sealed override Metric CreateCompleteChild(string[] fullValues) => CreateChild(fullValues, fullValues);

    /// <summary>The child for <paramref name="merged"/> (set values, null where unset) completed with the defaults.</summary>
    private TSelf Resolve(Span<string> merged)
    {
        var family = Family;
        var buffer = default(LabelBuffer);
        var full = merged.Length <= 8 ? ((Span<string>)buffer)[..merged.Length] : new string[merged.Length];
        for (var i = 0; i < merged.Length; i++)
        {
            var value = merged[i] ?? family.Defaults[i];
            if (value is null)
            {
                // Still missing a label: a partial child, not registered, cacheable by the caller.
                return CreateChild(merged.ToArray(), null);
            }

            full[i] = value;
        }

        return Unsafe.As<TSelf>(family.GetOrAddChild(full, this));
    }

    private string DescribeUnset(bool withoutDefaultOnly)
    {
        var names = new List<string>();
        for (var i = 0; i < Family.UserLabelCount; i++)
        {
            if (SetValues[i] is null && !(withoutDefaultOnly && Family.Defaults[i] is not null))
            {
                names.Add(Family.LabelNames[i]);
            }
        }

        return string.Join(", ", names);
    }
}
