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
/// <c>/dev/shm/metrics-&lt;uid&gt;/&lt;application&gt;.store</c> on Linux, the temp directory elsewhere),
/// <c>ApplicationName</c> (names the default store; default the entry assembly's name), <c>InitialSize</c> (bytes,
/// default 1 MiB), <c>MaxSize</c> (bytes mapped once, up to which the file grows; default 1 GiB on Linux, 64 MiB
/// elsewhere), <c>MaxProcesses</c> (process slots: processes using the store at once, default 256),
/// <c>IndexBuckets</c> (power of two, default 16384) and <c>CheckInterval</c> (how often the file is checked besides
/// every scrape, default 1 s).
/// </para>
/// <para>
/// The store file is never trusted: a link at the path, a file of another user or writable by others, and a damaged
/// or truncated store are refused with a message naming the file. A file truncated, replaced or deleted under a running
/// process is noticed at the next scrape or check; the process moves to a valid store at the same path, counts it in
/// <c>metrics_backend_store_resets_total</c> and logs one line. Values created before keep pointing into memory that
/// stays mapped, but are no longer shared.
/// </para>
/// <para>
/// Gauges honour <see cref="MetricDescriptor.GaugeAggregation"/>: Sum and MostRecent share one value; LiveSum, Max,
/// Min and their Live variants, and LiveMostRecent keep one cell per live process slot; PerProcess series carry the
/// owner's identity so LivePerProcess can drop exited processes. A process is alive while it holds the record lock
/// of its slot, which the kernel releases when the process dies, SIGKILL included, so pid reuse cannot fool it.
/// </para>
/// <para>
/// Every value is keyed by its family's definition (<see cref="MetricDescriptor.DefinitionId"/>) as well as its name,
/// labels and part, and each process records which definitions its slot uses: processes that declare a metric
/// differently (a rolling deploy that changed a histogram's buckets) keep apart values, each scrape serves only its own
/// definition, and a live process using another one is counted in <c>metrics_backend_schema_conflicts_total</c> and
/// named once in the backend log (<see cref="BackendLog"/>).
/// </para>
/// <para>
/// Values whose increment is one compare-and-swap of one word expose it as <see cref="ValueCell"/>, so the metrics API
/// adds to the mapped file directly. One process's registries share a value exactly as two processes do.
/// </para>
/// </remarks>
public sealed unsafe class SharedMemoryBackend : IMetricBackend<SharedMemoryBackend>
{
    private const string SchemaConflictsName = "metrics_backend_schema_conflicts_total";

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
        var definition = SeriesKey.DefinitionOf(metric);
        try
        {
            _store.RecordDefinition(metric);
            if (GaugeAggregator.UsesCells(_mode))
            {
                var (slot, epoch) = _store.ProcessSlot();
                _cellKey = SeriesKey.Encode(metric.Name, metric.LabelValues, histogramBucket, EntryRole.Cell, slot, definition);
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
                var key = SeriesKey.Encode(metric.Name, metric.LabelValues, histogramBucket, EntryRole.Owned, -1, definition);
                var entry = _store.FindOrCreate(key, epoch, describe);
                TakeOwnership(entry, epoch, ownerMayBeAlive: true, describe: null);
                _value = (long*)Unsafe.AsPointer(ref SharedMemoryStore.Word(entry, 1));
            }
            else
            {
                var key = SeriesKey.Encode(metric.Name, metric.LabelValues, histogramBucket, EntryRole.Value, -1, definition);
                _value = (long*)Unsafe.AsPointer(ref SharedMemoryStore.Word(_store.FindOrCreate(key, 0, describe), 0));
            }
        }
        catch (SharedMemoryStoreFullException)
        {
            Interlocked.Increment(ref s_refusedSeries);
            throw;
        }
    }

    /// <summary>
    /// Declares that values are shared by every process that opens the same store
    /// (<see cref="BackendCapabilities.SharedAcrossProcesses"/>) and that the store records each family's definition
    /// (<see cref="BackendCapabilities.RecordsSchema"/>). Updates are immediate, so not
    /// <see cref="BackendCapabilities.BatchesUpdates"/>.
    /// </summary>
    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses | BackendCapabilities.RecordsSchema | BackendCapabilities.NativeHistogramBuckets | BackendCapabilities.AllGaugeAggregations;

    /// <summary>How many series this process was refused because the store was full (<see cref="SharedMemoryStoreFullException"/>).</summary>
    public static long RefusedSeries => Interlocked.Read(ref s_refusedSeries);

    /// <summary>
    /// The word of the mapped file holding this value's bits, when one compare-and-swap there is a complete increment:
    /// the shared value of counters, histogram and summary parts, Sum and MostRecent gauges, and this process's cell of
    /// LiveSum, Max, Min, LiveMax, LiveMin and per-process gauges. 0 for LiveMostRecent, whose writes also take a
    /// store-wide sequence number. The mapping stays in place for as long as this object is reachable, shutdown included.
    /// </summary>
    public nint ValueCell => _sequence == null ? (nint)_value : 0;

    /// <summary>
    /// Reports, in every scrape, <c>metrics_backend_refused_series_total</c> (<see cref="RefusedSeries"/>, for every store of
    /// the process) and <c>metrics_backend_schema_conflicts_total</c> (for the store <paramref name="config"/> names: one per
    /// family per collection that found the family declared differently by a live process).
    /// </summary>
    /// <param name="config">The configuration naming the store.</param>
    /// <returns>The statistics.</returns>
    public static IReadOnlyList<BackendStatistic> Statistics(BackendConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return
        [
            new("metrics_backend_refused_series_total", "Series the SharedMemory backend refused because its store was full. Raise Metrics:BackendConfig:MaxSize.", MetricType.Counter, RefusedSeries),
            new(
                SchemaConflictsName,
                "Scrapes that found a metric family declared differently (type, labels, buckets or gauge mode) by another live process on the same SharedMemory store; each definition's values are kept apart and only this process's are served. The backend log names the family; align the declarations or finish the deploy.",
                MetricType.Counter,
                SharedMemoryStore.DiagnosticsFor(config).SchemaConflicts),
            new(
                "metrics_backend_store_resets_total",
                "Times this process found its SharedMemory store file truncated, replaced, overwritten or deleted by something else and moved to a valid store at the same path; values created before are no longer shared. The backend log names the file and what happened.",
                MetricType.Counter,
                SharedMemoryStore.DiagnosticsFor(config).Resets),
        ];
    }

    /// <summary>
    /// The store file used when the configuration names none, for this application:
    /// <c>/dev/shm/metrics-&lt;uid&gt;/&lt;application&gt;.store</c> on Linux (<c>&lt;temp&gt;/metrics-&lt;user&gt;/...</c> elsewhere),
    /// where the application is the entry assembly's name unless the <c>ApplicationName</c> setting names it.
    /// </summary>
    public static string DefaultPath => StoreOptions.DefaultPath;

    /// <summary>
    /// The Reset operation: deletes the store file <paramref name="config"/> names, so that the next process to use it
    /// starts an empty store. This process first releases the configuration (as <see cref="ShutdownAsync"/> does). It
    /// refuses while a live process holds a slot in the store (every process that created a value does); processes that
    /// only read it notice the deletion at their next check and move to the new store.
    /// </summary>
    /// <param name="config">The configuration naming the store.</param>
    /// <returns><see langword="true"/> when a file was deleted, <see langword="false"/> when there was none.</returns>
    /// <exception cref="InvalidOperationException">A live process still uses the store, or another configuration of this process has it open.</exception>
    /// <exception cref="BackendConfigException">The path is a symbolic link or a file of another user, which is left alone.</exception>
    public static bool ResetStore(BackendConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        SharedMemoryStore.Shutdown(config);
        return SharedMemoryStore.Delete(StoreOptions.Read(config));
    }

    /// <summary>
    /// Opens (creating if needed) and maps the store, and validates the settings against it. After
    /// <see cref="ShutdownAsync"/> it opens the store afresh (creating the file again if it was deleted).
    /// </summary>
    /// <param name="config">The backend's configuration section.</param>
    /// <exception cref="BackendConfigException">A setting is malformed, out of range, or disagrees with the existing store.</exception>
    public static void Initialize(BackendConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        _ = SharedMemoryStore.For(config);
    }

    /// <summary>Releases the store <paramref name="config"/> opened: see <see cref="ShutdownAsync"/>.</summary>
    /// <param name="config">The configuration to release.</param>
    /// <param name="cancellationToken">Unused: releasing takes no time worth bounding.</param>
    /// <returns>A completed task.</returns>
    public static ValueTask ShutdownAsync(BackendConfig config, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(config);
        // Updates are written through, so there is nothing to flush. Closing the file drops this process's record locks:
        // its slot (and with it its Live gauge contributions and schema records) reads as dead to every process at once.
        // The mapping itself stays until no value points into it; values kept by the application keep working on it, but
        // their aggregated-gauge reads no longer count this process as alive.
        SharedMemoryStore.Shutdown(config);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Reads every value the store holds for <paramref name="families"/> under each family's definition, written by any
    /// process, applying each gauge's aggregation mode and leaving out exited processes' contributions for the Live modes.
    /// Completes synchronously: the store is memory.
    /// </summary>
    /// <remarks>
    /// Values written under another definition of a family's name are never returned. When a live process records such
    /// a definition, the family counts once in <c>metrics_backend_schema_conflicts_total</c> and, the first time in this
    /// process, one line in the backend log names the family and both definitions. A conflict affects no other family.
    /// </remarks>
    /// <param name="config">The configuration naming the store.</param>
    /// <param name="families">The families to read.</param>
    /// <param name="cancellationToken">Checked before the store is read.</param>
    /// <returns>One list per family, in order.</returns>
    public static ValueTask<IReadOnlyList<CollectedValue>[]?> CollectAsync(BackendConfig config, IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(families);
        cancellationToken.ThrowIfCancellationRequested();
        // Every scrape first checks that the file is still the one mapped, whole: a truncated, replaced or deleted store is
        // left for a valid one before anything is read.
        return ValueTask.FromResult<IReadOnlyList<CollectedValue>[]?>(Collect(SharedMemoryStore.CheckedOrReplaced(SharedMemoryStore.For(config)), families));
    }

    private static CollectedValueList[] Collect(SharedMemoryStore store, IReadOnlyList<MetricDescriptor> families)
    {
        var results = new CollectedValueList[families.Count];
        var definitions = new ulong[families.Count];
        var byName = new Dictionary<string, int>(StringComparer.Ordinal);
        var needsLiveness = false;
        for (var i = 0; i < families.Count; i++)
        {
            results[i] = new();
            definitions[i] = SeriesKey.DefinitionOf(families[i]);
            byName.TryAdd(families[i].Name, i);
            needsLiveness |= families[i].Type == MetricType.Gauge && GaugeAggregator.LiveOnly(families[i].GaugeAggregation);
        }

        var live = needsLiveness ? store.LiveEpochs() : null;
        var lookup = byName.GetAlternateLookup<ReadOnlySpan<char>>();
        var groups = new Dictionary<string, (int Family, string[] Labels, HistogramBucket? Bucket, GaugeAggregator Aggregator)>(StringComparer.Ordinal);

        // Decoded names are one string per name in the store, so a family is found by reference, not by hashing its text.
        var byDecodedName = new Dictionary<string, int>(ReferenceEqualityComparer.Instance);
        lock (store.DecodeGate)
        {
            var (series, schema) = store.WalkReused();
            ReportConflicts(store, families, definitions, lookup, schema, ref live);
            foreach (var address in series)
            {
                var entry = (byte*)address;
                var key = store.Decode(entry);
                if (!byDecodedName.TryGetValue(key.Name, out var familyIndex))
                {
                    familyIndex = byName.TryGetValue(key.Name, out var found) ? found : -1;
                    byDecodedName.Add(key.Name, familyIndex);
                }

                if (familyIndex < 0 || key.Definition != definitions[familyIndex])
                {
                    continue;
                }

                var family = families[familyIndex];
                var mode = family.Type == MetricType.Gauge ? family.GaugeAggregation : GaugeAggregation.Sum;
                // The definition already pins the mode; a role that does not match it can only come from a damaged entry.
                switch (key.Role)
                {
                    case EntryRole.Value when mode is GaugeAggregation.Sum or GaugeAggregation.MostRecent:
                        Add(familyIndex, key, Volatile.Read(ref SharedMemoryStore.Word(entry, 0)));
                        break;
                    case EntryRole.Owned when mode == GaugeAggregation.PerProcess
                                              || (mode == GaugeAggregation.LivePerProcess && live!.Contains(Volatile.Read(ref SharedMemoryStore.Word(entry, 0)))):
                        Add(familyIndex, key, Volatile.Read(ref SharedMemoryStore.Word(entry, 1)));
                        break;
                    case EntryRole.Cell or EntryRole.Archive when GaugeAggregator.UsesCells(mode):
                        if (!groups.TryGetValue(key.GroupKey!, out var group))
                        {
                            group = (familyIndex, key.Labels, key.Bucket, new GaugeAggregator(mode, live));
                            groups.Add(key.GroupKey!, group);
                        }

                        if (key.Role == EntryRole.Archive)
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
        }

        foreach (var (family, labels, bucket, aggregator) in groups.Values)
        {
            if (aggregator.HasValue && labels.Length == families[family].LabelNames.Count)
            {
                results[family].Add(new CollectedValue(labels, bucket, aggregator.Value));
            }
        }

        return results;

        void Add(int familyIndex, DecodedKey key, long bits)
        {
            // The definition pins the label names; a count that disagrees means a 64-bit definition hash collided.
            if (key.Labels.Length == families[familyIndex].LabelNames.Count)
            {
                results[familyIndex].Add(new CollectedValue(key.Labels, key.Bucket, BitConverter.Int64BitsToDouble(bits)));
            }
        }
    }

    /// <summary>Adds <paramref name="value"/> with a compare-and-swap on the value's bits in the mapped file.</summary>
    /// <param name="value">The amount to add.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Inc(double value)
    {
        AtomicDouble.Add(ref Unsafe.AsRef<long>(_value), value);
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
    /// the processes the mode counts (which costs a look-up per process slot; scrapes use <see cref="CollectAsync"/>).
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
        var mode = _mode;
        var folded = BitConverter.Int64BitsToDouble(bits);
        // The empty marker is a signalling NaN that only moves between registers here, never through arithmetic, so its bits survive.
        AtomicDouble.Update(
            ref SharedMemoryStore.Word(archive, 0),
            current => BitConverter.DoubleToInt64Bits(current) == SharedMemoryStore.EmptyArchive ? folded : GaugeAggregator.Combine(mode, current, folded));
    }

    private static void ReportConflicts(
        SharedMemoryStore store,
        IReadOnlyList<MetricDescriptor> families,
        ulong[] definitions,
        Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> lookup,
        List<nint> schema,
        ref HashSet<long>? live)
    {
        Dictionary<int, string>? conflicts = null;
        foreach (var address in schema)
        {
            var entry = (byte*)address;
            var key = SharedMemoryStore.KeyOf(entry);
            if (!lookup.TryGetValue(SeriesKey.NameOf(key), out var familyIndex)
                || SeriesKey.DefinitionOf(key) == definitions[familyIndex]
                || conflicts?.ContainsKey(familyIndex) == true)
            {
                continue;
            }

            // A record whose owner's slot lock is free belongs to a dead process: its definition has expired.
            live ??= store.LiveEpochs();
            if (live.Contains(Volatile.Read(ref SharedMemoryStore.Word(entry, 0))))
            {
                conflicts ??= [];
                conflicts[familyIndex] = SeriesKey.DecodeLabels(key, out _) is [var text] ? text : "(unreadable)";
            }
        }

        if (conflicts is null)
        {
            return;
        }

        foreach (var (familyIndex, other) in conflicts)
        {
            var family = families[familyIndex];
            store.Diagnostics.CountSchemaConflict();
            if (store.Diagnostics.LoggedFamilies.TryAdd(family.Name, 0))
            {
                // Once per family per process: the conflict lasts as long as the other processes, a line per scrape would flood.
                BackendLog.Write(
                    "SharedMemory",
                    BackendLogLevel.Warning,
                    $"Metrics: SharedMemory store '{store.Options.Path}': metric family '{family.Name}' is declared here as '{family.Definition}' but as '{other}' by another live process. Each definition keeps its own values and this process serves only its own; counted in {SchemaConflictsName} until those processes exit.");
            }
        }
    }
}
