namespace Metrics;

/// <summary>
/// User code that produces samples at scrape time (process statistics, a queue's length read on demand, values
/// owned by another library). Register it with <see cref="MetricRegistry.Register(ICollector)"/>.
/// </summary>
public interface ICollector
{
    /// <summary>The metric names this collector yields, declared up front so the registry can reject duplicates.</summary>
    IReadOnlyList<string> MetricNames { get; }

    /// <summary>Produces the current samples. Called once per scrape; an exception fails the scrape.</summary>
    /// <returns>One snapshot per metric, each named in <see cref="MetricNames"/>.</returns>
    IEnumerable<MetricSnapshot> Collect();
}

/// <summary>What a <see cref="MetricSnapshot"/> is exposed as.</summary>
public enum MetricSnapshotKind
{
    /// <summary>A counter: <see cref="MetricSnapshot.Samples"/> hold totals.</summary>
    Counter,

    /// <summary>A gauge: <see cref="MetricSnapshot.Samples"/> hold values.</summary>
    Gauge,

    /// <summary>A histogram: <see cref="MetricSnapshot.HistogramSamples"/> over <see cref="MetricSnapshot.Buckets"/>.</summary>
    Histogram,

    /// <summary>A summary: <see cref="MetricSnapshot.SummarySamples"/> (count and sum).</summary>
    Summary,

    /// <summary>An info: <see cref="MetricSnapshot.Samples"/> hold label sets of value 1; a gauge in text 0.0.4 and protobuf.</summary>
    Info,

    /// <summary>A state set: <see cref="MetricSnapshot.StateSetSamples"/>; a gauge in text 0.0.4 and protobuf.</summary>
    StateSet,
}

/// <summary>
/// One metric family produced by an <see cref="ICollector"/>: counters and gauges through the constructor, the other
/// types through <see cref="Histogram"/>, <see cref="Summary"/>, <see cref="Info"/> and <see cref="StateSet"/>.
/// Everything is checked when the snapshot is made, so a bad snapshot fails with a message naming the metric.
/// </summary>
public sealed class MetricSnapshot
{
    private static readonly double[] NoBuckets = [];

    /// <summary>The constructor of earlier versions, kept for code compiled against them; new code gets the one with a unit.</summary>
    /// <param name="name">The metric name.</param>
    /// <param name="help">The help text.</param>
    /// <param name="type"><see cref="MetricType.Counter"/> or <see cref="MetricType.Gauge"/>.</param>
    /// <param name="labelNames">The label names of every sample.</param>
    /// <param name="samples">One sample per label set.</param>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public MetricSnapshot(string name, string help, MetricType type, IReadOnlyList<string> labelNames, IReadOnlyList<Sample> samples)
        : this(name, help, type, labelNames, samples, null)
    {
    }

    /// <summary>Creates a counter or gauge snapshot.</summary>
    /// <param name="name">The metric name (the registry prefix is added).</param>
    /// <param name="help">The help text.</param>
    /// <param name="type"><see cref="MetricType.Counter"/> or <see cref="MetricType.Gauge"/>; the other types have factory methods.</param>
    /// <param name="labelNames">The label names of every sample.</param>
    /// <param name="samples">One sample per label set.</param>
    /// <param name="unit">The OpenMetrics unit, or null; the name must end with <c>_&lt;unit&gt;</c> (a counter's before <c>_total</c>).</param>
    public MetricSnapshot(string name, string help, MetricType type, IReadOnlyList<string> labelNames, IReadOnlyList<Sample> samples, string? unit = null)
        : this(name, help, type switch
        {
            MetricType.Counter => MetricSnapshotKind.Counter,
            MetricType.Gauge => MetricSnapshotKind.Gauge,
            _ => throw new ArgumentException($"Collected metric '{name}' is a {type}: the constructor makes counters and gauges; use MetricSnapshot.Histogram or MetricSnapshot.Summary.", nameof(type)),
        }, labelNames, unit)
    {
        ArgumentNullException.ThrowIfNull(samples);
        foreach (var sample in samples)
        {
            CheckLabelValues(sample.LabelValues, nameof(samples));
        }

        Samples = samples;
    }

    private MetricSnapshot(string name, string help, MetricSnapshotKind kind, IReadOnlyList<string> labelNames, string? unit)
    {
        NameRules.ValidateMetricName(name, nameof(name));
        ArgumentNullException.ThrowIfNull(help);
        ArgumentNullException.ThrowIfNull(labelNames);
        Kind = kind;
        Type = kind switch
        {
            MetricSnapshotKind.Counter => MetricType.Counter,
            MetricSnapshotKind.Histogram => MetricType.Histogram,
            MetricSnapshotKind.Summary => MetricType.Summary,
            _ => MetricType.Gauge,
        };
        if (unit is not null && kind is MetricSnapshotKind.Info or MetricSnapshotKind.StateSet)
        {
            throw new ArgumentException($"Collected {kind} '{name}' has unit '{unit}', but OpenMetrics gives info and state sets no unit; leave it out.", nameof(unit));
        }

        NameRules.ValidateUnit(name, unit, Type);
        if (kind == MetricSnapshotKind.StateSet)
        {
            NameRules.ValidateLabelName(name, name, nameof(name));
        }

        foreach (var label in labelNames)
        {
            NameRules.ValidateLabelName(name, label, nameof(labelNames));
            if ((kind == MetricSnapshotKind.Histogram && label == "le") || (kind == MetricSnapshotKind.Summary && label == "quantile") || (kind == MetricSnapshotKind.StateSet && label == name))
            {
                throw new ArgumentException($"Collected {kind.ToString().ToLowerInvariant()} '{name}' cannot have a label named '{label}': the exposition uses it.", nameof(labelNames));
            }
        }

        if (labelNames.Distinct(StringComparer.Ordinal).Count() != labelNames.Count)
        {
            throw new ArgumentException($"Collected metric '{name}' declares a label name twice: [{string.Join(", ", labelNames)}].", nameof(labelNames));
        }

        Name = name;
        Help = help;
        Unit = unit;
        LabelNames = labelNames;
    }

    /// <summary>The metric name.</summary>
    public string Name { get; }

    /// <summary>The help text.</summary>
    public string Help { get; }

    /// <summary>The type in text 0.0.4 and protobuf: <see cref="MetricType.Gauge"/> for info and state sets.</summary>
    public MetricType Type { get; }

    /// <summary>What the snapshot is exposed as in OpenMetrics.</summary>
    public MetricSnapshotKind Kind { get; }

    /// <summary>The OpenMetrics unit, or null.</summary>
    public string? Unit { get; }

    /// <summary>The label names.</summary>
    public IReadOnlyList<string> LabelNames { get; }

    /// <summary>The samples of a counter, gauge or info (value 1); empty for the other kinds.</summary>
    public IReadOnlyList<Sample> Samples { get; private set; } = [];

    /// <summary>A histogram's bucket upper bounds, increasing, the last +Inf; empty for the other kinds.</summary>
    public IReadOnlyList<double> Buckets => BucketArray;

    /// <summary>The bounds as the writers take them; private to this assembly, so the array is never changed.</summary>
    internal double[] BucketArray { get; private set; } = NoBuckets;

    /// <summary>A histogram's series; empty for the other kinds.</summary>
    public IReadOnlyList<HistogramSample> HistogramSamples { get; private set; } = [];

    /// <summary>A summary's series; empty for the other kinds.</summary>
    public IReadOnlyList<SummarySample> SummarySamples { get; private set; } = [];

    /// <summary>A state set's series; empty for the other kinds.</summary>
    public IReadOnlyList<StateSetSample> StateSetSamples { get; private set; } = [];

    /// <summary>A gauge snapshot without labels.</summary>
    /// <param name="name">The metric name.</param>
    /// <param name="help">The help text.</param>
    /// <param name="value">The value.</param>
    /// <returns>The snapshot.</returns>
    public static MetricSnapshot Gauge(string name, string help, double value) => new(name, help, MetricType.Gauge, [], [new Sample([], value)]);

    /// <summary>A counter snapshot without labels.</summary>
    /// <param name="name">The metric name.</param>
    /// <param name="help">The help text.</param>
    /// <param name="value">The total.</param>
    /// <returns>The snapshot.</returns>
    public static MetricSnapshot Counter(string name, string help, double value) => new(name, help, MetricType.Counter, [], [new Sample([], value)]);

    /// <summary>A histogram snapshot.</summary>
    /// <param name="name">The metric name.</param>
    /// <param name="help">The help text.</param>
    /// <param name="labelNames">The label names of every series; <c>le</c> is reserved.</param>
    /// <param name="buckets">The bucket upper bounds, strictly increasing; +Inf is added when missing.</param>
    /// <param name="samples">One per series, with a cumulative count per bound (+Inf included: the total count).</param>
    /// <param name="unit">The OpenMetrics unit, or null.</param>
    /// <returns>The snapshot.</returns>
    public static MetricSnapshot Histogram(string name, string help, IReadOnlyList<string> labelNames, IEnumerable<double> buckets, IReadOnlyList<HistogramSample> samples, string? unit = null)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        ArgumentNullException.ThrowIfNull(samples);
        var bounds = Metrics.Histogram.ValidateBuckets(name, buckets);
        var snapshot = new MetricSnapshot(name, help, MetricSnapshotKind.Histogram, labelNames, unit) { BucketArray = bounds, HistogramSamples = samples };
        foreach (var sample in samples)
        {
            ArgumentNullException.ThrowIfNull(sample, nameof(samples));
            snapshot.CheckLabelValues(sample.LabelValues, nameof(samples));
            if (sample.CumulativeCounts is null || sample.CumulativeCounts.Count != bounds.Length)
            {
                throw new ArgumentException($"A series of collected histogram '{name}' has {sample.CumulativeCounts?.Count ?? 0} bucket counts for {bounds.Length} bounds (+Inf included); give one cumulative count per bound.", nameof(samples));
            }

            if (sample.Exemplars is { } exemplars && exemplars.Count != bounds.Length)
            {
                throw new ArgumentException($"A series of collected histogram '{name}' has {exemplars.Count} bucket exemplars for {bounds.Length} bounds (+Inf included); give one per bound, null where a bucket has none.", nameof(samples));
            }

            var previous = 0.0;
            foreach (var count in sample.CumulativeCounts)
            {
                if (!(count >= previous))
                {
                    throw new ArgumentException($"A series of collected histogram '{name}' has bucket counts [{string.Join(", ", sample.CumulativeCounts)}]: they must be cumulative, never negative, never decreasing.", nameof(samples));
                }

                previous = count;
            }
        }

        return snapshot;
    }

    /// <summary>A summary snapshot: count and sum per series.</summary>
    /// <param name="name">The metric name.</param>
    /// <param name="help">The help text.</param>
    /// <param name="labelNames">The label names of every series; <c>quantile</c> is reserved.</param>
    /// <param name="samples">One per series.</param>
    /// <param name="unit">The OpenMetrics unit, or null.</param>
    /// <returns>The snapshot.</returns>
    public static MetricSnapshot Summary(string name, string help, IReadOnlyList<string> labelNames, IReadOnlyList<SummarySample> samples, string? unit = null)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var snapshot = new MetricSnapshot(name, help, MetricSnapshotKind.Summary, labelNames, unit) { SummarySamples = samples };
        foreach (var sample in samples)
        {
            snapshot.CheckLabelValues(sample.LabelValues, nameof(samples));
            if (!(sample.Count >= 0))
            {
                throw new ArgumentException($"A series of collected summary '{name}' has count {sample.Count}; a count is a non-negative number.", nameof(samples));
            }
        }

        return snapshot;
    }

    /// <summary>An info snapshot: one series of value 1 per label set, exposed as <c>&lt;name&gt;_info</c>.</summary>
    /// <param name="name">The metric name, with or without the <c>_info</c> suffix.</param>
    /// <param name="help">The help text.</param>
    /// <param name="labelNames">The names of the facts.</param>
    /// <param name="labelSets">The label values of each series.</param>
    /// <returns>The snapshot.</returns>
    public static MetricSnapshot Info(string name, string help, IReadOnlyList<string> labelNames, IReadOnlyList<IReadOnlyList<string>> labelSets)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(labelSets);
        var familyName = name.EndsWith("_info", StringComparison.Ordinal) && name.Length > 5 ? name[..^5] : name;
        var snapshot = new MetricSnapshot(familyName, help, MetricSnapshotKind.Info, labelNames, null) { DeclaredName = name };
        var samples = new Sample[labelSets.Count];
        for (var i = 0; i < samples.Length; i++)
        {
            snapshot.CheckLabelValues(labelSets[i], nameof(labelSets));
            samples[i] = new Sample(labelSets[i], 1);
        }

        snapshot.Samples = samples;
        return snapshot;
    }

    /// <summary>A state set snapshot: per series, each state true or false, exposed with the state in a label named after the metric.</summary>
    /// <param name="name">The metric name; also the state label's name, so no ':'.</param>
    /// <param name="help">The help text.</param>
    /// <param name="labelNames">The label names of every series.</param>
    /// <param name="samples">One per series.</param>
    /// <returns>The snapshot.</returns>
    public static MetricSnapshot StateSet(string name, string help, IReadOnlyList<string> labelNames, IReadOnlyList<StateSetSample> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var snapshot = new MetricSnapshot(name, help, MetricSnapshotKind.StateSet, labelNames, null) { StateSetSamples = samples };
        foreach (var sample in samples)
        {
            snapshot.CheckLabelValues(sample.LabelValues, nameof(samples));
            if (sample.States is null || sample.States.Count == 0 || sample.States.Keys.Any(k => k is null))
            {
                throw new ArgumentException($"A series of collected state set '{name}' has no states; give each state's value, for example {{ [\"on\"] = true, [\"off\"] = false }}.", nameof(samples));
            }
        }

        return snapshot;
    }

    /// <summary>The name the collector declared (an info's may carry the <c>_info</c> suffix), matched against its <see cref="ICollector.MetricNames"/>.</summary>
    internal string DeclaredName { get => field ?? Name; private set; }

    private void CheckLabelValues(IReadOnlyList<string>? values, string paramName)
    {
        if (values is null || values.Count != LabelNames.Count)
        {
            throw new ArgumentException($"A sample of collected metric '{Name}' has {values?.Count ?? 0} label values for {LabelNames.Count} label names.", paramName);
        }

        for (var i = 0; i < LabelNames.Count; i++)
        {
            if (values[i] is null)
            {
                throw new ArgumentException($"A sample of collected metric '{Name}' has a null value for label '{LabelNames[i]}'; use an empty string for an empty value.", paramName);
            }
        }
    }
}

/// <summary>One sample of a counter, gauge or info <see cref="MetricSnapshot"/>.</summary>
/// <param name="LabelValues">The label values, in the order of the snapshot's label names.</param>
/// <param name="Value">The value.</param>
public readonly record struct Sample(IReadOnlyList<string> LabelValues, double Value)
{
    /// <summary>
    /// The sample's exemplar, shown in OpenMetrics scrapes after a counter's <c>_total</c> sample (never in text 0.0.4);
    /// null for none. Its labels were validated when the <see cref="Metrics.Exemplar"/> was built.
    /// </summary>
    public RecordedExemplar? Exemplar { get; init; }
}

/// <summary>One series of a histogram <see cref="MetricSnapshot"/>.</summary>
/// <param name="LabelValues">The label values, in the order of the snapshot's label names.</param>
/// <param name="CumulativeCounts">Per bucket bound (+Inf included), the number of observations at or below it.</param>
/// <param name="Sum">The sum of the observations.</param>
public sealed record HistogramSample(IReadOnlyList<string> LabelValues, IReadOnlyList<double> CumulativeCounts, double Sum)
{
    /// <summary>
    /// Each bucket's exemplar, in the order of the snapshot's bounds (+Inf included), null where a bucket has none; null
    /// (the default) for no exemplars at all. Shown in OpenMetrics scrapes after the bucket's sample and in protobuf
    /// (never in text 0.0.4). Labels were validated when each <see cref="Metrics.Exemplar"/> was built.
    /// </summary>
    public IReadOnlyList<RecordedExemplar?>? Exemplars { get; init; }
}

/// <summary>One series of a summary <see cref="MetricSnapshot"/>.</summary>
/// <param name="LabelValues">The label values, in the order of the snapshot's label names.</param>
/// <param name="Count">The number of observations.</param>
/// <param name="Sum">The sum of the observations.</param>
public readonly record struct SummarySample(IReadOnlyList<string> LabelValues, double Count, double Sum);

/// <summary>One series of a state set <see cref="MetricSnapshot"/>.</summary>
/// <param name="LabelValues">The label values, in the order of the snapshot's label names.</param>
/// <param name="States">Each state and whether it holds, exposed in this order.</param>
public sealed record StateSetSample(IReadOnlyList<string> LabelValues, IReadOnlyDictionary<string, bool> States);

/// <summary>What every exposition format does with a collector's output.</summary>
internal static class CollectorExtensions
{
    /// <summary>The collector's snapshots, refusing a metric it did not declare (the registry checked only the declared names).</summary>
    public static IEnumerable<MetricSnapshot> CollectDeclared(this ICollector collector)
    {
        var declared = collector.MetricNames;
        foreach (var snapshot in collector.Collect())
        {
            if (!declared.Contains(snapshot.DeclaredName) && !declared.Contains(snapshot.Name))
            {
                throw new InvalidOperationException($"Collector {collector.GetType().Name} yielded metric '{snapshot.DeclaredName}', which it does not declare in MetricNames.");
            }

            yield return snapshot;
        }
    }
}
