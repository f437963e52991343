using System.Runtime.CompilerServices;

[assembly: Metrics.MetricBackend(typeof(Metrics.Backends.SharedMemory.SharedMemoryBackend))]

namespace Metrics.Backends.SharedMemory;

/// <summary>
/// A value shared by every process on the host that opens the same store file: all processes creating the same
/// metric, label values and bucket update one 8-byte word in a memory-mapped file with compare-and-swap, so there is
/// no lock and no system call on the update path, and no per-process file.
/// </summary>
/// <remarks>
/// <para>
/// Settings (all optional, under the backend's configuration section): <c>Path</c> (the store file; default
/// <c>/dev/shm/metrics-&lt;user&gt;.store</c> on Linux, the temp directory elsewhere), <c>InitialSize</c> (bytes,
/// default 1 MiB), <c>MaxSize</c> (bytes mapped once, default 64 MiB), <c>MaxProcesses</c> (concurrent processes
/// using aggregated gauges, default 256) and <c>IndexBuckets</c> (power of two, default 16384).
/// </para>
/// <para>
/// Gauges honour <see cref="MetricDescriptor.GaugeAggregation"/>: Sum and MostRecent share one value; LiveSum, Max,
/// Min and their Live variants, and LiveMostRecent keep one cell per live process slot; PerProcess series carry the
/// owner's identity so LivePerProcess can drop exited processes. A process is alive while it holds the record lock
/// of its slot, which the kernel releases when the process dies, SIGKILL included, so pid reuse cannot fool it.
/// </para>
/// </remarks>
public sealed unsafe class SharedMemoryBackend : IMetricBackend<SharedMemoryBackend>
{
    private static long s_refusedSeries;

    private readonly long* _value;
    private readonly long* _sequence;
    private readonly SharedMemoryStore _store;
    private readonly GaugeAggregation _mode;
    private readonly byte[]? _cellKey;

    /// <summary>Finds or creates the value in the store and keeps a pointer to it for every later update.</summary>
    /// <param name="config">The backend's configuration section; opens the store if <see cref="Initialize"/> did not.</param>
    /// <param name="metric">The metric and the series' label values.</param>
    /// <param name="histogramBucket">The histogram or summary part, or <see langword="null"/>.</param>
    /// <exception cref="SharedMemoryStoreFullException">The store has no room for a new series or process slot.</exception>
    public SharedMemoryBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(metric);
        _store = SharedMemoryStore.For(config);
        _mode = metric.Type == MetricType.Gauge ? metric.GaugeAggregation : GaugeAggregation.Sum;
        var describe = metric.ToString;
        try
        {
            if (GaugeAggregator.UsesCells(_mode))
            {
                var (slot, epoch) = _store.ProcessSlot();
                _cellKey = SeriesKey.Encode(metric.Name, metric.LabelValues, histogramBucket, EntryRole.Cell, slot);
                var entry = _store.FindOrCreate(_cellKey, epoch, describe);
                var foldsDead = _mode is GaugeAggregation.Max or GaugeAggregation.Min;
                if (foldsDead)
                {
                    // Created up front, so taking over a dead process's cell later never needs room in a full store.
                    _store.FindOrCreate(SeriesKey.WithRole(_cellKey, EntryRole.Archive, -1), SharedMemoryStore.EmptyArchive, describe);
                }

                TakeOwnership(entry, epoch, ownerMayBeAlive: false, foldsDead ? describe : null);
                _value = (long*)Unsafe.AsPointer(ref SharedMemoryStore.Word(entry, 1));
                _sequence = _mode == GaugeAggregation.LiveMostRecent ? (long*)Unsafe.AsPointer(ref SharedMemoryStore.Word(entry, 2)) : null;
            }
            else if (_mode is GaugeAggregation.PerProcess or GaugeAggregation.LivePerProcess)
            {
                var (_, epoch) = _store.ProcessSlot();
                var key = SeriesKey.Encode(metric.Name, metric.LabelValues, histogramBucket, EntryRole.Owned, -1);
                var entry = _store.FindOrCreate(key, epoch, describe);
                TakeOwnership(entry, epoch, ownerMayBeAlive: true, describe: null);
                _value = (long*)Unsafe.AsPointer(ref SharedMemoryStore.Word(entry, 1));
            }
            else
            {
                var key = SeriesKey.Encode(metric.Name, metric.LabelValues, histogramBucket, EntryRole.Value, -1);
                _value = (long*)Unsafe.AsPointer(ref SharedMemoryStore.Word(_store.FindOrCreate(key, 0, describe), 0));
            }
        }
        catch (SharedMemoryStoreFullException)
        {
            Interlocked.Increment(ref s_refusedSeries);
            throw;
        }
    }

    /// <summary>Declares that values are shared by every process that opens the same store.</summary>
    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses;

    /// <summary>How many series this process was refused because the store was full (<see cref="SharedMemoryStoreFullException"/>).</summary>
    public static long RefusedSeries => Interlocked.Read(ref s_refusedSeries);

    /// <summary>Reports <see cref="RefusedSeries"/> as <c>metrics_backend_refused_series_total</c> in every scrape.</summary>
    /// <param name="config">The configuration (the count covers every store of the process).</param>
    /// <returns>The statistic.</returns>
    public static IReadOnlyList<BackendStatistic> Statistics(BackendConfig config) =>
    [
        new("metrics_backend_refused_series_total", "Series the SharedMemory backend refused because its store was full. Raise Metrics:BackendConfig:MaxSize.", MetricType.Counter, RefusedSeries),
    ];

    /// <summary>The store file used when the configuration names none: <c>/dev/shm/metrics-&lt;user&gt;.store</c> on Linux, the temp directory elsewhere.</summary>
    public static string DefaultPath => StoreOptions.DefaultPath;

    /// <summary>Opens (creating if needed) and maps the store, and validates the settings against it.</summary>
    /// <param name="config">The backend's configuration section.</param>
    /// <exception cref="BackendConfigException">A setting is malformed, out of range, or disagrees with the existing store.</exception>
    public static void Initialize(BackendConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        _ = SharedMemoryStore.For(config);
    }

    /// <summary>
    /// Reads every value the store holds for <paramref name="families"/>, written by any process, applying each gauge's
    /// aggregation mode and leaving out exited processes' contributions for the Live modes.
    /// </summary>
    /// <param name="config">The configuration naming the store.</param>
    /// <param name="families">The families to read.</param>
    /// <returns>One list per family, in order.</returns>
    public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(families);
        var store = SharedMemoryStore.For(config);
        var results = new List<CollectedValue>[families.Count];
        var byName = new Dictionary<string, int>(StringComparer.Ordinal);
        var needsLiveness = false;
        for (var i = 0; i < families.Count; i++)
        {
            results[i] = [];
            byName.TryAdd(families[i].Name, i);
            needsLiveness |= families[i].Type == MetricType.Gauge && GaugeAggregator.LiveOnly(families[i].GaugeAggregation);
        }

        var live = needsLiveness ? store.LiveEpochs() : null;
        var lookup = byName.GetAlternateLookup<ReadOnlySpan<char>>();
        var groups = new Dictionary<string, (int Family, string[] Labels, HistogramBucket? Bucket, GaugeAggregator Aggregator)>(StringComparer.Ordinal);
        foreach (var address in store.Entries())
        {
            var entry = (byte*)address;
            var key = SharedMemoryStore.KeyOf(entry);
            if (!lookup.TryGetValue(SeriesKey.NameOf(key), out var familyIndex))
            {
                continue;
            }

            var family = families[familyIndex];
            var mode = family.Type == MetricType.Gauge ? family.GaugeAggregation : GaugeAggregation.Sum;
            var role = SeriesKey.RoleOf(key);
            // A role that does not match the family's mode was written by a process that declared the metric differently.
            switch (role)
            {
                case EntryRole.Value when mode is GaugeAggregation.Sum or GaugeAggregation.MostRecent:
                    Add(familyIndex, key, Volatile.Read(ref SharedMemoryStore.Word(entry, 0)));
                    break;
                case EntryRole.Owned when mode == GaugeAggregation.PerProcess
                                          || (mode == GaugeAggregation.LivePerProcess && live!.Contains(Volatile.Read(ref SharedMemoryStore.Word(entry, 0)))):
                    Add(familyIndex, key, Volatile.Read(ref SharedMemoryStore.Word(entry, 1)));
                    break;
                case EntryRole.Cell or EntryRole.Archive when GaugeAggregator.UsesCells(mode):
                    var groupKey = SeriesKey.GroupKey(key);
                    if (!groups.TryGetValue(groupKey, out var group))
                    {
                        var labels = SeriesKey.DecodeLabels(key, out var bucket);
                        group = (familyIndex, labels, bucket, new GaugeAggregator(mode, live));
                        groups.Add(groupKey, group);
                    }

                    if (role == EntryRole.Archive)
                    {
                        group.Aggregator.AddArchive(Volatile.Read(ref SharedMemoryStore.Word(entry, 0)));
                    }
                    else
                    {
                        var sequence = Volatile.Read(ref SharedMemoryStore.Word(entry, 2));
                        var value = BitConverter.Int64BitsToDouble(Volatile.Read(ref SharedMemoryStore.Word(entry, 1)));
                        group.Aggregator.AddCell(Volatile.Read(ref SharedMemoryStore.Word(entry, 0)), value, sequence);
                    }

                    break;
            }
        }

        foreach (var (family, labels, bucket, aggregator) in groups.Values)
        {
            if (aggregator.HasValue && labels.Length == families[family].LabelNames.Count)
            {
                results[family].Add(new CollectedValue(labels, bucket, aggregator.Value));
            }
        }

        return results;

        void Add(int familyIndex, ReadOnlySpan<byte> key, long bits)
        {
            var labels = SeriesKey.DecodeLabels(key, out var bucket);
            // Label values from a process that declared other label names cannot be rendered under this family's names.
            if (labels.Length == families[familyIndex].LabelNames.Count)
            {
                results[familyIndex].Add(new CollectedValue(labels, bucket, BitConverter.Int64BitsToDouble(bits)));
            }
        }
    }

    /// <summary>Adds <paramref name="value"/> with a compare-and-swap on the value's bits in the mapped file.</summary>
    /// <param name="value">The amount to add.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Inc(double value)
    {
        ref var word = ref Unsafe.AsRef<long>(_value);
        var current = Volatile.Read(ref word);
        while (true)
        {
            var seen = Interlocked.CompareExchange(ref word, BitConverter.DoubleToInt64Bits(BitConverter.Int64BitsToDouble(current) + value), current);
            if (seen == current)
            {
                break;
            }

            current = seen;
        }

        if (_sequence != null)
        {
            Stamp();
        }
    }

    /// <summary>Subtracts <paramref name="value"/>.</summary>
    /// <param name="value">The amount to subtract.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dec(double value) => Inc(-value);

    /// <summary>Replaces the value (for aggregated gauges: this process's contribution). Every bit pattern round-trips.</summary>
    /// <param name="value">The new value.</param>
    public void Set(double value)
    {
        Interlocked.Exchange(ref Unsafe.AsRef<long>(_value), BitConverter.DoubleToInt64Bits(value));
        if (_sequence != null)
        {
            Stamp();
        }
    }

    /// <summary>
    /// Reads the value as every process sees it: the shared value, or for aggregated gauges the aggregate over
    /// the processes the mode counts (which costs a look-up per process slot; scrapes use <see cref="Collect"/>).
    /// </summary>
    /// <returns>The value.</returns>
    public double Get()
    {
        if (_cellKey is null)
        {
            return BitConverter.Int64BitsToDouble(Volatile.Read(ref Unsafe.AsRef<long>(_value)));
        }

        var aggregator = new GaugeAggregator(_mode, GaugeAggregator.LiveOnly(_mode) ? _store.LiveEpochs() : null);
        foreach (var (slot, _, _, _) in _store.Slots())
        {
            var cell = _store.Find(SeriesKey.WithRole(_cellKey, EntryRole.Cell, slot));
            if (cell != null)
            {
                aggregator.AddCell(
                    Volatile.Read(ref SharedMemoryStore.Word(cell, 0)),
                    BitConverter.Int64BitsToDouble(Volatile.Read(ref SharedMemoryStore.Word(cell, 1))),
                    Volatile.Read(ref SharedMemoryStore.Word(cell, 2)));
            }
        }

        var archive = _store.Find(SeriesKey.WithRole(_cellKey, EntryRole.Archive, -1));
        if (archive != null)
        {
            aggregator.AddArchive(Volatile.Read(ref SharedMemoryStore.Word(archive, 0)));
        }

        return aggregator.Value;
    }

    private void Stamp()
    {
        // Ordered by a store-wide counter rather than the clock, so "most recent" is exact across processes.
        var sequence = _store.NextSequence();
        ref var word = ref Unsafe.AsRef<long>(_sequence);
        var current = Volatile.Read(ref word);
        while (current < sequence)
        {
            var seen = Interlocked.CompareExchange(ref word, sequence, current);
            if (seen == current)
            {
                break;
            }

            current = seen;
        }
    }

    /// <summary>
    /// Makes this process the owner of a cell or per-process series. A previous owner is dead (its slot was ours to take,
    /// or it is no longer live), so its value is folded into the archive (Max, Min) and the value restarts at 0.
    /// </summary>
    private void TakeOwnership(byte* entry, long epoch, bool ownerMayBeAlive, Func<string>? describe)
    {
        ref var owner = ref SharedMemoryStore.Word(entry, 0);
        var spins = 0;
        while (true)
        {
            var current = Volatile.Read(ref owner);
            if (current == epoch)
            {
                return;
            }

            if (current == -epoch)
            {
                // Another thread of this process is taking the same entry over; it publishes the epoch when done.
                Thread.SpinWait(++spins);
                continue;
            }

            if (ownerMayBeAlive && current > 0 && _store.LiveEpochs().Contains(current))
            {
                // Two live processes with one pid (containers sharing the store): they share the series.
                return;
            }

            if (Interlocked.CompareExchange(ref owner, -epoch, current) != current)
            {
                continue;
            }

            if (describe is not null && current != 0)
            {
                FoldIntoArchive(Volatile.Read(ref SharedMemoryStore.Word(entry, 1)), describe);
            }

            Volatile.Write(ref SharedMemoryStore.Word(entry, 1), 0);
            Volatile.Write(ref SharedMemoryStore.Word(entry, 2), 0);
            Volatile.Write(ref owner, epoch);
            return;
        }
    }

    private void FoldIntoArchive(long bits, Func<string> describe)
    {
        if (bits == SharedMemoryStore.EmptyArchive)
        {
            bits = BitConverter.DoubleToInt64Bits(double.NaN);
        }

        var archive = _store.FindOrCreate(SeriesKey.WithRole(_cellKey!, EntryRole.Archive, -1), SharedMemoryStore.EmptyArchive, describe);
        ref var word = ref SharedMemoryStore.Word(archive, 0);
        var current = Volatile.Read(ref word);
        while (true)
        {
            var next = current == SharedMemoryStore.EmptyArchive
                ? bits
                : BitConverter.DoubleToInt64Bits(GaugeAggregator.Combine(_mode, BitConverter.Int64BitsToDouble(current), BitConverter.Int64BitsToDouble(bits)));
            var seen = Interlocked.CompareExchange(ref word, next, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
