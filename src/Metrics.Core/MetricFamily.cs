using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Text;

namespace Metrics;

/// <summary>How a family is exposed beyond its stored <see cref="MetricType"/>.</summary>
internal enum FamilyKind
{
    /// <summary>As its type.</summary>
    Plain,

    /// <summary>An OpenMetrics info: a gauge of 1 per label set, named <c>&lt;base&gt;_info</c>.</summary>
    Info,

    /// <summary>An OpenMetrics state set: a gauge of 1 or 0 per state, the state in a label named after the family.</summary>
    StateSet,
}

/// <summary>What a metric and all its children share: names, defaults, backend, registry and the children.</summary>
internal sealed class MetricFamily
{
    private readonly ConcurrentDictionary<string[], Metric> _children = new(LabelValuesComparer.Instance);
    private readonly ConcurrentDictionary<string[], Metric>.AlternateLookup<ReadOnlySpan<string>> _lookup;
    private readonly Lock _addLock = new();
    private readonly ConcurrentDictionary<string[], CollectedSeries> _collectedByValue = new(LabelValuesComparer.Instance);

    // Backends that keep each stored series' label array across scrapes find their series here by reference, without
    // hashing label text; pruned when it outgrows what one scrape returns, so fresh arrays every scrape cannot grow it.
    private readonly ConcurrentDictionary<string[], CollectedSeries> _collectedByReference = new(ReferenceEqualityComparer.Instance);
    private readonly byte[][]?[] _leLabels = new byte[][]?[2];

    // The series at each position of the last collection (see CollectedSeriesAt); races between scrapes only lose hits.
    private CollectedSeries?[] _byPosition = [];
    private Metric[] _ordered = [];
    private IReadOnlyList<double>? _readOnlyBuckets;
    private int _count;

    // Removed children that user code may still hold: asked for again, or updated, they come back as the same object.
    // Weak, so removing series frees their memory once nobody holds them; guarded by _addLock.
    private Dictionary<string[], WeakReference<Metric>>? _removed;
    private Metric? _overflowChild;
    private int? _cardinalityLimit;
    private Counter? _overflowCount;
    private int _overflowLogged;

    public MetricFamily(
        MetricType type,
        string name,
        string help,
        string[]? labelNames,
        IReadOnlyDictionary<string, string>? defaultLabels,
        MetricRegistry registry,
        double[]? buckets,
        GaugeAggregation aggregation,
        NativeHistogramOptions? native = null,
        string? unit = null,
        FamilyKind kind = FamilyKind.Plain,
        string[]? states = null,
        bool unprefixed = false)
    {
        NameRules.ValidateMetricName(name, nameof(name));
        ArgumentNullException.ThrowIfNull(help);
        NameRules.ValidateUnit(name, unit, type);
        if (kind == FamilyKind.Info && name.EndsWith("_info", StringComparison.Ordinal))
        {
            // As a counter's _total: the sample suffix may be given or not, the family is the same.
            name = name[..^5];
            if (name.Length == 0)
            {
                throw new ArgumentException("Info name '_info' is only the '_info' suffix; give it a name such as 'build_info'.", nameof(name));
            }
        }

        if (kind == FamilyKind.StateSet)
        {
            // OpenMetrics names the state label after the family, and label names allow no ':'.
            NameRules.ValidateLabelName(name, name, nameof(name));
        }
        // A private copy: the caller may reuse or change its array.
        labelNames = labelNames is null ? [] : [.. labelNames];
        var perProcess = type == MetricType.Gauge && aggregation is GaugeAggregation.PerProcess or GaugeAggregation.LivePerProcess;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var label in labelNames)
        {
            NameRules.ValidateLabelName(name, label, nameof(labelNames));
            if (!seen.Add(label))
            {
                throw new ArgumentException($"Label name '{label}' appears twice in metric '{name}'. Each label name may be declared once.", nameof(labelNames));
            }

            if (type == MetricType.Histogram && label == "le")
            {
                throw new ArgumentException($"Histogram '{name}' cannot have a label named 'le': it is reserved for the bucket bounds.", nameof(labelNames));
            }

            if (type == MetricType.Summary && label == "quantile")
            {
                throw new ArgumentException($"Summary '{name}' cannot have a label named 'quantile': it is reserved for quantiles.", nameof(labelNames));
            }

            if (kind == FamilyKind.StateSet && label == (string.IsNullOrEmpty(registry.Prefix) ? name : $"{registry.Prefix}_{name}"))
            {
                throw new ArgumentException($"State set '{name}' cannot have a label named '{label}': OpenMetrics names the label holding the state after the metric itself.", nameof(labelNames));
            }

            if (perProcess && label == "pid")
            {
                throw new ArgumentException($"Gauge '{name}' aggregates per process, which adds a 'pid' label itself; rename your 'pid' label.", nameof(labelNames));
            }
        }

        Defaults = new string?[labelNames.Length];
        if (defaultLabels is not null)
        {
            foreach (var (label, value) in defaultLabels)
            {
                var index = Array.IndexOf(labelNames, label);
                if (index < 0)
                {
                    throw new ArgumentException(
                        $"Default label '{label}' of metric '{name}' is not one of its label names [{string.Join(", ", labelNames)}]. Add it to labelNames or remove the default.",
                        nameof(defaultLabels));
                }

                Defaults[index] = value ?? throw new ArgumentException($"Default label '{label}' of metric '{name}' is null; use an empty string for an empty value.", nameof(defaultLabels));
            }
        }

        UserLabelCount = labelNames.Length;
        if (perProcess)
        {
            labelNames = [.. labelNames, "pid"];
            Defaults = [.. Defaults, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        }

        Type = type;
        Kind = kind;
        Unit = unit;
        States = states ?? [];
        Name = string.IsNullOrEmpty(registry.Prefix) || unprefixed ? name : $"{registry.Prefix}_{name}";
        if (kind == FamilyKind.Info)
        {
            Name += "_info";
        }

        // A state set's values carry one more label, named after the family, holding the state.
        BackendLabelNames = kind == FamilyKind.StateSet ? [.. labelNames, Name] : labelNames;
        Help = help;
        LabelNames = labelNames;
        Registry = registry;
        Buckets = buckets ?? [];
        Aggregation = type == MetricType.Gauge ? aggregation : GaugeAggregation.Sum;
        Native = type == MetricType.Histogram ? native : null;
        Descriptor = new MetricDescriptor(Name, help, type, BackendLabelNames, null, Buckets, Aggregation)
        {
            NativeZeroThreshold = Native?.ZeroThreshold,
            Unit = unit,
            ExposedAs = kind switch
            {
                FamilyKind.Info => "info",
                FamilyKind.StateSet => "stateset:" + string.Join(',', States.Select(EscapeState)),
                _ => null,
            },
        };
        CreatedUnixSeconds = UnixNow();
        _lookup = _children.GetAlternateLookup<ReadOnlySpan<string>>();
        if (type == MetricType.Counter)
        {
            // Counters are exposed as <base>_total in both formats, so a change of negotiated format never renames a series.
            var counterBase = NameRules.CounterBase(Name);
            NameBytes = Encoding.UTF8.GetBytes(counterBase + "_total");
            OpenMetricsCounterBase = Encoding.UTF8.GetBytes(counterBase);
            ExposedNames = [counterBase, counterBase + "_total", counterBase + "_created"];
        }
        else if (kind == FamilyKind.Info)
        {
            // Text 0.0.4 and protobuf show a gauge named <base>_info; OpenMetrics an info family <base> with <base>_info samples.
            var infoBase = Name[..^5];
            NameBytes = Encoding.UTF8.GetBytes(Name);
            OpenMetricsCounterBase = Encoding.UTF8.GetBytes(infoBase);
            ExposedNames = [infoBase, Name];
        }
        else
        {
            NameBytes = Encoding.UTF8.GetBytes(Name);
            OpenMetricsCounterBase = NameBytes;
            ExposedNames = type switch
            {
                MetricType.Histogram => [Name, Name + "_bucket", Name + "_count", Name + "_sum", Name + "_created"],
                MetricType.Summary => [Name, Name + "_count", Name + "_sum", Name + "_created"],
                _ => [Name],
            };
        }
    }

    /// <summary>The stored type: <see cref="MetricType.Gauge"/> for info and state sets.</summary>
    public MetricType Type { get; }

    /// <summary>Whether the family is exposed as its <see cref="Type"/>, an info or a state set.</summary>
    public FamilyKind Kind { get; }

    /// <summary>The OpenMetrics unit, or null.</summary>
    public string? Unit { get; }

    /// <summary>A state set's states in declaration order; empty for other families.</summary>
    public string[] States { get; }

    /// <summary>The label names of the stored values: <see cref="LabelNames"/>, and for a state set the state label last.</summary>
    public string[] BackendLabelNames { get; }

    public string Name { get; }

    public string Help { get; }

    public string[] LabelNames { get; }

    /// <summary>Default value per label index, null where the label has none. The pid label of per-process gauges is a default that cannot be overridden.</summary>
    public string?[] Defaults { get; }

    /// <summary>The number of labels the user declared (the pid label comes after them).</summary>
    public int UserLabelCount { get; }

    public MetricRegistry Registry { get; }

    public ConfiguredBackend Backend { get; set; } = ConfiguredBackend.Memory;

    public double[] Buckets { get; }

    /// <summary>The bucket bounds as handed to users, who must not be able to change the family's array.</summary>
    public IReadOnlyList<double> ReadOnlyBuckets => _readOnlyBuckets ??= Array.AsReadOnly(Buckets);

    public GaugeAggregation Aggregation { get; }

    /// <summary>The native histogram settings as declared, or null.</summary>
    public NativeHistogramOptions? Native { get; }

    /// <summary>Whether series keep native buckets: declared native, and the backend stores them (never faked).</summary>
    public bool NativeEnabled => Native is not null && (Backend.Capabilities & BackendCapabilities.NativeHistogramBuckets) != 0;

    public MetricDescriptor Descriptor { get; }

    public double CreatedUnixSeconds { get; }

    /// <summary>The sample name in the Prometheus text format (a counter's <c>&lt;base&gt;_total</c>), as UTF-8.</summary>
    public byte[] NameBytes { get; }

    /// <summary>Every name the family's samples use in either format, reserved in its registry.</summary>
    public string[] ExposedNames { get; }

    /// <summary>Cached exposition header bytes per format, built on first scrape.</summary>
    public byte[]?[] HeaderCache { get; } = new byte[]?[2];

    /// <summary>The OpenMetrics family name (a counter's name without <c>_total</c>, an info's without <c>_info</c>), as UTF-8.</summary>
    public byte[] OpenMetricsCounterBase { get; }

    /// <summary>The <c>le="..."</c> label of each bucket, per format (OpenMetrics writes canonical floats such as 1.0).</summary>
    public byte[][] LeLabelCache(bool openMetrics)
    {
        var index = openMetrics ? 1 : 0;
        return _leLabels[index] ??= Buckets.Select(b => ExpositionWriter.FormatBound(b, openMetrics)).ToArray();
    }

    /// <summary>Whether <paramref name="other"/> declares exactly this metric: type, name, help, labels, defaults, buckets, aggregation.</summary>
    public bool SameDefinition(MetricFamily other) =>
        Type == other.Type
        && Kind == other.Kind
        && Unit == other.Unit
        && States.AsSpan().SequenceEqual(other.States)
        && Name == other.Name
        && Help == other.Help
        && Aggregation == other.Aggregation
        && LabelNames.AsSpan().SequenceEqual(other.LabelNames)
        && Defaults.AsSpan().SequenceEqual(other.Defaults)
        && Buckets.AsSpan().SequenceEqual(other.Buckets)
        && Equals(Native, other.Native);

    /// <summary>What differs between this definition and <paramref name="other"/>'s, for an error message.</summary>
    public string DescribeDifference(MetricFamily other)
    {
        static string List(IEnumerable<string?> items) => "[" + string.Join(", ", items.Select(i => i ?? "-")) + "]";
        var differences = new List<string>();
        if (Type != other.Type || Kind != other.Kind)
        {
            differences.Add($"type {TypeText} vs {other.TypeText}");
        }

        if (Unit != other.Unit)
        {
            differences.Add($"unit {Unit ?? "none"} vs {other.Unit ?? "none"}");
        }

        if (!States.AsSpan().SequenceEqual(other.States))
        {
            differences.Add($"states {List(States)} vs {List(other.States)}");
        }

        if (Help != other.Help)
        {
            differences.Add($"help \"{Help}\" vs \"{other.Help}\"");
        }

        if (!LabelNames.AsSpan().SequenceEqual(other.LabelNames))
        {
            differences.Add($"labels {List(LabelNames)} vs {List(other.LabelNames)}");
        }
        else if (!Defaults.AsSpan().SequenceEqual(other.Defaults))
        {
            differences.Add($"default labels {List(Defaults)} vs {List(other.Defaults)}");
        }

        if (!Buckets.AsSpan().SequenceEqual(other.Buckets))
        {
            differences.Add($"buckets {List(Buckets.Select(b => b.ToString(System.Globalization.CultureInfo.InvariantCulture)))} vs {List(other.Buckets.Select(b => b.ToString(System.Globalization.CultureInfo.InvariantCulture)))}");
        }

        if (!Equals(Native, other.Native))
        {
            differences.Add($"native histogram {Native?.ToString() ?? "off"} vs {other.Native?.ToString() ?? "off"}");
        }

        if (Aggregation != other.Aggregation)
        {
            differences.Add($"aggregation {Aggregation} vs {other.Aggregation}");
        }

        return differences.Count == 0 ? "another name rule" : string.Join("; ", differences);
    }

    /// <summary>The type as users declared it, for messages: counter, gauge, histogram, summary, info or stateset.</summary>
    public string TypeText => Kind switch
    {
        FamilyKind.Info => "info",
        FamilyKind.StateSet => "stateset",
        _ => Type.ToString().ToLowerInvariant(),
    };

    /// <summary>
    /// Whether collected label values can be rendered under this family's label names: a backend may return values
    /// written by a process that declared the metric with other labels.
    /// </summary>
    public bool Fits(IReadOnlyList<string> labelValues)
    {
        // An array's interface members dispatch slowly; backends return arrays, scrapes call this once per value.
        if (labelValues is string[] array)
        {
            if (array.Length != BackendLabelNames.Length)
            {
                return false;
            }

            foreach (var value in array)
            {
                if (value is null)
                {
                    return false;
                }
            }

            return true;
        }

        if (labelValues.Count != BackendLabelNames.Length)
        {
            return false;
        }

        // Indexed, not foreach: enumerating through IReadOnlyList may allocate an enumerator, once per scraped value.
        for (var i = 0; i < labelValues.Count; i++)
        {
            if (labelValues[i] is null)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>This family's own cardinality limit, or null to use its registry's.</summary>
    public int? CardinalityLimit
    {
        get => _cardinalityLimit;
        set => _cardinalityLimit = value is null ? null : MetricRegistry.ValidateCardinalityLimit(value.Value, nameof(value));
    }

    /// <summary>The limit in force: the family's own, else its registry's, else <see cref="MetricRegistry.DefaultCardinalityLimit"/>.</summary>
    public int EffectiveCardinalityLimit => _cardinalityLimit ?? Registry.CardinalityLimit ?? MetricRegistry.DefaultCardinalityLimit;

    /// <summary>
    /// Removes the child for <paramref name="fullValues"/> from this registry and, when the backend supports it, the
    /// series from the backend's store. Returns whether this registry held the child.
    /// </summary>
    public bool Remove(string[] fullValues)
    {
        bool held;
        lock (_addLock)
        {
            held = _children.TryRemove(fullValues, out var child);
            if (held)
            {
                Detach([child!]);
            }
        }

        Backend.RemoveSeries(Descriptor.WithLabelValues(fullValues));
        return held;
    }

    /// <summary>Removes every child and, when the backend supports it, every series of the family from its store.</summary>
    public int Clear()
    {
        int removed;
        lock (_addLock)
        {
            var children = _children.Values.ToArray();
            _children.Clear();
            Detach(children);
            removed = children.Length;
        }

        // Empty label values name every series of the family (see IMetricBackend.RemoveSeries).
        Backend.RemoveSeries(Descriptor);
        return removed;
    }

    /// <summary>
    /// Brings back removed children that were updated since (their values are no longer all 0) and forgets those nobody
    /// holds any more. Called before each scrape of a backend read value by value; shared stores keep this state themselves.
    /// </summary>
    public void ReviveUpdated()
    {
        // Read without the lock: most families never had a child removed, and a scrape must not queue behind creations.
        if (Volatile.Read(ref _removed) is not { Count: > 0 })
        {
            return;
        }

        lock (_addLock)
        {
            if (_removed is not { Count: > 0 } removed)
            {
                return;
            }

            foreach (var (values, weak) in removed.ToArray())
            {
                if (!weak.TryGetTarget(out var child))
                {
                    removed.Remove(values);
                }
                else if (!IsZero(child) && !_children.ContainsKey(values))
                {
                    removed.Remove(values);
                    _children[values] = child;
                    Append(child);
                }
            }
        }
    }

    public static double UnixNow() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

    /// <summary>
    /// The series a backend collected for <paramref name="labelValues"/>: one object per distinct label set, holding its
    /// rendered labels and creation time, so repeated scrapes of a shared store neither render labels again nor, when the
    /// backend returns the same array every scrape, hash the label text. Bounded, like the children, by the number of series.
    /// </summary>
    public CollectedSeries CollectedSeries(IReadOnlyList<string> labelValues)
    {
        var array = labelValues as string[];
        if (array is not null && _collectedByReference.TryGetValue(array, out var known) && known.IsCurrent(Volatile.Read(ref _count)))
        {
            return known;
        }

        return CollectedSeriesSlow(array ?? [.. labelValues], cacheReference: array is not null);
    }

    /// <summary>
    /// The series for the value at <paramref name="position"/> of a collection of <paramref name="count"/> values, or null
    /// when its label values do not fit the family (<see cref="Fits"/>). A backend that returns the same label arrays in
    /// the same order every scrape (a shared store kept indexed) finds each series where the last scrape left it: one
    /// reference comparison per value, without hashing or reading the labels.
    /// </summary>
    public CollectedSeries? CollectedSeriesAt(int position, int count, IReadOnlyList<string> labelValues)
    {
        var cache = Volatile.Read(ref _byPosition);
        if (cache.Length < count || cache.Length > (2 * count) + 1024)
        {
            // Grown keeping what it holds: series added at the end leave the earlier positions valid.
            var resized = new CollectedSeries?[count];
            cache.AsSpan(0, Math.Min(cache.Length, count)).CopyTo(resized);
            Volatile.Write(ref _byPosition, resized);
            cache = resized;
        }

        var known = cache[position];
        if (known is not null && ReferenceEquals(known.KeyLabels, labelValues) && known.IsCurrent(Volatile.Read(ref _count)))
        {
            return known;
        }

        if (!Fits(labelValues))
        {
            return null;
        }

        var series = CollectedSeries(labelValues);
        if (labelValues is string[] array)
        {
            // Only arrays: a list could change under the cache. Any array the series was found by holds its label values.
            series.KeyLabels = array;
            cache[position] = series;
        }

        return series;
    }

    /// <summary>How many label arrays the by-reference index holds, for tests.</summary>
    internal int CollectedReferences => _collectedByReference.Count;

    /// <summary>Drops the by-reference index when it holds more arrays than a scrape that returned <paramref name="values"/> values can use.</summary>
    public void TrimCollectedSeries(int values)
    {
        if (_collectedByReference.Count > (2 * values) + 1024)
        {
            _collectedByReference.Clear();
        }
    }

    private CollectedSeries CollectedSeriesSlow(string[] labelValues, bool cacheReference)
    {
        var children = Volatile.Read(ref _count);
        if (!_collectedByValue.TryGetValue(labelValues, out var series))
        {
            series = TryGetChild(labelValues, out var child)
                ? new CollectedSeries(child.LabelBytes, child.CreatedUnixSeconds, child, children)
                // A series only other processes created: its creation time is unknown here, the family's is the best bound.
                : new CollectedSeries(Metric.RenderLabels(BackendLabelNames, labelValues), CreatedUnixSeconds, null, children);
            series = _collectedByValue.GetOrAdd(labelValues, series);
        }
        else if (!series.IsCurrent(children) && TryGetChild(labelValues, out var child))
        {
            // This process created the series since it was first collected: from now on it has the child's creation time.
            series.Adopt(child);
        }
        else
        {
            series.Checked(children);
        }

        if (cacheReference)
        {
            _collectedByReference[labelValues] = series;
        }

        return series;
    }

    public bool TryGetChild(ReadOnlySpan<string> fullValues, [MaybeNullWhen(false)] out Metric child) =>
        _lookup.TryGetValue(fullValues, out child);

    /// <summary>
    /// Finds the child for <paramref name="fullValues"/>, or has <paramref name="creator"/> make it. The creator is an
    /// object rather than a delegate so that finding an existing child, the common case, allocates nothing.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Metric GetOrAddChild(ReadOnlySpan<string> fullValues, Metric creator)
    {
        if (_lookup.TryGetValue(fullValues, out var existing))
        {
            return existing;
        }

        return AddChildSlow(fullValues, creator);
    }

    /// <summary>Registers a completed instance (the root of a metric whose labels are all defaulted) as the child for its values.</summary>
    public void AddChild(Metric child, string[] fullValues)
    {
        lock (_addLock)
        {
            if (!_children.TryAdd(fullValues, child))
            {
                throw new InvalidOperationException($"Series {Descriptor.WithLabelValues(fullValues)} exists already.");
            }

            Append(child);
        }
    }

    /// <summary>The children in creation order; a consistent snapshot for one scrape.</summary>
    public ReadOnlySpan<Metric> Children()
    {
        var ordered = Volatile.Read(ref _ordered);
        var count = Math.Min(Volatile.Read(ref _count), ordered.Length);
        return ordered.AsSpan(0, count);
    }

    public IMetricBackend CreateValue(string[] fullValues, HistogramBucket? bucket, ref MetricDescriptor? descriptor)
    {
        descriptor ??= Descriptor.WithLabelValues(fullValues);
        return Backend.CreateValue(descriptor, bucket);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private Metric AddChildSlow(ReadOnlySpan<string> fullValues, Metric creator)
    {
        for (var i = 0; i < fullValues.Length; i++)
        {
            if (fullValues[i] is null)
            {
                throw new ArgumentNullException(nameof(fullValues), $"Label '{LabelNames[i]}' of metric '{Name}' has a null value; label values may be any string, including empty, but not null.");
            }

            // An unpaired surrogate has no UTF-8 form: two such values would expose as the same series.
            if (HasUnpairedSurrogate(fullValues[i]))
            {
                throw new ArgumentException($"Label '{LabelNames[i]}' of metric '{Name}' contains an unpaired UTF-16 surrogate, which cannot be exposed as UTF-8. Pass valid Unicode text.", nameof(fullValues));
            }
        }

        lock (_addLock)
        {
            if (_lookup.TryGetValue(fullValues, out var existing))
            {
                return existing;
            }

            if (_removed is { Count: > 0 } removed
                && removed.GetAlternateLookup<ReadOnlySpan<string>>().Remove(fullValues, out var key, out var weak)
                && weak.TryGetTarget(out var held))
            {
                // Asked for again while user code still holds the removed child: the same object, so both see one series.
                _children[key] = held;
                Append(held);
                return held;
            }

            // Checked before anything is allocated: a refused label set costs no memory, however many distinct ones arrive.
            if (AtCardinalityLimit() && !IsOverflowSet(fullValues))
            {
                return Overflow(creator);
            }

            // Values are created outside the dictionary so a backend failure leaves no half-made child behind.
            var values = fullValues.ToArray();
            var child = creator.CreateCompleteChild(values);
            _children[values] = child;
            Append(child);
            return child;
        }
    }

    /// <summary>Whether creating one more series would pass the limit, counting the shared store's series when the backend knows them.</summary>
    private bool AtCardinalityLimit()
    {
        var limit = EffectiveCardinalityLimit;
        // The scrape order holds exactly the children (kept in step under the add lock); ConcurrentDictionary.Count takes every lock.
        var local = _count - (_overflowChild is not null ? 1 : 0);
        if (local >= limit)
        {
            return true;
        }

        // No limit, nothing to count: a store is not read for it.
        if (limit == int.MaxValue)
        {
            return false;
        }

        var shared = Backend.SeriesCount(Descriptor);
        if (shared < 0)
        {
            return false;
        }

        // The store counts this process's overflow series too (other processes' overflow series make this refuse one early).
        return shared - (_overflowChild is not null ? 1 : 0) >= limit;
    }

    private bool IsOverflowSet(ReadOnlySpan<string> fullValues)
    {
        for (var i = 0; i < UserLabelCount; i++)
        {
            if (fullValues[i] != Metric.OverflowLabelValue)
            {
                return false;
            }
        }

        return UserLabelCount > 0;
    }

    /// <summary>The one series that takes every update for label sets past the limit; counted and logged once per family.</summary>
    private Metric Overflow(Metric creator)
    {
        // Counted in the registry's backend like any counter, so a shared store sums the refusals of every process.
        (_overflowCount ??= Registry.OverflowCounter.Labels(Name)).Inc();
        if (Volatile.Read(ref _overflowLogged) == 0)
        {
            LogOverflow();
        }

        return _overflowChild ?? CreateOverflow(creator);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void LogOverflow()
    {
        if (Interlocked.Exchange(ref _overflowLogged, 1) == 0)
        {
            BackendLog.Write(
                "Metrics",
                BackendLogLevel.Warning,
                $"Metric '{Name}' reached its cardinality limit of {EffectiveCardinalityLimit} series: updates for new label sets go to the series with every label \"{Metric.OverflowLabelValue}\" and are counted in metrics_cardinality_overflow_total{{metric=\"{Name}\"}}. Remove label values that grow without bound (ids, paths), or raise the limit (CardinalityLimit on the metric or the registry).");
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private Metric CreateOverflow(Metric creator)
    {
        var values = new string[LabelNames.Length];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = i < UserLabelCount ? Metric.OverflowLabelValue : Defaults[i]!;
        }

        if (!_children.TryGetValue(values, out var overflow))
        {
            overflow = creator.CreateCompleteChild(values);
            _children[values] = overflow;
            Append(overflow);
        }

        _overflowChild = overflow;
        return overflow;
    }

    /// <summary>Takes removed children out of the scrape order and remembers them weakly; called under the add lock.</summary>
    private void Detach(Metric[] children)
    {
        if (children.Length == 0)
        {
            return;
        }

        var gone = new HashSet<Metric>(children, ReferenceEqualityComparer.Instance);
        var remaining = Children().ToArray().Where(c => !gone.Contains(c)).ToArray();

        // Exactly as long as its content: a reader that pairs it with the old, larger count is bounded by its length, and
        // a reader of the old array with the new count reads valid slots of it.
        Volatile.Write(ref _ordered, remaining);
        Volatile.Write(ref _count, remaining.Length);
        _removed ??= new Dictionary<string[], WeakReference<Metric>>(LabelValuesComparer.Instance);
        var local = (Backend.Capabilities & BackendCapabilities.SharedAcrossProcesses) == 0;
        foreach (var child in children)
        {
            if (ReferenceEquals(child, _overflowChild))
            {
                _overflowChild = null;
            }

            // In-process values restart at 0, as a shared store's do: the first update after the removal brings the series back.
            if (local)
            {
                foreach (var value in ValuesOf(child))
                {
                    value.Set(0);
                }
            }

            _removed[child.FullValues!] = new WeakReference<Metric>(child);
        }
    }

    private static bool IsZero(Metric child)
    {
        foreach (var value in ValuesOf(child))
        {
            if (value.Get() != 0)
            {
                return false;
            }
        }

        return true;
    }

    private static IEnumerable<IMetricBackend> ValuesOf(Metric child)
    {
        switch (child)
        {
            case Counter { Backing: { } value }:
                yield return value;
                break;
            case Gauge { BackingValue: { } value }:
                yield return value;
                break;
            case Summary { CountValue: { } count, SumValue: { } sum }:
                yield return count;
                yield return sum;
                break;
            case Histogram { BucketValues: { } buckets, SumValue: { } sum } histogram:
                foreach (var bucket in buckets)
                {
                    yield return bucket;
                }

                yield return sum;
                if (histogram.NativeValues is { } native)
                {
                    foreach (var entry in native.Entries)
                    {
                        yield return entry.Value;
                    }
                }

                break;
        }
    }

    /// <summary>A state in the definition text: the separator and the escape character escaped, so states cannot run together.</summary>
    private static string EscapeState(string state) =>
        state.Replace("\\", "\\\\", StringComparison.Ordinal).Replace(",", "\\,", StringComparison.Ordinal);

    private static bool HasUnpairedSurrogate(string value)
    {
        var span = value.AsSpan();
        var i = span.IndexOfAnyInRange('\uD800', '\uDFFF');
        if (i < 0)
        {
            return false;
        }

        for (; i < span.Length; i++)
        {
            if (char.IsHighSurrogate(span[i]) && i + 1 < span.Length && char.IsLowSurrogate(span[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(span[i]))
            {
                return true;
            }
        }

        return false;
    }

    private void Append(Metric child)
    {
        var ordered = _ordered;
        if (_count == ordered.Length)
        {
            // Readers keep the old array: it stays valid for the slots they read.
            Array.Resize(ref ordered, Math.Max(4, ordered.Length * 2));
        }

        ordered[_count] = child;
        Volatile.Write(ref _ordered, ordered);
        Volatile.Write(ref _count, _count + 1);
    }
}

/// <summary>A series as scrapes of a shared store render it: its label bytes and creation time, looked up once.</summary>
internal sealed class CollectedSeries(byte[] labelBytes, double created, Metric? child, int childrenChecked)
{
    private double _created = created;
    private Metric? _child = child;
    private int _childrenChecked = childrenChecked;

    public byte[] LabelBytes { get; } = labelBytes;

    /// <summary>The last label array this series was found by: an array holding its label values, compared by reference.</summary>
    public string[]? KeyLabels
    {
        get => Volatile.Read(ref _keyLabels);
        set => Volatile.Write(ref _keyLabels, value);
    }

    private string[]? _keyLabels;

    public double CreatedUnixSeconds => Volatile.Read(ref _created);

    /// <summary>Whether no child of this label set can have been created since it was looked up (the family had <paramref name="children"/>).</summary>
    public bool IsCurrent(int children) => Volatile.Read(ref _child) is not null || Volatile.Read(ref _childrenChecked) == children;

    public void Checked(int children) => Volatile.Write(ref _childrenChecked, children);

    public void Adopt(Metric child)
    {
        Volatile.Write(ref _created, child.CreatedUnixSeconds);
        Volatile.Write(ref _child, child);
    }
}
