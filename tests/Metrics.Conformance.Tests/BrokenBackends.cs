using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;

#pragma warning disable CS9113 // The contract fixes the constructor signature; most broken backends ignore its arguments.

namespace Metrics.Conformance.Tests;

// Deliberately broken backends: each breaks exactly one rule of the contract, the way real backends get it wrong.
// The suite must fail each of them with a message that names the bug.

/// <summary>Unambiguous key of a value: length-prefixed name and label values, then the part.</summary>
internal static class Keys
{
    public static string Of(MetricDescriptor metric, HistogramBucket? bucket)
    {
        var sb = new StringBuilder().Append(metric.Name.Length).Append(':').Append(metric.Name).Append(metric.DefinitionId);
        foreach (var value in metric.LabelValues)
        {
            sb.Append(value.Length).Append(':').Append(value);
        }

        return sb.Append('|').Append(bucket?.ToString() ?? "-").ToString();
    }
}

/// <summary>A double updated with compare-and-swap: the correct part the broken backends share.</summary>
internal sealed class Cell
{
    private long _bits;

    public double Value => AtomicDouble.Read(ref _bits);

    public void Add(double amount) => AtomicDouble.Add(ref _bits, amount);

    public void Set(double value) => Interlocked.Exchange(ref _bits, BitConverter.DoubleToInt64Bits(value));
}

/// <summary>Inc is a read, a pause, then a write: concurrent increments are lost.</summary>
public sealed class NonAtomicIncBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<NonAtomicIncBackend>
{
    private double _value;

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value)
    {
        var current = Volatile.Read(ref _value);
        Thread.Yield();
        Volatile.Write(ref _value, current + value);
    }

    public void Dec(double value) => Inc(-value);

    public void Set(double value) => Volatile.Write(ref _value, value);

    public double Get() => Volatile.Read(ref _value);
}

/// <summary>Dec adds its amount.</summary>
public sealed class DecAddsBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<DecAddsBackend>
{
    private readonly Cell _cell = new();

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value) => _cell.Add(value);

    public void Dec(double value) => _cell.Add(value);

    public void Set(double value) => _cell.Set(value);

    public double Get() => _cell.Value;
}

/// <summary>Stores the value as a float.</summary>
public sealed class FloatBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<FloatBackend>
{
    private readonly Lock _lock = new();
    private float _value;

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value)
    {
        lock (_lock)
        {
            _value += (float)value;
        }
    }

    public void Dec(double value) => Inc(-value);

    public void Set(double value)
    {
        lock (_lock)
        {
            _value = (float)value;
        }
    }

    public double Get()
    {
        lock (_lock)
        {
            return _value;
        }
    }
}

/// <summary>Keys values by metric and labels only: every bucket, sum and count of a series shares one value.</summary>
public sealed class SharedBucketsBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<SharedBucketsBackend>
{
    private static readonly ConcurrentDictionary<string, Cell> Store = new();
    private readonly Cell _cell = Store.GetOrAdd(Keys.Of(metric, null), _ => new Cell());

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value) => _cell.Add(value);

    public void Dec(double value) => _cell.Add(-value);

    public void Set(double value) => _cell.Set(value);

    public double Get() => _cell.Value;
}

/// <summary>Keys values by the label values joined with ',': ["a,b","c"] and ["a","b,c"] collide.</summary>
public sealed class JoinedLabelsBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<JoinedLabelsBackend>
{
    private static readonly ConcurrentDictionary<string, Cell> Store = new();
    private readonly Cell _cell = Store.GetOrAdd($"{metric.Name}{{{string.Join(",", metric.LabelValues)}}}{histogramBucket}", _ => new Cell());

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value) => _cell.Add(value);

    public void Dec(double value) => _cell.Add(-value);

    public void Set(double value) => _cell.Set(value);

    public double Get() => _cell.Value;
}

/// <summary>Initialize does nothing, but the values need the per-configuration store it should have created.</summary>
public sealed class InitializeIgnoredBackend : IMetricBackend<InitializeIgnoredBackend>
{
    private static readonly ConcurrentDictionary<BackendConfig, ConcurrentDictionary<string, Cell>> Stores = new();
    private readonly Cell _cell;

    public InitializeIgnoredBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) =>
        _cell = Stores[config].GetOrAdd(Keys.Of(metric, histogramBucket), _ => new Cell());

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value) => _cell.Add(value);

    public void Dec(double value) => _cell.Add(-value);

    public void Set(double value) => _cell.Set(value);

    public double Get() => _cell.Value;
}

/// <summary>Re-runs its set-up (which resets the store) every time a value is created.</summary>
public sealed class InitializeTwiceBackend : IMetricBackend<InitializeTwiceBackend>
{
    private static ConcurrentDictionary<string, Cell> _store = new();
    private readonly string _key;

    public InitializeTwiceBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
        Initialize(config);
        _key = Keys.Of(metric, histogramBucket);
    }

    public static void Initialize(BackendConfig config) => _store = new ConcurrentDictionary<string, Cell>();

    public void Inc(double value) => Cell.Add(value);

    public void Dec(double value) => Cell.Add(-value);

    public void Set(double value) => Cell.Set(value);

    public double Get() => Cell.Value;

    private Cell Cell => _store.GetOrAdd(_key, _ => new Cell());
}

/// <summary>Get returns a value cached for a second.</summary>
public sealed class StaleGetBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<StaleGetBackend>
{
    private readonly Cell _cell = new();
    private double _cached;
    private long _cachedAt = long.MinValue;

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value) => _cell.Add(value);

    public void Dec(double value) => _cell.Add(-value);

    public void Set(double value) => _cell.Set(value);

    public double Get()
    {
        var now = Environment.TickCount64;
        if (now - Volatile.Read(ref _cachedAt) > 1000)
        {
            _cached = _cell.Value;
            Volatile.Write(ref _cachedAt, now);
        }

        return _cached;
    }
}

/// <summary>Declares SharedAcrossProcesses but keeps values in this process: correct in one process, invisible to others.</summary>
public sealed class ProcessLocalSharedBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<ProcessLocalSharedBackend>
{
    private static readonly ConcurrentDictionary<BackendConfig, ConcurrentDictionary<string, (MetricDescriptor Metric, HistogramBucket? Bucket, Cell Cell)>> Stores = new();
    private readonly Cell _cell = Stores.GetOrAdd(config, _ => new()).GetOrAdd(Keys.Of(metric, histogramBucket), _ => (metric, histogramBucket, new Cell())).Cell;

    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses;

    public static void Initialize(BackendConfig config)
    {
        _ = config.GetRequiredString("Store");
        Stores.TryAdd(config, new());
    }

    public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) =>
        [.. families.Select(f => (IReadOnlyList<CollectedValue>)[.. Stores.GetOrAdd(config, _ => new()).Values
            .Where(v => v.Metric.Name == f.Name)
            .Select(v => new CollectedValue(v.Metric.LabelValues, v.Bucket, v.Cell.Value))])];

    public void Inc(double value) => _cell.Add(value);

    public void Dec(double value) => _cell.Add(-value);

    public void Set(double value) => _cell.Set(value);

    public double Get() => _cell.Value;
}

/// <summary>Sums increments in per-thread cells, as a contention-avoiding adder does: exact for counts, not for fractions.</summary>
public sealed class StripedSumsBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<StripedSumsBackend>
{
    // Stripes start at -0, the additive identity of doubles, so a single stripe's sum adds to the base exactly as one
    // addition would (signed zeros included): the only bug left is the grouping of concurrent fractional increments.
    private readonly ThreadLocal<Cell> _stripes = new(NegativeZero, trackAllValues: true);
    private readonly Cell _base = new();

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value) => _stripes.Value!.Add(value);

    public void Dec(double value) => Inc(-value);

    public void Set(double value)
    {
        foreach (var stripe in _stripes.Values)
        {
            stripe.Set(-0.0);
        }

        _base.Set(value);
    }

    public double Get()
    {
        var total = _base.Value;
        foreach (var stripe in _stripes.Values)
        {
            total += stripe.Value;
        }

        return total;
    }

    private static Cell NegativeZero()
    {
        var cell = new Cell();
        cell.Set(-0.0);
        return cell;
    }
}

/// <summary>Keys in-process values by series without declaring a shared store: two registries of one process see each other's counts.</summary>
public sealed class KeyedInProcessBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<KeyedInProcessBackend>
{
    private static readonly ConcurrentDictionary<string, Cell> Store = new();
    private readonly Cell _cell = Store.GetOrAdd(config + Keys.Of(metric, histogramBucket), _ => new Cell());

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value) => _cell.Add(value);

    public void Dec(double value) => _cell.Add(-value);

    public void Set(double value) => _cell.Set(value);

    public double Get() => _cell.Value;
}

/// <summary>Releases its store on ShutdownAsync and never opens it again: the configuration is dead after a shutdown.</summary>
public sealed class ShutdownForeverBackend : IMetricBackend<ShutdownForeverBackend>
{
    private static readonly ConcurrentDictionary<BackendConfig, bool> Closed = new();
    private readonly Cell _cell = new();

    public ShutdownForeverBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
        if (Closed.ContainsKey(config))
        {
            throw new ObjectDisposedException("store", "The store of this configuration was shut down.");
        }
    }

    public static void Initialize(BackendConfig config)
    {
    }

    public static ValueTask ShutdownAsync(BackendConfig config, CancellationToken cancellationToken)
    {
        Closed[config] = true;
        return ValueTask.CompletedTask;
    }

    public void Inc(double value) => _cell.Add(value);

    public void Dec(double value) => _cell.Add(-value);

    public void Set(double value) => _cell.Set(value);

    public double Get() => _cell.Value;
}

/// <summary>Reads its "Capacity" setting with a silent fallback: a wrong value is never reported.</summary>
public sealed class UnvalidatedSettingsBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<UnvalidatedSettingsBackend>
{
    private readonly Cell _cell = new();

    public static int Capacity { get; private set; }

    public static void Initialize(BackendConfig config) =>
        Capacity = int.TryParse(config["Capacity"], System.Globalization.CultureInfo.InvariantCulture, out var capacity) ? capacity : 1000;

    public void Inc(double value) => _cell.Add(value);

    public void Dec(double value) => _cell.Add(-value);

    public void Set(double value) => _cell.Set(value);

    public double Get() => _cell.Value;
}

/// <summary>Refuses a wrong "Capacity" with int.Parse's own exception, which does not say which setting is wrong.</summary>
public sealed class UnnamedSettingErrorBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<UnnamedSettingErrorBackend>
{
    private readonly Cell _cell = new();

    public static int Capacity { get; private set; }

    public static void Initialize(BackendConfig config) => Capacity = int.Parse(config["Capacity"] ?? "1000", System.Globalization.CultureInfo.InvariantCulture);

    public void Inc(double value) => _cell.Add(value);

    public void Dec(double value) => _cell.Add(-value);

    public void Set(double value) => _cell.Set(value);

    public double Get() => _cell.Value;
}

/// <summary>Skips zero increments as an optimization: a stored -0 stays -0 where IEEE addition gives +0.</summary>
public sealed class SkipZeroIncBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<SkipZeroIncBackend>
{
    private readonly Cell _cell = new();

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value)
    {
        if (value != 0)
        {
            _cell.Add(value);
        }
    }

    public void Dec(double value) => Inc(-value);

    public void Set(double value) => _cell.Set(value);

    public double Get() => _cell.Value;
}

/// <summary>Inc is a locked read-modify-write, but Set writes without the lock: a Set racing an Inc is overwritten.</summary>
public sealed class UnlockedSetBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<UnlockedSetBackend>
{
    private readonly Lock _lock = new();
    private double _value;

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value)
    {
        lock (_lock)
        {
            var current = Volatile.Read(ref _value);
            // Stands for the work a real store does between its read and its write (encoding, a round trip).
            Thread.Yield();
            Volatile.Write(ref _value, current + value);
        }
    }

    public void Dec(double value) => Inc(-value);

    public void Set(double value) => Volatile.Write(ref _value, value);

    public double Get() => Volatile.Read(ref _value);
}

/// <summary>CollectAsync awaits a reply from a reader loop that was never started, and ignores its cancellation token.</summary>
public sealed class HangingCollectBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<HangingCollectBackend>
{
    private static readonly TaskCompletionSource<IReadOnlyList<CollectedValue>[]?> Reply = new();
    private readonly Cell _cell = new();

    public static void Initialize(BackendConfig config)
    {
    }

    public static ValueTask<IReadOnlyList<CollectedValue>[]?> CollectAsync(BackendConfig config, IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken) =>
        new(Reply.Task);

    public void Inc(double value) => _cell.Add(value);

    public void Dec(double value) => _cell.Add(-value);

    public void Set(double value) => _cell.Set(value);

    public double Get() => _cell.Value;
}

/// <summary>Declares exemplar storage but keeps the last exemplar written, not the latest by timestamp.</summary>
public sealed class LastWrittenExemplarBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<LastWrittenExemplarBackend>
{
    private readonly Cell _value = new();
    private readonly Lock _gate = new();
    private RecordedExemplar? _exemplar;

    public static BackendCapabilities Capabilities => BackendCapabilities.Exemplars;

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value) => _value.Add(value);

    public void Dec(double value) => _value.Add(-value);

    public void Set(double value) => _value.Set(value);

    public double Get() => _value.Value;

    public void RecordExemplar(in RecordedExemplar exemplar)
    {
        lock (_gate)
        {
            _exemplar = exemplar;
        }
    }

    public RecordedExemplar? GetExemplar()
    {
        lock (_gate)
        {
            return _exemplar;
        }
    }
}

/// <summary>Removes a series' keys but not its values: the series leaves collection, then comes back with its old total.</summary>
public sealed class RemoveKeepsValuesBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<RemoveKeepsValuesBackend>
{
    private readonly FileValue _value = new(config, metric, histogramBucket);

    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses | BackendCapabilities.RemovesSeries;

    public static void Initialize(BackendConfig config) => FileValue.Initialize(config);

    public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) => FileValue.Collect(config, families);

    public static void RemoveSeries(BackendConfig config, MetricDescriptor series) => FileValue.RemoveSeries(config, series, resetValues: false);

    public void Inc(double value) => _value.Inc(value);

    public void Dec(double value) => _value.Dec(value);

    public void Set(double value) => _value.Set(value);

    public double Get() => _value.Get();
}

/// <summary>
/// Removes a series' keys and resets its values, but keeps each value's stored exemplar: the series comes back from 0 with
/// the exemplar of an increment made before the removal.
/// </summary>
public sealed class RemoveKeepsExemplarsBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<RemoveKeepsExemplarsBackend>
{
    private readonly FileValue _value = new(config, metric, histogramBucket);

    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses | BackendCapabilities.RemovesSeries | BackendCapabilities.Exemplars;

    public static void Initialize(BackendConfig config) => FileValue.Initialize(config);

    public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) => FileValue.Collect(config, families);

    public static void RemoveSeries(BackendConfig config, MetricDescriptor series) => FileValue.RemoveSeries(config, series, resetValues: true, keepExemplars: true);

    public void Inc(double value) => _value.Inc(value);

    public void Dec(double value) => _value.Dec(value);

    public void Set(double value) => _value.Set(value);

    public double Get() => _value.Get();

    public void RecordExemplar(in RecordedExemplar exemplar) => _value.RecordExemplar(exemplar);

    public RecordedExemplar? GetExemplar() => _value.GetExemplar();
}

/// <summary>Counts a family's stored values, one per histogram part, instead of its label sets.</summary>
public sealed class PartCountingBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<PartCountingBackend>
{
    private readonly FileValue _value = new(config, metric, histogramBucket);

    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses | BackendCapabilities.CountsSeries;

    public static void Initialize(BackendConfig config) => FileValue.Initialize(config);

    public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) => FileValue.Collect(config, families);

    public static long SeriesCount(BackendConfig config, MetricDescriptor family) => FileValue.SeriesCount(config, family, countParts: true);

    public void Inc(double value) => _value.Inc(value);

    public void Dec(double value) => _value.Dec(value);

    public void Set(double value) => _value.Set(value);

    public double Get() => _value.Get();
}

/// <summary>
/// An in-process store imitating a mapped block: values hold slot numbers into one process-global table kept for no
/// configuration in particular. ShutdownAsync frees the table and slot numbering starts over, so a value created before
/// a shutdown updates the slot a newer value was given.
/// </summary>
public sealed class RecycledSlotsBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<RecycledSlotsBackend>
{
    private static readonly ConcurrentDictionary<int, Cell> Slots = new();
    private static int _next = -1;
    private readonly int _slot = Interlocked.Increment(ref _next);

    public static void Initialize(BackendConfig config)
    {
    }

    public static ValueTask ShutdownAsync(BackendConfig config, CancellationToken cancellationToken)
    {
        Slots.Clear();
        Volatile.Write(ref _next, -1);
        return ValueTask.CompletedTask;
    }

    public void Inc(double value) => Cell.Add(value);

    public void Dec(double value) => Cell.Add(-value);

    public void Set(double value) => Cell.Set(value);

    public double Get() => Cell.Value;

    private Cell Cell => Slots.GetOrAdd(_slot, _ => new Cell());
}

/// <summary>The correct shared FileBackend, except that a cancelled CollectAsync returns the (empty) lists read so far instead of throwing.</summary>
public sealed class PartialOnCancelCollectBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<PartialOnCancelCollectBackend>
{
    private readonly FileBackend _inner = new(config, metric, histogramBucket);

    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses;

    public static void Initialize(BackendConfig config) => FileBackend.Initialize(config);

    public static async ValueTask<IReadOnlyList<CollectedValue>[]?> CollectAsync(BackendConfig config, IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken)
    {
        var soFar = families.Select(_ => (IReadOnlyList<CollectedValue>)[]).ToArray();
        try
        {
            await Task.Yield();
            cancellationToken.ThrowIfCancellationRequested();
            return FileBackend.Collect(config, families);
        }
        catch (OperationCanceledException)
        {
            return soFar;
        }
    }

    public void Inc(double value) => _inner.Inc(value);

    public void Dec(double value) => _inner.Dec(value);

    public void Set(double value) => _inner.Set(value);

    public double Get() => _inner.Get();
}

/// <summary>The correct shared FileBackend declaring RecordsSchema, but keying and collecting values by name only: definitions mix.</summary>
public sealed class DefinitionBlindBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<DefinitionBlindBackend>
{
    private readonly FileBackend _inner = new(config, metric, histogramBucket);

    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses | BackendCapabilities.RecordsSchema;

    public static void Initialize(BackendConfig config) => FileBackend.Initialize(config);

    public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) => FileBackend.Collect(config, families);

    public void Inc(double value) => _inner.Inc(value);

    public void Dec(double value) => _inner.Dec(value);

    public void Set(double value) => _inner.Set(value);

    public double Get() => _inner.Get();
}

/// <summary>
/// Exposes a value cell and takes the moved marker in it for a move even though it never moves values: its Inc then
/// restarts the value in a new cell, so a NaN whose bits happen to be the marker turns into 1.
/// </summary>
public sealed unsafe class MarkerTakenForMoveBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<MarkerTakenForMoveBackend>
{
    private long[] _word = GC.AllocateArray<long>(1, pinned: true);

    public nint ValueCell => (nint)Unsafe.AsPointer(ref _word[0]);

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value)
    {
        if (Volatile.Read(ref _word[0]) == AtomicDouble.MovedCell)
        {
            _word = GC.AllocateArray<long>(1, pinned: true);
        }

        AtomicDouble.Add(ref _word[0], value);
    }

    public void Dec(double value) => Inc(-value);

    public void Set(double value) => AtomicDouble.Write(ref _word[0], value);

    public double Get() => AtomicDouble.Read(ref _word[0]);
}

/// <summary>
/// The correct shared FileBackend declaring RecordsSchema and keying values by a definition it builds itself from the type,
/// label names, buckets and aggregation, leaving out the unit and the exposed type: a gauge, an info and a state set of one
/// name, or two units, share values.
/// </summary>
public sealed class UnitBlindBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<UnitBlindBackend>
{
    private readonly FileBackend _inner = new(config, Keyed(metric), histogramBucket);

    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses | BackendCapabilities.RecordsSchema;

    public static void Initialize(BackendConfig config) => FileBackend.Initialize(config);

    public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) =>
        FileBackend.Collect(config, [.. families.Select(Keyed)]);

    public void Inc(double value) => _inner.Inc(value);

    public void Dec(double value) => _inner.Dec(value);

    public void Set(double value) => _inner.Set(value);

    public double Get() => _inner.Get();

    // FileBackend keys by name: the name carries the hand-made definition.
    private static MetricDescriptor Keyed(MetricDescriptor metric) =>
        new($"{metric.Name}|{metric.Type}|{string.Join(',', metric.LabelNames)}|{string.Join(',', metric.Buckets)}|{metric.GaugeAggregation}", metric.Help, metric.Type, metric.LabelNames, metric.LabelValues, metric.Buckets, metric.GaugeAggregation);
}

/// <summary>
/// In-process and correct, except that ObserveHistogram remembers the first bucket it was given and counts every later
/// observation there: a histogram's observations pile up in one bucket while the sum stays right.
/// </summary>
public sealed class FirstBucketObserveBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<FirstBucketObserveBackend>
{
    private readonly Cell _cell = new();
    private IMetricBackend? _firstBucket;

    public static BackendCapabilities Capabilities => BackendCapabilities.AtomicHistogramObserve;

    public static void Initialize(BackendConfig config)
    {
    }

    public void Inc(double value) => _cell.Add(value);

    public void Dec(double value) => _cell.Add(-value);

    public void Set(double value) => _cell.Set(value);

    public double Get() => _cell.Value;

    public void ObserveHistogram(IMetricBackend bucket, double value)
    {
        (_firstBucket ??= bucket).Inc(1);
        _cell.Add(value);
    }
}
