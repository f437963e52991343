using System.Text;

namespace Metrics;

/// <summary>
/// A fixed set of named states, each true or false: feature flags, the phases a job may be in. Exposed as an
/// OpenMetrics <c>stateset</c> (<c>flags{flags="dark_mode"} 1</c>, one sample per state, the state in a label named after
/// the metric) and as a gauge in text 0.0.4 and protobuf. For exactly one true state, use <see cref="EnumMetric"/>.
/// </summary>
/// <remarks>
/// The states are declared when the metric is created and are part of its definition. Each state is stored as a gauge
/// of 1 or 0, so every backend holds state sets; processes sharing a backend combine each state as
/// <see cref="GaugeAggregation"/> says (by default the most recent write of any process wins). A state is shown true
/// when its combined value is not 0.
/// </remarks>
/// <example>
/// <code>
/// var flags = new StateSet("feature_flags", "Feature flags in force.", ["dark_mode", "beta_search"]);
/// flags.Set("dark_mode", true);
/// </code>
/// </example>
public sealed class StateSet : Metric<StateSet>
{
    private readonly StateValues? _values;

    /// <summary>Creates a state set and registers it.</summary>
    /// <param name="name">The metric name; also the name of the label holding the state, so it may not contain ':'.</param>
    /// <param name="help">What the states describe.</param>
    /// <param name="states">The states, at least one, distinct; any text.</param>
    /// <param name="labelNames">The label names every observation must have values for (not the metric's own name).</param>
    /// <param name="defaultLabels">Values used for labels a child does not set.</param>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <param name="aggregation">
    /// How processes sharing a backend combine each state: by default <see cref="GaugeAggregation.MostRecent"/>, the last
    /// write of any process wins; <see cref="GaugeAggregation.LiveMax"/> shows a state true while any live process has it
    /// true; the per-process modes add a <c>pid</c> label.
    /// </param>
    /// <exception cref="ArgumentException">No states, a state given twice or null, or a label named after the metric.</exception>
    public StateSet(string name, string help, IReadOnlyList<string> states, string[]? labelNames = null, IReadOnlyDictionary<string, string>? defaultLabels = null, MetricRegistry? registry = null, GaugeAggregation aggregation = GaugeAggregation.MostRecent)
        : this(StateValues.CreateFamily("State set", name, help, states, labelNames, defaultLabels, registry, aggregation))
    {
    }

    private StateSet(MetricFamily family)
        : base(family, new string?[family.LabelNames.Length], MetricRegistry.RootValues(family))
    {
        if (FullValues is not null && family.TryGetChild(FullValues, out var existing))
        {
            _values = ((StateSet)existing)._values;
        }
        else if (FullValues is not null)
        {
            _values = CreateRootValues(() => new StateValues(family, FullValues));
            family.AddChild(this, FullValues);
        }
    }

    private StateSet(MetricFamily family, string?[] setValues, string[]? fullValues)
        : base(family, setValues, fullValues)
    {
        if (fullValues is not null)
        {
            _values = new StateValues(family, fullValues);
        }
    }

    /// <summary>The declared states, in order.</summary>
    public IReadOnlyList<string> States => Family.States;

    internal StateValues? Values => _values;

    /// <summary>Sets one state true or false; the others keep their value.</summary>
    /// <param name="state">One of <see cref="States"/>.</param>
    /// <param name="value">Whether the state holds.</param>
    /// <exception cref="ArgumentException">The state is not declared.</exception>
    public void Set(string state, bool value) => Backing().Values[Backing().IndexOf(state)].Set(value ? 1 : 0);

    /// <summary>Whether <paramref name="state"/> is true, read from the backend (in a shared one: combined over processes).</summary>
    /// <param name="state">One of <see cref="States"/>.</param>
    /// <returns>True when the stored value is not 0.</returns>
    /// <exception cref="ArgumentException">The state is not declared.</exception>
    public bool Get(string state) => StateValues.IsTrue(Backing().Values[Backing().IndexOf(state)].Get());

    private protected override StateSet CreateChild(string?[] setValues, string[]? fullValues) => new(Family, setValues, fullValues);

    private StateValues Backing()
    {
        if (_values is null)
        {
            ThrowNotObservable();
        }

        return _values!;
    }
}

/// <summary>
/// A state set in which exactly one state is true, as client_python's <c>Enum</c>: the state of a service or a circuit
/// breaker. Exposed as an OpenMetrics <c>stateset</c>, and as a gauge in text 0.0.4 and protobuf.
/// </summary>
/// <remarks>
/// No state is true until <see cref="State"/> is first called: a process that only declares the metric (to scrape it,
/// say) does not change what other processes set. <see cref="State"/> writes every state, the chosen one 1 and the
/// others 0. Across processes sharing a backend, with the default <see cref="GaugeAggregation.MostRecent"/>, the process
/// that called <see cref="State"/> last wins; two processes calling it at the same moment may leave the states of both
/// true until the next call. Use <see cref="GaugeAggregation.LivePerProcess"/> to see each process's state under a
/// <c>pid</c> label instead.
/// </remarks>
/// <example>
/// <code>
/// var status = new EnumMetric("service_state", "Lifecycle state.", ["starting", "running", "stopping"]);
/// status.State("running");
/// </code>
/// </example>
public sealed class EnumMetric : Metric<EnumMetric>
{
    private readonly StateValues? _values;

    /// <summary>Creates an enum metric and registers it.</summary>
    /// <param name="name">The metric name; also the name of the label holding the state, so it may not contain ':'.</param>
    /// <param name="help">What the states describe.</param>
    /// <param name="states">The states, at least one, distinct; any text.</param>
    /// <param name="labelNames">The label names every observation must have values for (not the metric's own name).</param>
    /// <param name="defaultLabels">Values used for labels a child does not set.</param>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <param name="aggregation">How processes sharing a backend combine; see the remarks of <see cref="EnumMetric"/>.</param>
    /// <exception cref="ArgumentException">No states, a state given twice or null, or a label named after the metric.</exception>
    public EnumMetric(string name, string help, IReadOnlyList<string> states, string[]? labelNames = null, IReadOnlyDictionary<string, string>? defaultLabels = null, MetricRegistry? registry = null, GaugeAggregation aggregation = GaugeAggregation.MostRecent)
        : this(StateValues.CreateFamily("Enum", name, help, states, labelNames, defaultLabels, registry, aggregation))
    {
    }

    private EnumMetric(MetricFamily family)
        : base(family, new string?[family.LabelNames.Length], MetricRegistry.RootValues(family))
    {
        if (FullValues is not null && family.TryGetChild(FullValues, out var existing))
        {
            _values = ((EnumMetric)existing)._values;
        }
        else if (FullValues is not null)
        {
            _values = CreateRootValues(() => new StateValues(family, FullValues));
            family.AddChild(this, FullValues);
        }
    }

    private EnumMetric(MetricFamily family, string?[] setValues, string[]? fullValues)
        : base(family, setValues, fullValues)
    {
        if (fullValues is not null)
        {
            _values = new StateValues(family, fullValues);
        }
    }

    /// <summary>The declared states, in order.</summary>
    public IReadOnlyList<string> States => Family.States;

    /// <summary>The state that is true, read from the backend; the first in declaration order if several are, null if none is.</summary>
    public string? CurrentState
    {
        get
        {
            var values = Backing().Values;
            for (var i = 0; i < values.Length; i++)
            {
                if (StateValues.IsTrue(values[i].Get()))
                {
                    return Family.States[i];
                }
            }

            return null;
        }
    }

    internal StateValues? Values => _values;

    /// <summary>Makes <paramref name="state"/> the one true state: every other state is set to 0, then this one to 1.</summary>
    /// <param name="state">One of <see cref="States"/>.</param>
    /// <exception cref="ArgumentException">The state is not declared.</exception>
    public void State(string state)
    {
        var backing = Backing();
        var chosen = backing.IndexOf(state);
        var values = backing.Values;
        for (var i = 0; i < values.Length; i++)
        {
            if (i != chosen)
            {
                values[i].Set(0);
            }
        }

        // Last, so a scrape in between sees no state rather than two.
        values[chosen].Set(1);
    }

    private protected override EnumMetric CreateChild(string?[] setValues, string[]? fullValues) => new(Family, setValues, fullValues);

    private StateValues Backing()
    {
        if (_values is null)
        {
            ThrowNotObservable();
        }

        return _values!;
    }
}

/// <summary>The stored values of one state set series: one gauge per state, each labelled with its state.</summary>
internal sealed class StateValues
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);
    private readonly MetricFamily _family;
    private readonly string[] _fullValues;
    private byte[][]? _labels;

    public StateValues(MetricFamily family, string[] fullValues)
    {
        _family = family;
        _fullValues = fullValues;
        var states = family.States;
        Values = new IMetricBackend[states.Length];
        for (var i = 0; i < states.Length; i++)
        {
            MetricDescriptor? descriptor = family.Descriptor.WithLabelValues([.. fullValues, states[i]]);
            Values[i] = family.CreateValue(fullValues, null, ref descriptor);
        }
    }

    /// <summary>One value per state, in declaration order.</summary>
    public IMetricBackend[] Values { get; }

    /// <summary>The rendered labels of each state's sample: the series' labels and the state label.</summary>
    public byte[][] LabelBytes => _labels ??= [.. _family.States.Select(state => Metric.RenderLabels(_family.BackendLabelNames, [.. _fullValues, state]))];

    /// <summary>The label values of each state's stored value: the series' and the state.</summary>
    public string[] StateLabelValues(int state) => [.. _fullValues, _family.States[state]];

    public static bool IsTrue(double value) => value != 0 && !double.IsNaN(value);

    public static MetricFamily CreateFamily(string what, string name, string help, IReadOnlyList<string> states, string[]? labelNames, IReadOnlyDictionary<string, string>? defaultLabels, MetricRegistry? registry, GaugeAggregation aggregation)
    {
        ArgumentNullException.ThrowIfNull(states);
        if (states.Count == 0)
        {
            throw new ArgumentException($"{what} '{name}' declares no states. Give at least one, for example [\"starting\", \"running\"].", nameof(states));
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var state in states)
        {
            if (state is null)
            {
                throw new ArgumentException($"{what} '{name}' has a null state; states may be any text, including empty, but not null.", nameof(states));
            }

            if (!seen.Add(state))
            {
                throw new ArgumentException($"State '{state}' appears twice in {what.ToLowerInvariant()} '{name}'. Declare each state once.", nameof(states));
            }

            try
            {
                _ = StrictUtf8.GetByteCount(state);
            }
            catch (EncoderFallbackException)
            {
                throw new ArgumentException($"State '{state}' of {what.ToLowerInvariant()} '{name}' contains an unpaired UTF-16 surrogate, which cannot be exposed as UTF-8. Pass valid Unicode text.", nameof(states));
            }
        }

        return MetricRegistry.CreateFamily(MetricType.Gauge, name, help, labelNames, defaultLabels, registry, null, aggregation, kind: FamilyKind.StateSet, states: [.. states]);
    }

    /// <summary>The index of <paramref name="state"/>, or an exception listing the declared states.</summary>
    public int IndexOf(string state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var index = Array.IndexOf(_family.States, state);
        if (index < 0)
        {
            throw new ArgumentException($"'{state}' is not a state of '{_family.Name}'. Its states are [{string.Join(", ", _family.States)}]; states are declared when the metric is created.", nameof(state));
        }

        return index;
    }
}
