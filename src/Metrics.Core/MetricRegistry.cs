namespace Metrics;

/// <summary>
/// A set of metrics exposed together on one <c>/metrics</c> endpoint. Metrics register in
/// <see cref="Default"/> unless given another registry.
/// </summary>
/// <remarks>
/// Metric names are unique per registry: creating a second metric with a name in use throws. A registry may
/// have a name prefix (<c>new MetricRegistry("myapp")</c> exposes <c>requests_total</c> as
/// <c>myapp_requests_total</c>) and its own backend.
/// <para>
/// A registry created with a backend owns a share of it: disposing the last registry created with a configured backend
/// flushes and releases that backend (its <c>ShutdownAsync</c>). Concurrent scrapes of one registry share one read of
/// its shared backends.
/// </para>
/// </remarks>
public sealed class MetricRegistry : IDisposable, IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly ConfiguredBackend? _backend;
    private readonly Dictionary<string, object> _byName = new(StringComparer.Ordinal);
    private readonly ScrapeCollector _collector;
    private object[] _entries = [];
    private Action[] _collectCallbacks = [];
    private long _skippedValues;
    private int _disposed;
    private int? _cardinalityLimit;
    private Counter? _overflowCounter;
    private static int s_defaultCardinalityLimit = 2000;

    /// <summary>Creates a registry.</summary>
    /// <param name="prefix">Prepended with '_' to every metric name; none when null or empty.</param>
    /// <param name="backend">The backend for this registry's metrics; <see cref="ConfiguredBackend.Default"/> when null.</param>
    public MetricRegistry(string? prefix = null, ConfiguredBackend? backend = null)
    {
        if (!string.IsNullOrEmpty(prefix))
        {
            NameRules.ValidateMetricName(prefix, nameof(prefix));
        }

        Prefix = string.IsNullOrEmpty(prefix) ? null : prefix;
        _backend = backend;
        backend?.Lifetime.AddOwner();
        _collector = new ScrapeCollector(this);
    }

    /// <summary>
    /// Whether counter increments and histogram observations without an explicit exemplar take one from the current trace
    /// (<see cref="System.Diagnostics.Activity.Current"/>: <c>trace_id</c> and <c>span_id</c>). Only sampled activities
    /// (<see cref="System.Diagnostics.Activity.Recorded"/>) give one, and each series takes at most one per
    /// <see cref="AutomaticExemplarInterval"/>. Off by default; hosting turns it on with <c>Metrics:Exemplars:Automatic</c>.
    /// </summary>
    public bool AutomaticExemplars
    {
        get => AutoExemplars;
        set => AutoExemplars = value;
    }

    /// <summary>
    /// The least time between two automatic exemplars of one series (counter child or histogram child): 100 ms by default,
    /// so a hot series stores at most ten a second, and a scrape every 15 s still finds a recent one in every bucket.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative, or over a day.</exception>
    public TimeSpan AutomaticExemplarInterval
    {
        get => TimeSpan.FromMilliseconds(AutomaticExemplarIntervalMs);
        set
        {
            if (value < TimeSpan.Zero || value > TimeSpan.FromDays(1))
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, "The automatic exemplar interval must be between 0 and one day, for example 100 ms.");
            }

            AutomaticExemplarIntervalMs = (long)value.TotalMilliseconds;
        }
    }

    // A plain field read on every update of every counter and histogram: kept next to nothing else that changes.
    internal bool AutoExemplars;

    internal long AutomaticExemplarIntervalMs = 100;

    /// <summary>The registry metrics use when none is given.</summary>
    public static MetricRegistry Default { get; } = new();

    /// <summary>
    /// The cardinality limit of every family whose metric and registry set none: 2,000 series per family (as
    /// OpenTelemetry's default per instrument), or <c>Metrics:CardinalityLimit</c> when configured. Past it, new label
    /// sets are folded into one overflow series (see <see cref="Metric.CardinalityLimit"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to less than 1.</exception>
    public static int DefaultCardinalityLimit
    {
        get => Volatile.Read(ref s_defaultCardinalityLimit);
        set => Volatile.Write(ref s_defaultCardinalityLimit, ValidateCardinalityLimit(value, nameof(value)));
    }

    /// <summary>
    /// The cardinality limit of this registry's families that set none themselves, or null (the default) for
    /// <see cref="DefaultCardinalityLimit"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to less than 1.</exception>
    public int? CardinalityLimit
    {
        get => _cardinalityLimit;
        set => _cardinalityLimit = value is null ? null : ValidateCardinalityLimit(value.Value, nameof(value));
    }

    /// <summary>The name prefix, or null.</summary>
    public string? Prefix { get; }

    /// <summary>The backend this registry's metrics store their values in.</summary>
    public ConfiguredBackend Backend => _backend ?? ConfiguredBackend.Default;

    /// <summary>The metric families and collectors registered, in registration order.</summary>
    internal IReadOnlyList<object> Entries => Volatile.Read(ref _entries);

    /// <summary>The exposed names of every registered metric and collector, in registration order.</summary>
    public IReadOnlyList<string> MetricNames
    {
        get
        {
            lock (_lock)
            {
                return Volatile.Read(ref _entries).SelectMany(e => e is MetricFamily f ? [f.Name] : ((ICollector)e).MetricNames.Select(Expose)).ToArray();
            }
        }
    }

    /// <summary>Registers a custom collector.</summary>
    /// <param name="collector">The collector.</param>
    /// <exception cref="ArgumentException">One of its names is registered already.</exception>
    public void Register(ICollector collector)
    {
        ArgumentNullException.ThrowIfNull(collector);
        var names = collector.MetricNames.Select(n =>
        {
            NameRules.ValidateMetricName(n, nameof(collector));
            return Expose(n);
        }).ToArray();
        lock (_lock)
        {
            foreach (var name in names)
            {
                ThrowIfTaken(name);
            }

            foreach (var name in names)
            {
                _byName[name] = collector;
            }

            Volatile.Write(ref _entries, [.. _entries, collector]);
        }
    }

    /// <summary>
    /// Registers <paramref name="callback"/> to run at the start of every read of this registry's values for a scrape,
    /// before the backends are read: for code that records into metrics on demand (observable instruments, process
    /// statistics). Concurrent scrapes sharing one read run it once. An exception from it fails the scrape.
    /// </summary>
    /// <param name="callback">The callback; keep it short, scrapes wait for it.</param>
    /// <returns>Dispose it to remove the callback.</returns>
    public IDisposable AddCollectCallback(Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        lock (_lock)
        {
            Volatile.Write(ref _collectCallbacks, [.. _collectCallbacks, callback]);
        }

        return new CallbackRegistration(this, callback);
    }

    /// <summary>Removes a metric (with all its children) from the registry; it is no longer exposed.</summary>
    /// <param name="metric">The metric or any of its children.</param>
    /// <returns>Whether it was registered.</returns>
    public bool Unregister(Metric metric)
    {
        ArgumentNullException.ThrowIfNull(metric);
        return Remove(metric.Family, metric.Family.ExposedNames);
    }

    /// <summary>Removes a custom collector.</summary>
    /// <param name="collector">The collector.</param>
    /// <returns>Whether it was registered.</returns>
    public bool Unregister(ICollector collector)
    {
        ArgumentNullException.ThrowIfNull(collector);
        return Remove(collector, collector.MetricNames.Select(Expose).ToArray());
    }

    /// <summary>Renders the registry in <paramref name="format"/> as a string (for tests and debugging; servers use <see cref="WriteAsync"/>).</summary>
    /// <param name="format">The exposition format.</param>
    /// <returns>The exposition text.</returns>
    /// <remarks>Blocks while shared backends are read.</remarks>
    /// <exception cref="ArgumentException"><paramref name="format"/> is the binary protobuf format, which is no text; use <see cref="WriteAsync"/>.</exception>
    public string Render(ExpositionFormat format = ExpositionFormat.PrometheusText)
    {
        if (format == ExpositionFormat.Protobuf)
        {
            throw new ArgumentException("The protobuf format is binary and cannot be rendered as a string; use WriteAsync to a stream.", nameof(format));
        }

        using var output = ExpositionWriter.Render(this, _collector.Collect(), format);
        return System.Text.Encoding.UTF8.GetString(output.Written);
    }

    /// <summary>Writes every metric in <paramref name="format"/> as UTF-8 to <paramref name="destination"/>.</summary>
    /// <param name="destination">The stream; not closed.</param>
    /// <param name="format">The exposition format.</param>
    /// <param name="cancellationToken">Cancels the read and the write.</param>
    /// <returns>A task completing when everything is written.</returns>
    /// <remarks>
    /// All backend reads happen before the first byte is written, so a failing backend throws without leaving partial
    /// text. Concurrent calls share one read of the shared backends.
    /// </remarks>
    public async Task WriteAsync(Stream destination, ExpositionFormat format = ExpositionFormat.PrometheusText, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        using var output = await RenderAsync(format, cancellationToken).ConfigureAwait(false);
        await destination.WriteAsync(output.WrittenMemory, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Releases this registry's share of the backend it was created with; the last registry of a configured backend
    /// flushes and releases it. Metrics keep working in memory afterwards but are no longer stored.
    /// </summary>
    /// <returns>A task completing when the backend is released.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0 && _backend is not null)
        {
            await _backend.Lifetime.ReleaseOwnerAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>Releases the registry's share of its backend, blocking (see <see cref="DisposeAsync"/>).</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Reads the backends (sharing a read in flight) and renders; the caller disposes the buffer.</summary>
    internal async Task<ExpositionBuffer> RenderAsync(ExpositionFormat format, CancellationToken cancellationToken)
    {
        var scrape = await _collector.CollectAsync(cancellationToken).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return ExpositionWriter.Render(this, scrape, format);
    }

    /// <summary>
    /// Reads several registries at once and renders them as one exposition (the caller disposes the buffer); a family name
    /// in two of them is an error rather than a response Prometheus would reject or merge wrongly.
    /// </summary>
    /// <exception cref="InvalidOperationException">Two registries expose the same name.</exception>
    internal static async Task<ExpositionBuffer> RenderAsync(IReadOnlyList<MetricRegistry> registries, ExpositionFormat format, CancellationToken cancellationToken)
    {
        if (registries.Count == 1)
        {
            return await registries[0].RenderAsync(format, cancellationToken).ConfigureAwait(false);
        }

        ThrowIfSharedNames(registries);
        var scrapes = await Task.WhenAll(registries.Select(r => r._collector.CollectAsync(cancellationToken))).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return ExpositionWriter.Render(registries.Select((r, i) => (r, scrapes[i])).ToArray(), format);
    }

    private static void ThrowIfSharedNames(IReadOnlyList<MetricRegistry> registries)
    {
        var owners = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < registries.Count; i++)
        {
            if (registries.Take(i).Any(r => ReferenceEquals(r, registries[i])))
            {
                throw new InvalidOperationException($"The same registry is served twice in one response (positions {registries.Take(i).ToList().FindIndex(r => ReferenceEquals(r, registries[i])) + 1} and {i + 1}); list each registry once.");
            }

            (string Name, string Metric)[] names;
            lock (registries[i]._lock)
            {
                names = [.. registries[i]._byName.Select(pair => (pair.Key, pair.Value is MetricFamily family ? family.Name : pair.Key))];
            }

            foreach (var (name, metric) in names)
            {
                if (owners.TryGetValue(name, out var other))
                {
                    throw new InvalidOperationException(
                        $"The metric name '{metric}' is in two of the registries served together ({Describe(registries[other], other)} and {Describe(registries[i], i)}), so one response would hold two families of that name. Rename one of the metrics, give one registry a prefix (new MetricRegistry(prefix: \"...\")), or serve the registries on separate endpoints.");
                }
            }

            foreach (var (name, _) in names)
            {
                owners[name] = i;
            }
        }

        static string Describe(MetricRegistry registry, int index) =>
            registry.Prefix is null ? $"registry #{index + 1}{(ReferenceEquals(registry, Default) ? " (the default registry)" : string.Empty)}" : $"registry #{index + 1} with prefix '{registry.Prefix}'";
    }

    /// <summary>How many backend reads scrapes of this registry have started (concurrent scrapes share one).</summary>
    internal long BackendReads => _collector.Reads;

    internal void RunCollectCallbacks()
    {
        foreach (var callback in Volatile.Read(ref _collectCallbacks))
        {
            callback();
        }
    }

    /// <summary>
    /// <c>metrics_cardinality_overflow_total{metric}</c>: label sets this registry's families refused, stored through the
    /// registry's backend like any counter, so a shared store sums every process's refusals. Kept outside the registry's
    /// names (an application may use the name itself) and without the prefix; scrapes show it through
    /// <see cref="ExpositionWriter.Overflows"/>.
    /// </summary>
    internal Counter OverflowCounter
    {
        get
        {
            if (Volatile.Read(ref _overflowCounter) is { } counter)
            {
                return counter;
            }

            lock (_lock)
            {
                if (_overflowCounter is null)
                {
                    var family = new MetricFamily(MetricType.Counter, ExpositionWriter.OverflowName, ExpositionWriter.OverflowHelp, ["metric"], null, this, null, GaugeAggregation.Sum, unprefixed: true)
                    {
                        Backend = _backend ?? ConfiguredBackend.UseDefault(),
                        // One series per family of the registry, which is bounded already; never folded into an overflow of its own.
                        CardinalityLimit = int.MaxValue,
                    };
                    Volatile.Write(ref _overflowCounter, Counter.ForFamily(family));
                }

                return _overflowCounter!;
            }
        }
    }

    /// <summary>
    /// The overflow counter's family for a scrape to read: on a shared backend always (other processes' refusals are in the
    /// store), else only once this registry refused a label set.
    /// </summary>
    internal MetricFamily? OverflowFamilyToRead()
    {
        if (Volatile.Read(ref _overflowCounter) is { } counter)
        {
            return counter.Family;
        }

        var backend = _backend ?? ConfiguredBackend.Default;
        return (backend.Capabilities & BackendCapabilities.SharedAcrossProcesses) != 0 && Entries.Any(e => e is MetricFamily)
            ? OverflowCounter.Family
            : null;
    }

    internal static int ValidateCardinalityLimit(int limit, string parameter) =>
        limit >= 1
            ? limit
            : throw new ArgumentOutOfRangeException(parameter, limit, $"A cardinality limit must be at least 1 series per family; {limit} would refuse every series. Use int.MaxValue for no limit.");

    internal long SkippedValues => Interlocked.Read(ref _skippedValues);

    internal void AddSkippedValues(long count)
    {
        if (count > 0)
        {
            Interlocked.Add(ref _skippedValues, count);
        }
    }

    internal static MetricFamily CreateFamily(MetricType type, string name, string help, string[]? labelNames, IReadOnlyDictionary<string, string>? defaultLabels, MetricRegistry? registry, double[]? buckets, GaugeAggregation aggregation, NativeHistogramOptions? native = null, string? unit = null, FamilyKind kind = FamilyKind.Plain, string[]? states = null)
    {
        registry ??= Default;
        var family = new MetricFamily(type, name, help, labelNames, defaultLabels, registry, buckets, aggregation, native, unit, kind, states);
        return registry.Add(family);
    }

    /// <summary>The root instance's full values when every label has a default (or there are none), else null.</summary>
    internal static string[]? RootValues(MetricFamily family)
    {
        var values = new string[family.LabelNames.Length];
        for (var i = 0; i < values.Length; i++)
        {
            var value = family.Defaults[i];
            if (value is null)
            {
                return null;
            }

            values[i] = value;
        }

        return values;
    }

    /// <summary>Registers <paramref name="family"/>, or returns the registered family with the same definition.</summary>
    private MetricFamily Add(MetricFamily family)
    {
        lock (_lock)
        {
            // The same definition again (a DI service constructed twice, a second Meter instance with the same instrument)
            // shares the registered family and its series instead of failing.
            if (_byName.TryGetValue(family.ExposedNames[0], out var registered) && registered is MetricFamily existing && existing.SameDefinition(family))
            {
                return existing;
            }

            foreach (var name in family.ExposedNames)
            {
                ThrowIfTaken(name, family);
            }

            family.Backend = _backend ?? ConfiguredBackend.UseDefault();
            foreach (var name in family.ExposedNames)
            {
                _byName[name] = family;
            }
            Volatile.Write(ref _entries, [.. _entries, family]);
            return family;
        }
    }

    private bool Remove(object entry, string[] names)
    {
        lock (_lock)
        {
            if (!_entries.Contains(entry))
            {
                return false;
            }

            foreach (var name in names)
            {
                _byName.Remove(name);
            }

            Volatile.Write(ref _entries, _entries.Where(e => !ReferenceEquals(e, entry)).ToArray());
            return true;
        }
    }

    internal bool IsRegistered(string name)
    {
        lock (_lock)
        {
            return _byName.ContainsKey(name);
        }
    }

    private void ThrowIfTaken(string name, MetricFamily? candidate = null)
    {
        if (_byName.TryGetValue(name, out var existing))
        {
            var what = existing is MetricFamily f ? $"a{(f.TypeText[0] == 'i' ? "n" : string.Empty)} {f.TypeText}" : "a custom collector";
            var owner = existing is MetricFamily of ? $" '{of.Name}'" : string.Empty;
            var difference = candidate is not null && existing is MetricFamily ef && ef.Name == candidate.Name ? $" with another definition ({ef.DescribeDifference(candidate)})" : string.Empty;
            throw new ArgumentException(
                $"The name '{name}' is already used by {what}{owner}{difference} in this registry (a counter also exposes <name>_total and <name>_created, a histogram <name>_bucket, _count, _sum and _created). Creating a metric again with exactly the same type, name, help, unit, labels, defaults and buckets shares it; otherwise reuse the existing metric object, choose another name, or Unregister the old one first.");
        }
    }

    private sealed class CallbackRegistration(MetricRegistry registry, Action callback) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }

            lock (registry._lock)
            {
                var callbacks = registry._collectCallbacks.ToList();
                callbacks.Remove(callback);
                Volatile.Write(ref registry._collectCallbacks, callbacks.ToArray());
            }
        }
    }

    private string Expose(string name) => Prefix is null ? name : $"{Prefix}_{name}";
}
