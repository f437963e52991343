namespace Metrics;

/// <summary>
/// A read-only description of the metric that owns a value, handed to the backend when the value is created.
/// </summary>
/// <remarks>
/// Two values are the same value exactly when <see cref="Name"/>, <see cref="LabelValues"/> and the
/// <see cref="HistogramBucket"/> are equal. A backend keying a shared store must encode all three without
/// ambiguity: label values may contain any character, including separators, quotes, newlines and the empty string.
/// </remarks>
public sealed class MetricDescriptor
{
    private static readonly string[] NoStrings = [];
    private static readonly double[] NoBuckets = [];
    private string? _definition;
    private string? _definitionId;
    private string? _unit;

    /// <summary>Creates a descriptor. The host creates these; tests and tools may too.</summary>
    /// <param name="name">The exposed metric name, registry prefix included.</param>
    /// <param name="help">The help text.</param>
    /// <param name="type">The metric type.</param>
    /// <param name="labelNames">All label names of the metric, in declaration order.</param>
    /// <param name="labelValues">The series' label values in the order of <paramref name="labelNames"/>; empty for a family.</param>
    /// <param name="buckets">For a histogram, the bucket upper bounds in increasing order, ending with +Inf; otherwise empty.</param>
    /// <param name="gaugeAggregation">For a gauge, how per-process values combine in a shared store.</param>
    public MetricDescriptor(
        string name,
        string help,
        MetricType type,
        IReadOnlyList<string>? labelNames = null,
        IReadOnlyList<string>? labelValues = null,
        IReadOnlyList<double>? buckets = null,
        GaugeAggregation gaugeAggregation = GaugeAggregation.Sum)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(help);
        Name = name;
        Help = help;
        Type = type;
        LabelNames = labelNames ?? NoStrings;
        LabelValues = labelValues ?? NoStrings;
        Buckets = buckets ?? NoBuckets;
        GaugeAggregation = gaugeAggregation;
        if (LabelValues.Count != 0 && LabelValues.Count != LabelNames.Count)
        {
            throw new ArgumentException(
                $"Metric '{name}' has {LabelNames.Count} label names but {LabelValues.Count} label values; give one value per name, or none for a family.",
                nameof(labelValues));
        }
    }

    /// <summary>The exposed metric name, registry prefix included (for example <c>app_requests_total</c>).</summary>
    public string Name { get; }

    /// <summary>The metric's help text.</summary>
    public string Help { get; }

    /// <summary>The metric type.</summary>
    public MetricType Type { get; }

    /// <summary>All label names, in declaration order (default labels and an added <c>pid</c> label included).</summary>
    public IReadOnlyList<string> LabelNames { get; }

    /// <summary>
    /// The series' full label values, defaults included, in the order of <see cref="LabelNames"/>.
    /// Empty when the descriptor describes a whole family (as passed to <see cref="IMetricBackend{TSelf}.Collect"/>).
    /// </summary>
    public IReadOnlyList<string> LabelValues { get; }

    /// <summary>For a histogram, the bucket upper bounds in increasing order, the last one +Inf. Empty for other types.</summary>
    public IReadOnlyList<double> Buckets { get; }

    /// <summary>For a gauge, how per-process values combine in a shared store. <see cref="Metrics.GaugeAggregation.Sum"/> for other types.</summary>
    public GaugeAggregation GaugeAggregation { get; }

    /// <summary>
    /// Contract 1.1: for a native histogram, the zero bucket's threshold (observations of at most this magnitude are
    /// counted in <see cref="HistogramBucket.NativeZero"/>); <see langword="null"/> for every other metric. Part of
    /// <see cref="Definition"/>: processes with different thresholds do not merge. The schema is not: buckets of
    /// different schemas merge exactly at a scrape.
    /// </summary>
    public double? NativeZeroThreshold { get; init; }

    /// <summary>
    /// Contract 1.1: the metric's unit (OpenMetrics <c># UNIT</c>, for example <c>seconds</c>), or <see langword="null"/>
    /// for none. Part of <see cref="Definition"/>: processes that declare one name with different units do not share
    /// values. Letters, digits and <c>_</c> only.
    /// </summary>
    /// <exception cref="ArgumentException">The unit is empty or holds another character.</exception>
    public string? Unit
    {
        get => _unit;
        init
        {
            if (value is not null && (value.Length == 0 || !value.All(c => char.IsAsciiLetterOrDigit(c) || c == '_')))
            {
                throw new ArgumentException($"Unit '{value}' of metric '{Name}' is invalid: use letters, digits and '_' only (for example 'seconds' or 'bytes'), or null for none.", nameof(Unit));
            }

            _unit = value;
        }
    }

    /// <summary>
    /// Contract 1.1: for a value the host stores as a gauge but exposes as another OpenMetrics type, that type and what
    /// defines it: <c>info</c>, or <c>stateset:</c> followed by the states (for example <c>stateset:on,off</c>);
    /// <see langword="null"/> for every other metric. Backends store such values as the gauges they are (the
    /// <see cref="Type"/> is <see cref="MetricType.Gauge"/>) and need not look at it; it is part of
    /// <see cref="Definition"/>, so a gauge and a state set of one name, or state sets with other states, do not share values.
    /// </summary>
    public string? ExposedAs { get; init; }

    /// <summary>
    /// Contract 1.1: the family's definition as canonical text: type, label names, bucket bounds and gauge aggregation
    /// (and, when set, the <see cref="Unit"/> and <see cref="ExposedAs"/>), for example <c>histogram;labels=route;buckets=0.1,1,+Inf;aggregation=Sum</c>. Processes that give a metric the
    /// same name but another definition must not share its values; a shared store records it (see
    /// <see cref="BackendCapabilities.RecordsSchema"/>).
    /// </summary>
    public string Definition => _definition ??= BuildDefinition();

    /// <summary>
    /// Contract 1.1: a short stable identifier of <see cref="Definition"/> (16 lowercase hex digits of its 64-bit FNV-1a
    /// hash over UTF-8), the same in every process and .NET version, for use in store keys.
    /// </summary>
    public string DefinitionId => _definitionId ??= HashDefinition(Definition);

    /// <summary>Returns a descriptor of the same metric for the series with <paramref name="labelValues"/>.</summary>
    /// <param name="labelValues">The full label values, one per label name.</param>
    /// <returns>A new descriptor sharing everything but the label values.</returns>
    public MetricDescriptor WithLabelValues(IReadOnlyList<string> labelValues) =>
        new(Name, Help, Type, LabelNames, labelValues, Buckets, GaugeAggregation) { NativeZeroThreshold = NativeZeroThreshold, Unit = Unit, ExposedAs = ExposedAs };

    private string BuildDefinition()
    {
        var text = new System.Text.StringBuilder();
        text.Append(Type.ToString().ToLowerInvariant()).Append(";labels=").AppendJoin(',', LabelNames);
        if (Buckets.Count > 0)
        {
            text.Append(";buckets=").AppendJoin(',', Buckets.Select(b => HistogramBucket.ForUpperBound(b).ToString()));
        }

        if (NativeZeroThreshold is { } zero)
        {
            text.Append(";native;zero=").Append(zero.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
        }

        if (Type == MetricType.Gauge)
        {
            text.Append(";aggregation=").Append(GaugeAggregation);
        }

        // Appended only when set, so definitions without them (and the stores keyed by them) stay as they were.
        if (Unit is not null)
        {
            text.Append(";unit=").Append(Unit);
        }

        // Last, so its free text cannot be mistaken for another field.
        if (ExposedAs is not null)
        {
            text.Append(";exposed=").Append(ExposedAs);
        }

        return text.ToString();
    }

    private static string HashDefinition(string definition)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(definition))
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        return hash.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Returns the name and label set, for messages and logs.</summary>
    /// <returns>Text such as <c>http_requests_total{method="GET"}</c>.</returns>
    public override string ToString()
    {
        if (LabelValues.Count == 0)
        {
            return Name;
        }

        var parts = new string[LabelValues.Count];
        for (var i = 0; i < parts.Length; i++)
        {
            parts[i] = $"{LabelNames[i]}=\"{LabelValues[i].Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)}\"";
        }

        return $"{Name}{{{string.Join(',', parts)}}}";
    }
}
