using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Metrics.Extensions.Hosting;

/// <summary>Which System.Diagnostics.Metrics instruments a <see cref="MeterBridge"/> publishes, and how often it observes.</summary>
public sealed class MeterBridgeOptions
{
    /// <summary>Meter-name prefixes to publish; every meter when empty.</summary>
    public IList<string> IncludeMeters { get; } = [];

    /// <summary>Meter-name prefixes never published; they win over <see cref="IncludeMeters"/>.</summary>
    public IList<string> ExcludeMeters { get; } = [];

    /// <summary>
    /// How often observable instruments are recorded into a shared backend, so that every process's values reach the
    /// store without a scrape in that process. Five seconds by default; <see cref="TimeSpan.Zero"/> records them only when
    /// this process's registry is scraped. In-process backends are only recorded at scrape time.
    /// </summary>
    public TimeSpan CollectionInterval { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// Publishes System.Diagnostics.Metrics instruments (the runtime's, ASP.NET Core's, HttpClient's, the application's own)
/// into a <see cref="MetricRegistry"/>, so into whichever backend it uses: with a shared backend they are aggregated across
/// processes.
/// </summary>
/// <remarks>
/// <para>
/// Names follow OpenTelemetry's Prometheus compatibility rules (<see cref="PrometheusNaming"/>): <c>Counter&lt;T&gt;</c> and
/// <c>ObservableCounter&lt;T&gt;</c> become counters (<c>_total</c>), <c>UpDownCounter&lt;T&gt;</c>,
/// <c>ObservableUpDownCounter&lt;T&gt;</c>, <c>Gauge&lt;T&gt;</c> and <c>ObservableGauge&lt;T&gt;</c> gauges, and
/// <c>Histogram&lt;T&gt;</c> histograms with the instrument's advised bucket boundaries (else the Prometheus defaults for
/// seconds, OpenTelemetry's defaults otherwise). Tags become labels; a new tag set creates a series, and recording on an
/// existing series allocates nothing.
/// </para>
/// <para>
/// A metric's labels are the tags of its first measurement, plus the known optional ones of well-known instruments
/// (<c>error.type</c> on HTTP durations), sorted; a missing tag is an empty label, which Prometheus treats as absent. A tag
/// a later measurement adds beyond those is left out, and reported once. Observable counters contribute exactly their
/// increase since the last observation, so their sum across processes is exact; observable and synchronous gauges are one
/// series per process (a <c>pid</c> label) on a shared backend, gone when the process dies.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// using var bridge = new MeterBridge(registry).Start();
/// </code>
/// </example>
public sealed class MeterBridge : IDisposable
{
    // Tags an instrument records only on some measurements; declared up front so the label set does not depend on
    // which measurement came first.
    private static readonly Dictionary<string, string[]> OptionalTags = new(StringComparer.Ordinal)
    {
        ["http.server.request.duration"] = ["error.type", "http.route"],
        ["http.client.request.duration"] = ["error.type", "http.response.status_code"],
        ["aspnetcore.routing.match_attempts"] = ["http.route", "aspnetcore.routing.is_fallback"],
        ["kestrel.connection.duration"] = ["error.type", "tls.protocol.version"],
    };

    private readonly MetricRegistry _registry;
    private readonly string[] _include;
    private readonly string[] _exclude;
    private readonly TimeSpan _interval;
    private readonly ILogger _logger;
    private readonly Lock _observeLock = new();
    private readonly ConcurrentDictionary<object, string> _labelTexts = new();
    private MeterListener? _listener;
    private IDisposable? _collectCallback;
    private Timer? _timer;
    private long _lastObserveFailure = long.MinValue;

    /// <summary>Creates a bridge; call <see cref="Start"/> to listen.</summary>
    /// <param name="registry">The registry instruments are published into; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <param name="options">Which meters, and how often observable instruments are recorded; defaults when null.</param>
    /// <param name="logger">Where instruments that cannot be published are reported; none when null.</param>
    public MeterBridge(MetricRegistry? registry = null, MeterBridgeOptions? options = null, ILogger? logger = null)
    {
        options ??= new MeterBridgeOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.CollectionInterval, TimeSpan.Zero);
        _registry = registry ?? MetricRegistry.Default;
        _include = [.. options.IncludeMeters];
        _exclude = [.. options.ExcludeMeters];
        _interval = options.CollectionInterval;
        _logger = logger ?? NullLogger.Instance;
        Shared = ProcessAggregation.IsShared(_registry.Backend);
    }

    /// <summary>The registry instruments are published into.</summary>
    public MetricRegistry Registry => _registry;

    internal bool Shared { get; }

    internal ILogger Logger => _logger;

    /// <summary>Starts listening: instruments published before and after this call are bridged.</summary>
    /// <returns>This bridge.</returns>
    /// <exception cref="InvalidOperationException">Already started.</exception>
    public MeterBridge Start()
    {
        if (_listener is not null)
        {
            throw new InvalidOperationException("The meter bridge is already started.");
        }

        var listener = new MeterListener { InstrumentPublished = OnInstrumentPublished };
        listener.SetMeasurementEventCallback<long>(static (_, value, tags, state) => ((InstrumentSink)state!).Record(value, tags));
        listener.SetMeasurementEventCallback<int>(static (_, value, tags, state) => ((InstrumentSink)state!).Record(value, tags));
        listener.SetMeasurementEventCallback<short>(static (_, value, tags, state) => ((InstrumentSink)state!).Record(value, tags));
        listener.SetMeasurementEventCallback<byte>(static (_, value, tags, state) => ((InstrumentSink)state!).Record(value, tags));
        listener.SetMeasurementEventCallback<double>(static (_, value, tags, state) => ((InstrumentSink)state!).Record(value, tags));
        listener.SetMeasurementEventCallback<float>(static (_, value, tags, state) => ((InstrumentSink)state!).Record(value, tags));
        listener.SetMeasurementEventCallback<decimal>(static (_, value, tags, state) => ((InstrumentSink)state!).Record((double)value, tags));
        _listener = listener;
        listener.Start();
        _collectCallback = _registry.AddCollectCallback(RecordObservableInstruments);
        if (Shared && _interval > TimeSpan.Zero)
        {
            _timer = new Timer(static state => ((MeterBridge)state!).RecordObservableInstruments(), this, _interval, _interval);
        }

        return this;
    }

    /// <summary>
    /// Records every observable instrument now. Runs before each scrape of the registry and, on a shared backend, on the
    /// collection interval; call it before flushing when a process is about to exit so its last values are stored.
    /// </summary>
    public void RecordObservableInstruments()
    {
        lock (_observeLock)
        {
            try
            {
                _listener?.RecordObservableInstruments();
            }
            catch (Exception e)
            {
                // One failing callback must not fail every scrape; say so at most once a minute.
                var now = Environment.TickCount64;
                if (now - _lastObserveFailure > 60_000)
                {
                    _lastObserveFailure = now;
                    _logger.LogWarning(e, "An observable instrument's callback failed; its values were not recorded this time.");
                }
            }
        }
    }

    /// <summary>Stops listening; the published metrics stay in the registry with their values.</summary>
    public void Dispose()
    {
        _timer?.Dispose();
        _timer = null;
        _collectCallback?.Dispose();
        _collectCallback = null;
        lock (_observeLock)
        {
            _listener?.Dispose();
            _listener = null;
        }
    }

    internal bool Includes(string meterName)
    {
        foreach (var prefix in _exclude)
        {
            if (meterName.StartsWith(prefix, StringComparison.Ordinal))
            {
                return false;
            }
        }

        if (_include.Length == 0)
        {
            return true;
        }

        foreach (var prefix in _include)
        {
            if (meterName.StartsWith(prefix, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    // Filled on first use; a race formats the same text twice, harmlessly.
    private static readonly string?[] SmallIntegers = new string?[1024];

    /// <summary>A tag value as label text; numbers and booleans are formatted once per distinct value and cached.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal string LabelText(object? value)
    {
        if (value is string text)
        {
            return text;
        }

        if (value is null)
        {
            return string.Empty;
        }

        // Small integers (HTTP status codes, counts of things) skip the dictionary: a boxed key costs two virtual calls.
        if (value is int number && (uint)number < SmallIntegers.Length)
        {
            return SmallIntegers[number] ??= number.ToString(CultureInfo.InvariantCulture);
        }

        return _labelTexts.TryGetValue(value, out var cached) ? cached : AddLabelText(value);
    }

    private string AddLabelText(object value)
    {
        var text = value switch
        {
            bool b => b ? "true" : "false",
            IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? string.Empty,
        };

        // Bounded: a tag with unbounded distinct values (a bug in the instrumented code) must not grow this forever.
        if (_labelTexts.Count < 10_000)
        {
            _labelTexts.TryAdd(value, text);
        }

        return text;
    }

    private void OnInstrumentPublished(Instrument instrument, MeterListener listener)
    {
        if (!Includes(instrument.Meter.Name))
        {
            return;
        }

        InstrumentSink? sink;
        try
        {
            sink = CreateSink(instrument);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or NotSupportedException)
        {
            _logger.LogWarning(e, "The instrument {Instrument} of meter {Meter} cannot be published as a metric: {Reason}", instrument.Name, instrument.Meter.Name, e.Message);
            return;
        }

        if (sink is not null)
        {
            listener.EnableMeasurementEvents(instrument, sink);
        }
    }

    private InstrumentSink? CreateSink(Instrument instrument)
    {
        var type = instrument.GetType();
        if (!type.IsGenericType)
        {
            return null;
        }

        var kind = type.GetGenericTypeDefinition();
        var backend = _registry.Backend;
        if (kind == typeof(Counter<>))
        {
            return new CounterSink(this, instrument, observable: false);
        }

        if (kind == typeof(ObservableCounter<>))
        {
            return new CounterSink(this, instrument, observable: true);
        }

        if (kind == typeof(UpDownCounter<>))
        {
            return new GaugeSink(this, instrument, ProcessAggregation.Sum(backend), increments: true);
        }

        if (kind == typeof(ObservableUpDownCounter<>))
        {
            return new GaugeSink(this, instrument, ProcessAggregation.Sum(backend), increments: false);
        }

        if (kind == typeof(Gauge<>) || kind == typeof(ObservableGauge<>))
        {
            return new GaugeSink(this, instrument, ProcessAggregation.PerProcess(backend), increments: false);
        }

        if (kind == typeof(Histogram<>))
        {
            return new HistogramSink(this, instrument);
        }

        return null;
    }

    /// <summary>One bridged instrument: its metric (made at the first measurement, when the tag names are known) and its series.</summary>
    internal abstract class InstrumentSink
    {
        // Per thread, so it needs no synchronization and is allocated once per thread, not per measurement.
        [ThreadStatic]
        private static LastHit? t_lastHit;

        private readonly Lock _createLock = new();
        private string[] _keys = [];
        private string?[] _constants = [];
        private int _reportedDropped;
        private volatile bool _failed;

        protected InstrumentSink(MeterBridge bridge, Instrument instrument, MetricType type, GaugeAggregation aggregation = GaugeAggregation.Sum)
        {
            Bridge = bridge;
            Instrument = instrument;
            Type = type;
            Aggregation = aggregation;
            Name = PrometheusNaming.MetricName(instrument.Name, instrument.Unit, type);
            Help = string.IsNullOrWhiteSpace(instrument.Description)
                ? $"The .NET instrument {instrument.Name} of meter {instrument.Meter.Name}" + (string.IsNullOrEmpty(instrument.Unit) ? "." : $", in {instrument.Unit}.")
                : instrument.Description.Trim();
        }

        public MeterBridge Bridge { get; }

        public Instrument Instrument { get; }

        public MetricType Type { get; }

        public GaugeAggregation Aggregation { get; }

        public string Name { get; }

        public string Help { get; }

        public abstract void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags);

        /// <summary>Creates the metric with the given label names; runs once, at the first measurement.</summary>
        protected abstract Metric CreateMetric(string[] labelNames);

        /// <summary>The series for <paramref name="tags"/> of <paramref name="root"/>; allocation-free for an existing series.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        protected TMetric? Series<TMetric>(TMetric? root, ReadOnlySpan<KeyValuePair<string, object?>> tags)
            where TMetric : Metric<TMetric>
        {
            root ??= (TMetric?)Create(tags);
            if (root is null)
            {
                return null;
            }

            var keys = _keys;
            if (keys.Length == 0)
            {
                if (tags.Length > 0)
                {
                    ReportDropped(tags);
                }

                return root;
            }

            // The same tag objects as this thread's previous measurement of this instrument mean the same series:
            // instrumented code usually passes constant strings and cached boxes, so most lookups end here.
            var last = t_lastHit;
            if (last is not null && ReferenceEquals(last.Sink, this) && last.Matches(tags))
            {
                return Unsafe.As<TMetric>(last.Series);
            }

            var series = Resolve(root, keys, tags);
            if (tags.Length <= LastHit.Capacity)
            {
                (t_lastHit ??= new LastHit()).Remember(this, tags, series);
            }

            return series;
        }

        private TMetric Resolve<TMetric>(TMetric root, string[] keys, ReadOnlySpan<KeyValuePair<string, object?>> tags)
            where TMetric : Metric<TMetric>
        {
            var buffer = default(LabelValues);
            var values = keys.Length <= LabelValues.Size ? ((Span<string>)buffer)[..keys.Length] : new string[keys.Length];
            var constants = _constants;
            var matched = 0;
            for (var i = 0; i < keys.Length; i++)
            {
                if (constants[i] is { } constant)
                {
                    values[i] = constant;
                    continue;
                }

                var key = keys[i];
                var text = string.Empty;
                for (var t = 0; t < tags.Length; t++)
                {
                    var tagKey = tags[t].Key;
                    if (ReferenceEquals(tagKey, key) || string.Equals(tagKey, key, StringComparison.Ordinal))
                    {
                        text = Bridge.LabelText(tags[t].Value);
                        matched++;
                        break;
                    }
                }

                values[i] = text;
            }

            if (matched < tags.Length)
            {
                ReportDropped(tags);
            }

            return root.Labels(values);
        }

        private Metric? Create(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (_failed)
            {
                return null;
            }

            lock (_createLock)
            {
                if (Root is { } existing)
                {
                    return existing;
                }

                if (_failed)
                {
                    return null;
                }

                // Label name -> the tag it comes from (or the instrument's own constant tag value).
                var labels = new SortedDictionary<string, (string Key, string? Constant)>(StringComparer.Ordinal);
                void Add(string key, string? constant)
                {
                    var label = PrometheusNaming.LabelName(key);
                    if ((label == "pid" && Aggregation is GaugeAggregation.PerProcess or GaugeAggregation.LivePerProcess) || (label == "le" && Type == MetricType.Histogram))
                    {
                        // Reserved by the metric itself: keep the tag under another name rather than lose it.
                        label += "_tag";
                    }

                    labels.TryAdd(label, (key, constant));
                }

                foreach (var tag in tags)
                {
                    Add(tag.Key, null);
                }

                if (OptionalTags.TryGetValue(Instrument.Name, out var optional))
                {
                    foreach (var key in optional)
                    {
                        if (!labels.Values.Any(v => v.Key == key))
                        {
                            Add(key, null);
                        }
                    }
                }

                if (Instrument.Tags is { } instrumentTags)
                {
                    foreach (var tag in instrumentTags)
                    {
                        Add(tag.Key, Bridge.LabelText(tag.Value));
                    }
                }

                try
                {
                    var metric = CreateMetric([.. labels.Keys]);
                    _keys = [.. labels.Values.Select(v => v.Key)];
                    _constants = [.. labels.Values.Select(v => v.Constant)];
                    Root = metric;
                    return metric;
                }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException or NotSupportedException)
                {
                    _failed = true;
                    Bridge.Logger.LogWarning(e, "The instrument {Instrument} of meter {Meter} is not published as '{Metric}': {Reason}", Instrument.Name, Instrument.Meter.Name, Name, e.Message);
                    return null;
                }
            }
        }

        /// <summary>The metric, once created; read by the hot path without a lock.</summary>
        protected Metric? Root
        {
            get => Volatile.Read(ref _root);
            private set => Volatile.Write(ref _root, value);
        }

        private Metric? _root;

        [MethodImpl(MethodImplOptions.NoInlining)]
        private void ReportDropped(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (Interlocked.Exchange(ref _reportedDropped, 1) != 0)
            {
                return;
            }

            var keys = _keys;
            var dropped = new List<string>();
            foreach (var tag in tags)
            {
                if (Array.IndexOf(keys, tag.Key) < 0)
                {
                    dropped.Add(tag.Key);
                }
            }

            Bridge.Logger.LogWarning(
                "The instrument {Instrument} of meter {Meter} recorded tag(s) {Tags} that its metric '{Metric}' has no label for (its labels come from its first measurement); they are left out of the metric.",
                Instrument.Name, Instrument.Meter.Name, string.Join(", ", dropped), Name);
        }
    }

    private sealed class CounterSink(MeterBridge bridge, Instrument instrument, bool observable) : InstrumentSink(bridge, instrument, MetricType.Counter)
    {
        // Observable counters report their running total: what is stored is the increase since the previous observation,
        // so that the sum over processes is each process's total. Only touched under the bridge's observe lock.
        private readonly Dictionary<Counter, double>? _lastObserved = observable ? new(ReferenceEqualityComparer.Instance) : null;

        public override void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var series = Series((Counter?)Root, tags);
            if (series is null || !(value >= 0))
            {
                return;
            }

            if (_lastObserved is null)
            {
                series.Inc(value);
                return;
            }

            ref var last = ref CollectionsMarshal.GetValueRefOrAddDefault(_lastObserved, series, out _);

            // A total below the previous one means the source restarted: all of it is new.
            var increase = value >= last ? value - last : value;
            last = value;
            if (increase > 0)
            {
                series.Inc(increase);
            }
        }

        protected override Metric CreateMetric(string[] labelNames) => new Counter(Name, Help, labelNames, registry: Bridge.Registry);
    }

    private sealed class GaugeSink(MeterBridge bridge, Instrument instrument, GaugeAggregation aggregation, bool increments) : InstrumentSink(bridge, instrument, MetricType.Gauge, aggregation)
    {
        public override void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var series = Series((Gauge?)Root, tags);
            if (series is null)
            {
                return;
            }

            if (increments)
            {
                series.Inc(value);
            }
            else
            {
                series.Set(value);
            }
        }

        protected override Metric CreateMetric(string[] labelNames) => new Gauge(Name, Help, labelNames, registry: Bridge.Registry, aggregation: Aggregation);
    }

    private sealed class HistogramSink(MeterBridge bridge, Instrument instrument) : InstrumentSink(bridge, instrument, MetricType.Histogram)
    {
        /// <summary>OpenTelemetry's default explicit bucket boundaries, for instruments in units other than seconds.</summary>
        private static readonly double[] OpenTelemetryBuckets = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

        public override void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags) =>
            Series((Histogram?)Root, tags)?.Observe(value);

        protected override Metric CreateMetric(string[] labelNames) =>
            new Histogram(Name, Help, labelNames, registry: Bridge.Registry, buckets: Buckets(Instrument));

        private static IEnumerable<double> Buckets(Instrument instrument)
        {
            IEnumerable<double>? advised = instrument switch
            {
                Histogram<double> h => h.Advice?.HistogramBucketBoundaries,
                Histogram<float> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
                Histogram<long> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
                Histogram<int> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
                Histogram<short> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
                Histogram<byte> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
                Histogram<decimal> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b),
                _ => null,
            };
            if (advised is not null && advised.Any())
            {
                return advised;
            }

            return instrument.Unit == "s" ? Histogram.DefaultBuckets : OpenTelemetryBuckets;
        }
    }

    [InlineArray(Size)]
    private struct LabelValues
    {
        public const int Size = 16;
        private string _element;
    }

    /// <summary>A thread's last resolved measurement: the sink, the tag objects it came with and the series they gave.</summary>
    private sealed class LastHit
    {
        public const int Capacity = 8;
        private readonly string?[] _keys = new string?[Capacity];
        private readonly object?[] _values = new object?[Capacity];
        private int _count;

        public InstrumentSink? Sink { get; private set; }

        public Metric? Series { get; private set; }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool Matches(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (tags.Length != _count)
            {
                return false;
            }

            for (var i = 0; i < tags.Length; i++)
            {
                if (!ReferenceEquals(tags[i].Key, _keys[i]) || !ReferenceEquals(tags[i].Value, _values[i]))
                {
                    return false;
                }
            }

            return true;
        }

        public void Remember(InstrumentSink sink, ReadOnlySpan<KeyValuePair<string, object?>> tags, Metric series)
        {
            Sink = sink;
            Series = series;
            _count = tags.Length;
            for (var i = 0; i < tags.Length; i++)
            {
                _keys[i] = tags[i].Key;
                _values[i] = tags[i].Value;
            }

            // Stale references beyond the count would keep old tag objects alive.
            Array.Clear(_keys, tags.Length, Capacity - tags.Length);
            Array.Clear(_values, tags.Length, Capacity - tags.Length);
        }
    }
}
