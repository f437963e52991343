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

/// <summary>One counter or gauge family produced by an <see cref="ICollector"/>.</summary>
public sealed class MetricSnapshot
{
    /// <summary>Creates a snapshot.</summary>
    /// <param name="name">The metric name (the registry prefix is added).</param>
    /// <param name="help">The help text.</param>
    /// <param name="type"><see cref="MetricType.Counter"/> or <see cref="MetricType.Gauge"/>.</param>
    /// <param name="labelNames">The label names of every sample.</param>
    /// <param name="samples">One sample per label set.</param>
    public MetricSnapshot(string name, string help, MetricType type, IReadOnlyList<string> labelNames, IReadOnlyList<Sample> samples)
    {
        NameRules.ValidateMetricName(name, nameof(name));
        ArgumentNullException.ThrowIfNull(help);
        ArgumentNullException.ThrowIfNull(labelNames);
        ArgumentNullException.ThrowIfNull(samples);
        if (type is not (MetricType.Counter or MetricType.Gauge))
        {
            throw new ArgumentException($"Collected metric '{name}' is a {type}; custom collectors yield counters and gauges.", nameof(type));
        }

        foreach (var label in labelNames)
        {
            NameRules.ValidateLabelName(name, label, nameof(labelNames));
        }

        foreach (var sample in samples)
        {
            if (sample.LabelValues is null || sample.LabelValues.Count != labelNames.Count)
            {
                throw new ArgumentException($"A sample of collected metric '{name}' has {sample.LabelValues?.Count ?? 0} label values for {labelNames.Count} label names.", nameof(samples));
            }

            for (var i = 0; i < labelNames.Count; i++)
            {
                if (sample.LabelValues[i] is null)
                {
                    throw new ArgumentException($"A sample of collected metric '{name}' has a null value for label '{labelNames[i]}'; use an empty string for an empty value.", nameof(samples));
                }
            }
        }

        Name = name;
        Help = help;
        Type = type;
        LabelNames = labelNames;
        Samples = samples;
    }

    /// <summary>The metric name.</summary>
    public string Name { get; }

    /// <summary>The help text.</summary>
    public string Help { get; }

    /// <summary>Counter or gauge.</summary>
    public MetricType Type { get; }

    /// <summary>The label names.</summary>
    public IReadOnlyList<string> LabelNames { get; }

    /// <summary>The samples.</summary>
    public IReadOnlyList<Sample> Samples { get; }

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
}

/// <summary>One sample of a <see cref="MetricSnapshot"/>.</summary>
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

/// <summary>What every exposition format does with a collector's output.</summary>
internal static class CollectorExtensions
{
    /// <summary>The collector's snapshots, refusing a metric it did not declare (the registry checked only the declared names).</summary>
    public static IEnumerable<MetricSnapshot> CollectDeclared(this ICollector collector)
    {
        var declared = collector.MetricNames;
        foreach (var snapshot in collector.Collect())
        {
            if (!declared.Contains(snapshot.Name))
            {
                throw new InvalidOperationException($"Collector {collector.GetType().Name} yielded metric '{snapshot.Name}', which it does not declare in MetricNames.");
            }

            yield return snapshot;
        }
    }
}
