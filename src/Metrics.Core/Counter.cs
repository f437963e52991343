using System.Runtime.CompilerServices;

namespace Metrics;

/// <summary>A total that only goes up: requests served, bytes sent, errors seen.</summary>
/// <example>
/// <code>
/// var requests = new Counter("http_requests_total", "HTTP requests.", ["method", "status"]);
/// requests.Labels("GET", "200").Inc();
/// </code>
/// </example>
public sealed class Counter : Metric<Counter>
{
    private readonly IMetricBackend? _value;

    // The backend's value cell, when it has one: an increment is then one compare-and-swap here, no call. Read again
    // when the backend moved the value (the old word then holds AtomicDouble.MovedCell).
    private unsafe long* _cell;

    /// <summary>The constructor of earlier versions, kept for code compiled against them; new code gets the one with a unit.</summary>
    /// <param name="name">The metric name.</param>
    /// <param name="help">What it counts.</param>
    /// <param name="labelNames">The label names.</param>
    /// <param name="defaultLabels">Values used for labels a child does not set.</param>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public Counter(string name, string help, string[]? labelNames, IReadOnlyDictionary<string, string>? defaultLabels, MetricRegistry? registry)
        : this(name, help, labelNames, defaultLabels, registry, null)
    {
    }

    // When this series may take its next automatic exemplar (Environment.TickCount64); see MetricRegistry.AutomaticExemplars.
    private long _nextAutomaticExemplar;

    /// <summary>Creates a counter and registers it.</summary>
    /// <param name="name">The metric name; by convention ending in <c>_total</c>.</param>
    /// <param name="help">What it counts.</param>
    /// <param name="labelNames">The label names every observation must have values for.</param>
    /// <param name="defaultLabels">Values used for labels a child does not set.</param>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <param name="unit">
    /// The OpenMetrics unit (<c>seconds</c>, <c>bytes</c>...), shown as <c># UNIT</c> in OpenMetrics only; the name must
    /// end with <c>_&lt;unit&gt;</c> before <c>_total</c> (<c>request_duration_seconds_total</c>). None when null.
    /// </param>
    public Counter(string name, string help, string[]? labelNames = null, IReadOnlyDictionary<string, string>? defaultLabels = null, MetricRegistry? registry = null, string? unit = null)
        : this(MetricRegistry.CreateFamily(MetricType.Counter, name, help, labelNames, defaultLabels, registry, null, GaugeAggregation.Sum, unit: unit))
    {
    }

    /// <summary>The root of a family the registry keeps for itself, outside its names (the cardinality overflow counter).</summary>
    internal static Counter ForFamily(MetricFamily family) => new(family);

    private unsafe Counter(MetricFamily family)
        : base(family, new string?[family.LabelNames.Length], MetricRegistry.RootValues(family))
    {
        if (FullValues is not null && family.TryGetChild(FullValues, out var existing))
        {
            // The same metric created again: this object shares the registered series.
            var shared = (Counter)existing;
            _value = shared._value;
            _cell = shared._cell;
        }
        else if (FullValues is not null)
        {
            _value = CreateRootValues(CreateValue);
            _cell = (long*)_value.ValueCell;

            family.AddChild(this, FullValues);
        }
    }

    private unsafe Counter(MetricFamily family, string?[] setValues, string[]? fullValues)
        : base(family, setValues, fullValues)
    {
        if (fullValues is not null)
        {
            _value = CreateValue();
            _cell = (long*)_value.ValueCell;
        }
    }

    /// <summary>The current total, read from the backend.</summary>
    public double Value => (_value ?? ThrowNotObservableValue()).Get();

    internal IMetricBackend? Backing => _value;

    /// <summary>Adds <paramref name="value"/> (default 1).</summary>
    /// <param name="value">A non-negative amount.</param>
    /// <exception cref="ArgumentOutOfRangeException">The amount is negative or NaN.</exception>
    /// <exception cref="InvalidOperationException">Some label has no value yet.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
#pragma warning disable RS0027 // Shipped API keeps its optional parameter; Inc(value, exemplar) needs both arguments, so no call is ambiguous.
    public unsafe void Inc(double value = 1)
#pragma warning restore RS0027
    {
        var cell = _cell;
        if (cell != null && value >= 0)
        {
            if (AtomicDouble.TryAddToCell(ref *cell, value))
            {
                if (Family.Registry.AutoExemplars)
                {
                    ExemplarSupport.RecordAutomatic(Family, _value!, ref _nextAutomaticExemplar, value);
                }

                return;
            }
        }
        else if (_value is null || !(value >= 0))
        {
            ThrowInvalidInc(value);
        }

        IncThroughBackend(value, cell);
        if (Family.Registry.AutoExemplars)
        {
            ExemplarSupport.RecordAutomatic(Family, _value!, ref _nextAutomaticExemplar, value);
        }
    }

    /// <summary>
    /// Adds <paramref name="value"/> and stores <paramref name="exemplar"/> as this series' latest exemplar (shown in
    /// OpenMetrics scrapes after the <c>_total</c> sample). An empty exemplar adds only the value.
    /// </summary>
    /// <param name="value">A non-negative amount.</param>
    /// <param name="exemplar">The exemplar, validated when it was built; build it once and reuse it where you can.</param>
    /// <exception cref="ArgumentOutOfRangeException">The amount is negative or NaN.</exception>
    /// <exception cref="InvalidOperationException">Some label has no value yet.</exception>
    public unsafe void Inc(double value, in Exemplar exemplar)
    {
        if (_value is null || !(value >= 0))
        {
            ThrowInvalidInc(value);
        }

        if (exemplar.IsEmpty)
        {
            Inc(value);
            return;
        }

        // The value cell, as Inc(value) uses it: no call into the backend unless the compare-and-swap races.
        var cell = _cell;
        if (cell == null || !AtomicDouble.TryAddToCell(ref *cell, value))
        {
            IncThroughBackend(value, cell);
        }

        ExemplarSupport.Record(Family, _value!, exemplar, value);
    }

    /// <summary>Runs <paramref name="action"/> and counts 1 if it throws; the exception is rethrown.</summary>
    /// <param name="action">The code to watch.</param>
    public void CountExceptions(Action action) => CountExceptions<Exception>(action);

    /// <summary>Runs <paramref name="action"/> and counts 1 if it throws a <typeparamref name="TException"/>; every exception is rethrown.</summary>
    /// <typeparam name="TException">The exception type to count (derived types included).</typeparam>
    /// <param name="action">The code to watch.</param>
    public void CountExceptions<TException>(Action action)
        where TException : Exception
    {
        ArgumentNullException.ThrowIfNull(action);
        EnsureObservable();
        try
        {
            action();
        }
        catch (TException)
        {
            Inc();
            throw;
        }
    }

    /// <summary>Awaits <paramref name="action"/> and counts 1 if it throws; the exception is rethrown.</summary>
    /// <param name="action">The asynchronous code to watch.</param>
    /// <returns>A task completing as <paramref name="action"/>'s does.</returns>
    public Task CountExceptionsAsync(Func<Task> action) => CountExceptionsAsync<Exception>(action);

    /// <summary>Awaits <paramref name="action"/> and counts 1 if it throws a <typeparamref name="TException"/>; every exception is rethrown.</summary>
    /// <typeparam name="TException">The exception type to count (derived types included).</typeparam>
    /// <param name="action">The asynchronous code to watch.</param>
    /// <returns>A task completing as <paramref name="action"/>'s does.</returns>
    public async Task CountExceptionsAsync<TException>(Func<Task> action)
        where TException : Exception
    {
        ArgumentNullException.ThrowIfNull(action);
        EnsureObservable();
        try
        {
            await action().ConfigureAwait(false);
        }
        catch (TException)
        {
            Inc();
            throw;
        }
    }

    // The cell's compare-and-swap lost a race or found the value moved, or there is no cell: the backend adds, and a moved
    // value's new cell is taken for the next update.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private unsafe void IncThroughBackend(double value, long* cell)
    {
        _value!.Inc(value);
        if (cell != null && Volatile.Read(ref *cell) == AtomicDouble.MovedCell)
        {
            _cell = (long*)_value.ValueCell;
        }
    }

    private protected override Counter CreateChild(string?[] setValues, string[]? fullValues) => new(Family, setValues, fullValues);

    private IMetricBackend CreateValue()
    {
        MetricDescriptor? descriptor = null;
        return Family.CreateValue(FullValues!, null, ref descriptor);
    }

    private void EnsureObservable()
    {
        if (_value is null)
        {
            ThrowNotObservable();
        }
    }

    private IMetricBackend ThrowNotObservableValue()
    {
        ThrowNotObservable();
        return null!;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowInvalidInc(double value)
    {
        if (_value is null)
        {
            ThrowNotObservable();
        }

        throw new ArgumentOutOfRangeException(nameof(value), value, $"Counter '{Name}' can only go up: Inc needs a non-negative amount. Use a Gauge for values that go down.");
    }
}
