namespace Metrics;

/// <summary>
/// Facts about the process or build as labels, with the constant value 1: version, commit, runtime. Exposed as an
/// OpenMetrics <c>info</c> family (<c>build_info{version="1.2"} 1</c>) and as a gauge in text 0.0.4 and protobuf.
/// </summary>
/// <remarks>
/// Each label set is one series of value 1, created by <see cref="Set"/> (or <c>Labels(...)</c>). In a shared backend every
/// process's label sets show in every scrape; with a <c>Live</c> aggregation those of exited processes disappear.
/// </remarks>
/// <example>
/// <code>
/// var build = new Info("build", "Build of this service.", ["version", "commit"]);
/// build.Set("1.4.2", "9f1c2e7");   // build_info{version="1.4.2",commit="9f1c2e7"} 1
/// </code>
/// </example>
public sealed class Info : Metric<Info>
{
    private readonly IMetricBackend? _value;

    /// <summary>Creates an info metric and registers it.</summary>
    /// <param name="name">The metric name, with or without the <c>_info</c> suffix: samples are always named <c>&lt;name&gt;_info</c>.</param>
    /// <param name="help">What the labels describe.</param>
    /// <param name="labelNames">The names of the facts.</param>
    /// <param name="defaultLabels">Values used for labels a child does not set; with a value for every label the series exists at once.</param>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <param name="aggregation">
    /// How processes sharing a backend combine: the default <see cref="GaugeAggregation.MostRecent"/> keeps the label sets
    /// of every process, exited ones included; <see cref="GaugeAggregation.LiveMostRecent"/> drops those of exited
    /// processes; the per-process modes add a <c>pid</c> label.
    /// </param>
    public Info(string name, string help, string[]? labelNames = null, IReadOnlyDictionary<string, string>? defaultLabels = null, MetricRegistry? registry = null, GaugeAggregation aggregation = GaugeAggregation.MostRecent)
        : this(MetricRegistry.CreateFamily(MetricType.Gauge, name, help, labelNames, defaultLabels, registry, null, aggregation, kind: FamilyKind.Info))
    {
    }

    private Info(MetricFamily family)
        : base(family, new string?[family.LabelNames.Length], MetricRegistry.RootValues(family))
    {
        if (FullValues is not null && family.TryGetChild(FullValues, out var existing))
        {
            _value = ((Info)existing)._value;
        }
        else if (FullValues is not null)
        {
            _value = CreateRootValues(CreateValue);
            family.AddChild(this, FullValues);
        }
    }

    private Info(MetricFamily family, string?[] setValues, string[]? fullValues)
        : base(family, setValues, fullValues)
    {
        if (fullValues is not null)
        {
            _value = CreateValue();
        }
    }

    internal IMetricBackend? BackingValue => _value;

    /// <summary>Shows the info with these label values (value 1), in declaration order as for <c>Labels(...)</c>.</summary>
    /// <param name="values">The label values.</param>
    /// <returns>The series.</returns>
    public Info Set(params ReadOnlySpan<string> values)
    {
        var child = Labels(values);
        if (child._value is null)
        {
            child.ThrowNotObservable();
        }

        return child;
    }

    private protected override Info CreateChild(string?[] setValues, string[]? fullValues) => new(Family, setValues, fullValues);

    private IMetricBackend CreateValue()
    {
        MetricDescriptor? descriptor = null;
        var value = Family.CreateValue(FullValues!, null, ref descriptor);

        // Written, not only created: in a shared store the write is what makes this process's label set show.
        value.Set(1);
        return value;
    }
}
