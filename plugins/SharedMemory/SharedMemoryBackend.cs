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
/// <c>metrics_backend_store_resets_total</c> and logs one line. Values created before move to the new store: every update
/// after the move is shared (the old cells read <see cref="AtomicDouble.MovedCell"/>, so the metrics API follows), what
/// they counted before is lost.
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

    private static readonly object RelocationGate = new();

    private static long s_refusedSeries;

    private readonly BackendConfig _config;
    private readonly MetricDescriptor _metric;
    private readonly HistogramBucket? _bucket;
    private readonly GaugeAggregation _mode;

    // All five change together when the store file is replaced under the process and the value moves to the new store.
    private long* _value;
    private byte* _entry;
    private long* _sequence;
    private SharedMemoryStore _store;
    private byte[]? _cellKey;

    // Where updates go when the value moved but no store could take it (the path became unusable, or the new store is full).
    private long[]? _stranded;

    // Counters' and histograms' shared values: the value's key (for its exemplar entry) and that entry's record in the
    // current store, once used. Both change with the others when the value moves to a new store.
    private byte[]? _exemplarKey;
    private byte* _exemplar;

    /// <summary>Finds or creates the value in the store and keeps a pointer to it for every later update.</summary>
    /// <param name="config">The backend's configuration section; opens the store if <see cref="Initialize"/> did not.</param>
    /// <param name="metric">The metric and the series' label values.</param>
    /// <param name="histogramBucket">The histogram or summary part, or <see langword="null"/>.</param>
    /// <exception cref="SharedMemoryStoreFullException">The store has no room for a new series or process slot.</exception>
    public SharedMemoryBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(metric);
        _config = config;
        _metric = metric;
        _bucket = histogramBucket;
        _mode = metric.Type == MetricType.Gauge ? metric.GaugeAggregation : GaugeAggregation.Sum;
        _store = null!;
        try
        {
            for (var store = SharedMemoryStore.For(config); ; store = SharedMemoryStore.For(config))
            {
                try
                {
                    Resolve(store);
                }
                catch (Exception e) when (e is ObjectDisposedException or InvalidDataException && store.IsDetached)
                {
                    // The file was replaced while the value was being created in it (its entries now read as moved):
                    // create the value in the new store.
                    continue;
                }

                // A store detached after the value was found in it may have been marked before the pointer was taken,
                // or not at all: the value is taken again from the store in its place.
                if (!store.IsDetached)
                {
                    break;
                }
            }
        }
        catch (SharedMemoryStoreFullException)
        {
            Interlocked.Increment(ref s_refusedSeries);
            throw;
        }
    }

    /// <summary>Finds or creates this value in <paramref name="store"/> and points every later update there.</summary>
    private void Resolve(SharedMemoryStore store)
    {
        var metric = _metric;
        var histogramBucket = _bucket;
        var describe = metric.ToString;
        var definition = SeriesKey.DefinitionOf(metric);
        store.RecordDefinition(metric);
        if (GaugeAggregator.UsesCells(_mode))
        {
            var (slot, epoch) = store.ProcessSlot();
            var cellKey = SeriesKey.Encode(metric.Name, metric.LabelValues, histogramBucket, EntryRole.Cell, slot, definition);
            var entry = store.FindOrCreate(cellKey, epoch, describe);
            var foldsDead = _mode is GaugeAggregation.Max or GaugeAggregation.Min;
            if (foldsDead)
            {
                // Created up front, so taking over a dead process's cell later never needs room in a full store.
                store.FindOrCreate(SeriesKey.WithRole(cellKey, EntryRole.Archive, -1), SharedMemoryStore.EmptyArchive, describe);
            }

            TakeOwnership(store, cellKey, entry, epoch, ownerMayBeAlive: false, foldsDead ? describe : null);
            _cellKey = cellKey;
            _entry = entry;
            _sequence = _mode == GaugeAggregation.LiveMostRecent ? (long*)Unsafe.AsPointer(ref SharedMemoryStore.Word(entry, 2)) : null;
            _value = (long*)Unsafe.AsPointer(ref SharedMemoryStore.Word(entry, 1));
        }
        else if (_mode is GaugeAggregation.PerProcess or GaugeAggregation.LivePerProcess)
        {
            var (_, epoch) = store.ProcessSlot();
            var key = SeriesKey.Encode(metric.Name, metric.LabelValues, histogramBucket, EntryRole.Owned, -1, definition);
            var entry = store.FindOrCreate(key, epoch, describe);
            TakeOwnership(store, null, entry, epoch, ownerMayBeAlive: true, describe: null);
            _entry = entry;
            _value = (long*)Unsafe.AsPointer(ref SharedMemoryStore.Word(entry, 1));
        }
        else
        {
            var key = SeriesKey.Encode(metric.Name, metric.LabelValues, histogramBucket, EntryRole.Value, -1, definition);
            var entry = store.FindOrCreate(key, 0, describe);
            _entry = entry;
            _value = (long*)Unsafe.AsPointer(ref SharedMemoryStore.Word(entry, 0));
            if (metric.Type is MetricType.Counter or MetricType.Histogram)
            {
                // The exemplar record belongs to the store the value is in: a moved value finds or creates its own there.
                _exemplarKey = key;
                _exemplar = null;
            }
        }

        // Published after the pointer: a thread that sees the new store also sees the new pointer (see AddSlowly).
        Volatile.Write(ref _store, store);
    }

    /// <summary>
    /// Called when this value's word reads <see cref="AtomicDouble.MovedCell"/>: when its store was detached (the file
    /// was truncated, replaced or deleted), the value moves to the store now at the path, and true is returned. False
    /// when the store is still in use, so the word's bits are the value's own.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool Relocate()
    {
        var store = Volatile.Read(ref _store);
        if (!store.IsDetached || _stranded is not null)
        {
            return false;
        }

        lock (RelocationGate)
        {
            if (!ReferenceEquals(store, _store) || _stranded is not null)
            {
                return true;
            }

            // Updates never throw: when no store can take the value, it keeps counting in this process alone.
            // The value's latest exemplar moves with it (the old file's records are no longer read by any scrape).
            var exemplar = _exemplar != null ? ExemplarRecord.Read(_exemplar) : null;
            var next = SharedMemoryStore.Successor(store);
            while (next is not null)
            {
                try
                {
                    Resolve(next);
                    if (!next.IsDetached)
                    {
                        if (exemplar is { } moved)
                        {
                            RecordExemplar(moved);
                        }

                        return true;
                    }
                }
                catch (Exception e) when (e is SharedMemoryStoreFullException or ObjectDisposedException or IOException or InvalidDataException)
                {
                    if (!next.IsDetached)
                    {
                        BackendLog.Write("SharedMemory", BackendLogLevel.Error, $"Metrics: SharedMemory store '{next.Options.Path}': the value {_metric} could not move to the store that replaced its file ({e.Message}); its updates stay in this process.", e);
                        break;
                    }
                }

                next = SharedMemoryStore.Successor(next);
            }

            _stranded = GC.AllocateArray<long>(1, pinned: true);
            _sequence = null;
            _value = (long*)Unsafe.AsPointer(ref _stranded[0]);
            return true;
        }
    }

    /// <summary>
    /// Declares that values are shared by every process that opens the same store
    /// (<see cref="BackendCapabilities.SharedAcrossProcesses"/>) and that the store records each family's definition
    /// (<see cref="BackendCapabilities.RecordsSchema"/>). Updates are immediate, so not
    /// <see cref="BackendCapabilities.BatchesUpdates"/>.
    /// </summary>
    /// <remarks>
    /// Exemplars (<see cref="BackendCapabilities.Exemplars"/>): each counter value and histogram bucket keeps its latest
    /// exemplar in its own entry of the store (about 1.1 KiB, created with the value's first exemplar), so every process
    /// scraping the store shows it; the latest by timestamp wins, and of two processes writing one value's exemplar at the
    /// same instant one keeps its exemplar.
    /// </remarks>
    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses | BackendCapabilities.RecordsSchema | BackendCapabilities.NativeHistogramBuckets | BackendCapabilities.AllGaugeAggregations | BackendCapabilities.RemovesSeries | BackendCapabilities.CountsSeries | BackendCapabilities.Exemplars;

    /// <summary>How many series this process was refused because the store was full (<see cref="SharedMemoryStoreFullException"/>).</summary>
    public static long RefusedSeries => Interlocked.Read(ref s_refusedSeries);

    /// <summary>
    /// The word of the mapped file holding this value's bits, when one compare-and-swap there is a complete increment:
    /// the shared value of counters, histogram and summary parts, Sum and MostRecent gauges, and this process's cell of
    /// LiveSum, Max, Min, LiveMax, LiveMin and per-process gauges. 0 for LiveMostRecent, whose writes also take a
    /// store-wide sequence number. The mapping stays in place for as long as this object is reachable, shutdown included.
    /// </summary>
    public nint ValueCell
    {
        get
        {
            if (_store.IsDetached && _stranded is null)
            {
                Relocate();
            }

            return _sequence == null ? (nint)_value : 0;
        }
    }

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
                "Times this process found its SharedMemory store file truncated, replaced, overwritten or deleted by something else and moved to a valid store at the same path, taking its values along; what they counted before is lost. The backend log names the file and what happened.",
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
        while (true)
        {
            var store = SharedMemoryStore.CheckedOrReplaced(SharedMemoryStore.For(config));
            try
            {
                var collected = Collect(store, families);
                if (!store.IsDetached)
                {
                    return ValueTask.FromResult<IReadOnlyList<CollectedValue>[]?>(collected);
                }
            }
            catch (InvalidDataException) when (store.IsDetached)
            {
                // Another thread moved off the file while this one read it (its entries now read as moved): read the new store.
            }
        }
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
        lock (store.DecodeGate)
        {
            store.Refresh();
            ReportConflicts(store, families, definitions, byName.GetAlternateLookup<ReadOnlySpan<char>>(), store.KnownSchema, ref live);
            for (var i = 0; i < families.Count; i++)
            {
                // A name given twice is served once, to the first family that has it.
                if (byName[families[i].Name] == i && store.Family(families[i].Name, definitions[i]) is { } index)
                {
                    CollectFamily(store, families[i], index, results[i], live);
                }
            }
        }

        return results;
    }

    /// <summary>
    /// Reads one family's series from the index, in file order. A series all of whose entries are removed (and still
    /// empty) is left out and stops counting in <see cref="SeriesCount"/>; one updated since is back.
    /// </summary>
    private static void CollectFamily(SharedMemoryStore store, MetricDescriptor family, FamilyIndex index, CollectedValueList results, HashSet<long>? live)
    {
        var mode = family.Type == MetricType.Gauge ? family.GaugeAggregation : GaugeAggregation.Sum;
        var exemplars = family.Type is MetricType.Counter or MetricType.Histogram;
        var usesCells = GaugeAggregator.UsesCells(mode);
        var arity = family.LabelNames.Count;
        List<(HistogramBucket? Bucket, GaugeAggregator Aggregator)>? groups = null;
        foreach (var series in index.Series)
        {
            var labels = series.Labels;

            // The definition pins the label names; a count that disagrees means a 64-bit definition hash collided.
            var fits = series.Arity == arity;
            var any = false;
            groups?.Clear();
            foreach (var part in series.Parts)
            {
                var entry = (byte*)part.Entry;
                if (IsRemoved(entry, part.Role))
                {
                    continue;
                }

                any = true;
                if (!fits)
                {
                    continue;
                }

                // The definition already pins the mode; a role that does not match it can only come from a damaged entry.
                switch (part.Role)
                {
                    case EntryRole.Value when mode is GaugeAggregation.Sum or GaugeAggregation.MostRecent:
                        var bits = Volatile.Read(ref SharedMemoryStore.Word(entry, 0));
                        results.Add(new CollectedValue(labels, part.Bucket, BitConverter.Int64BitsToDouble(bits)) { Exemplar = exemplars ? ExemplarOf(store, entry) : null });
                        break;
                    case EntryRole.Owned when mode == GaugeAggregation.PerProcess
                                              || (mode == GaugeAggregation.LivePerProcess && live!.Contains(Volatile.Read(ref SharedMemoryStore.Word(entry, 0)))):
                        results.Add(new CollectedValue(labels, part.Bucket, BitConverter.Int64BitsToDouble(Volatile.Read(ref SharedMemoryStore.Word(entry, 1)))));
                        break;
                    case EntryRole.Cell or EntryRole.Archive when usesCells:
                        var aggregator = GroupOf(ref groups, part.Bucket, mode, live);
                        if (part.Role == EntryRole.Archive)
                        {
                            aggregator.AddArchive(Volatile.Read(ref SharedMemoryStore.Word(entry, 0)));
                        }
                        else
                        {
                            var sequence = Volatile.Read(ref SharedMemoryStore.Word(entry, 2));
                            var value = BitConverter.Int64BitsToDouble(Volatile.Read(ref SharedMemoryStore.Word(entry, 1)));
                            aggregator.AddCell(Volatile.Read(ref SharedMemoryStore.Word(entry, 0)), value, sequence);
                        }

                        break;
                }
            }

            // The walk is exact: removals and returns made by any process since the last scrape count from here on.
            index.SetCounted(series, any);
            if (groups is not null)
            {
                foreach (var (bucket, aggregator) in groups)
                {
                    if (aggregator.HasValue)
                    {
                        results.Add(new CollectedValue(labels, bucket, aggregator.Value));
                    }
                }
            }
        }

        static GaugeAggregator GroupOf(ref List<(HistogramBucket?, GaugeAggregator)>? groups, HistogramBucket? bucket, GaugeAggregation mode, HashSet<long>? live)
        {
            // A gauge's cells and archive aggregate into one value per part (a gauge has one part, so this list has one group).
            groups ??= [];
            foreach (var (known, aggregator) in groups)
            {
                if (Nullable.Equals(known, bucket))
                {
                    return aggregator;
                }
            }

            var added = new GaugeAggregator(mode, live);
            groups.Add((bucket, added));
            return added;
        }
    }

    /// <summary>The exemplar of a counter or histogram value entry, whose word 1 names its exemplar entry once one was recorded.</summary>
    private static RecordedExemplar? ExemplarOf(SharedMemoryStore store, byte* valueEntry)
    {
        var index = Volatile.Read(ref SharedMemoryStore.Word(valueEntry, 1));
        if (index == 0)
        {
            return null;
        }

        var entry = store.EntryWithPayload(index, EntryRole.Exemplar, ExemplarRecord.Size);
        return entry == null ? null : ExemplarRecord.Read(SharedMemoryStore.PayloadOf(entry));
    }

    /// <summary>
    /// Stores the exemplar in the store, where every process's scrape reads it, unless a later one is stored. The first
    /// exemplar of a value creates its exemplar entry; later ones write in place and allocate nothing.
    /// </summary>
    /// <param name="exemplar">The exemplar.</param>
    public void RecordExemplar(in RecordedExemplar exemplar)
    {
        if (_store.IsDetached && _stranded is null)
        {
            Relocate();
        }

        // A value stranded in this process (no store could take it) has nowhere to share its exemplar.
        if (_exemplarKey is null || _stranded is not null)
        {
            return;
        }

        var record = _exemplar;
        if (record == null)
        {
            try
            {
                record = CreateExemplarRecord();
            }
            catch (Exception e) when (e is SharedMemoryStoreFullException or ObjectDisposedException or InvalidDataException)
            {
                // The update path never throws: a full store keeps the value without its exemplar, and a store replaced
                // at this moment gets the value's next exemplar once the value moved to it.
                return;
            }
        }

        ExemplarRecord.Write(record, exemplar);
    }

    /// <summary>The latest exemplar stored for this value by any process; scrapes read them through <see cref="CollectAsync"/>.</summary>
    /// <returns>The exemplar, or null.</returns>
    public RecordedExemplar? GetExemplar()
    {
        if (_store.IsDetached && _stranded is null)
        {
            Relocate();
        }

        return _exemplarKey is null || _stranded is not null ? null : ExemplarOf(Volatile.Read(ref _store), _entry);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private byte* CreateExemplarRecord()
    {
        var store = Volatile.Read(ref _store);
        var key = SeriesKey.WithRole(_exemplarKey!, EntryRole.Exemplar, -1);
        var entry = store.FindOrCreate(key, 0, () => "exemplar of " + SeriesKey.NameOf(key).ToString(), ExemplarRecord.Size);
        // Published in the value entry for other processes' scrapes; every process creating it finds the same entry.
        Interlocked.CompareExchange(ref SharedMemoryStore.Word(_entry, 1), store.IndexOf(entry), 0);
        var record = SharedMemoryStore.PayloadOf(entry);
        _exemplar = record;
        return record;
    }

    /// <summary>
    /// Removes a series (or, with no label values on a labelled family, every series of the family) from the store for every
    /// process: each of its entries is marked removed and set to its empty state, its exemplars emptied. Entries are never freed, so values
    /// created before (and the cells metrics point into) stay valid; the first update that makes one of the series' values
    /// non-empty, or a <see cref="Set"/>, brings the series back from 0 in every process's scrape.
    /// </summary>
    /// <param name="config">The configuration naming the store.</param>
    /// <param name="series">The family with the series' label values.</param>
    public static void RemoveSeries(BackendConfig config, MetricDescriptor series)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(series);
        var store = SharedMemoryStore.For(config);
        var definition = SeriesKey.DefinitionOf(series);
        var all = series.LabelValues.Count == 0;
        lock (store.DecodeGate)
        {
            store.Refresh();
            if (store.Family(series.Name, definition) is not { } index)
            {
                return;
            }

            if (all)
            {
                foreach (var one in index.Series)
                {
                    Remove(index, one);
                }
            }
            else if (index.Find([.. series.LabelValues]) is { } one)
            {
                Remove(index, one);
            }
        }

        static void Remove(FamilyIndex index, SeriesIndex series)
        {
            foreach (var part in series.Parts)
            {
                var entry = (byte*)part.Entry;

                // Marked first: a scrape between the two steps sees a removed entry whose old value still shows, never a lost mark.
                Volatile.Write(ref *(int*)(entry + SharedMemoryStore.EntryRemoved), 1);
                switch (part.Role)
                {
                    case EntryRole.Value:
                        Interlocked.Exchange(ref SharedMemoryStore.Word(entry, 0), 0);
                        break;
                    case EntryRole.Owned:
                        Interlocked.Exchange(ref SharedMemoryStore.Word(entry, 1), 0);
                        break;
                    case EntryRole.Cell:
                        Interlocked.Exchange(ref SharedMemoryStore.Word(entry, 1), 0);
                        Interlocked.Exchange(ref SharedMemoryStore.Word(entry, 2), 0);
                        break;
                    case EntryRole.Archive:
                        Interlocked.Exchange(ref SharedMemoryStore.Word(entry, 0), SharedMemoryStore.EmptyArchive);
                        break;
                    case EntryRole.Exemplar:
                        // The record stays linked from its value entry (and mapped in every process): emptied, not freed.
                        ExemplarRecord.Clear(SharedMemoryStore.PayloadOf(entry));
                        break;
                }
            }

            index.SetCounted(series, false);
        }
    }

    /// <summary>
    /// How many label sets of <paramref name="family"/> the store holds, created by any process. Each call reads only the
    /// entries published since the previous one (nothing when the store has not grown), so a new series costs one pass
    /// over the index's bucket heads. Removed series drop out when this process removes them or scrapes the family; a
    /// removal by another process is seen at this process's next scrape.
    /// </summary>
    /// <param name="config">The configuration naming the store.</param>
    /// <param name="family">The family.</param>
    /// <returns>The number of series.</returns>
    public static long SeriesCount(BackendConfig config, MetricDescriptor family)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(family);
        var store = SharedMemoryStore.For(config);
        lock (store.DecodeGate)
        {
            return store.SeriesOf(family.Name, SeriesKey.DefinitionOf(family));
        }
    }

    /// <summary>
    /// Whether a removed entry is still at its empty state, so collection leaves it out. One that was updated since has
    /// its mark cleared here: the series is back.
    /// </summary>
    private static bool IsRemoved(byte* entry, EntryRole role)
    {
        ref var removed = ref *(int*)(entry + SharedMemoryStore.EntryRemoved);
        if (Volatile.Read(ref removed) == 0)
        {
            return false;
        }

        var empty = role switch
        {
            EntryRole.Value => Volatile.Read(ref SharedMemoryStore.Word(entry, 0)) == 0,
            EntryRole.Archive => Volatile.Read(ref SharedMemoryStore.Word(entry, 0)) == SharedMemoryStore.EmptyArchive,
            _ => Volatile.Read(ref SharedMemoryStore.Word(entry, 1)) == 0,
        };
        if (!empty)
        {
            Volatile.Write(ref removed, 0);
        }

        return empty;
    }

    /// <summary>Adds <paramref name="value"/> with a compare-and-swap on the value's bits in the mapped file.</summary>
    /// <param name="value">The amount to add.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Inc(double value)
    {
        if (!AtomicDouble.TryAddToCell(ref Unsafe.AsRef<long>(_value), value))
        {
            AddSlowly(value);
        }

        if (_sequence != null)
        {
            Stamp();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void AddSlowly(double value) => Update(value, replace: false);

    /// <summary>
    /// Adds <paramref name="value"/> to the word, or replaces it, with a compare-and-swap, following the value to the new
    /// store when this one moved: never over a moved word, or the metrics API would add to the old store again.
    /// </summary>
    /// <remarks>Inlined, so <see cref="Set"/> (a gauge's update path) pays no call and each caller's branch on
    /// <paramref name="replace"/> folds away.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Update(double value, bool replace)
    {
        while (true)
        {
            var pointer = _value;
            ref var word = ref Unsafe.AsRef<long>(pointer);
            var current = Volatile.Read(ref word);
            if (current == AtomicDouble.MovedCell && (Relocate() || pointer != _value))
            {
                continue;
            }

            var next = BitConverter.DoubleToInt64Bits(replace ? value : BitConverter.Int64BitsToDouble(current) + value);
            if (Interlocked.CompareExchange(ref word, next, current) == current)
            {
                return;
            }
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
        Update(value, replace: true);
        if (Volatile.Read(ref *(int*)(_entry + SharedMemoryStore.EntryRemoved)) != 0)
        {
            // Set(0) leaves the value at its empty state, yet it is an update: the removed series comes back.
            Volatile.Write(ref *(int*)(_entry + SharedMemoryStore.EntryRemoved), 0);
        }

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
        if (_store.IsDetached && _stranded is null)
        {
            Relocate();
        }

        if (_cellKey is null || _stranded is not null)
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
    private void TakeOwnership(SharedMemoryStore store, byte[]? cellKey, byte* entry, long epoch, bool ownerMayBeAlive, Func<string>? describe)
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

            if (ownerMayBeAlive && current > 0 && store.LiveEpochs().Contains(current))
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
                FoldIntoArchive(store, cellKey!, Volatile.Read(ref SharedMemoryStore.Word(entry, 1)), describe);
            }

            Volatile.Write(ref SharedMemoryStore.Word(entry, 1), 0);
            Volatile.Write(ref SharedMemoryStore.Word(entry, 2), 0);
            Volatile.Write(ref owner, epoch);
            return;
        }
    }

    private void FoldIntoArchive(SharedMemoryStore store, byte[] cellKey, long bits, Func<string> describe)
    {
        if (bits == SharedMemoryStore.EmptyArchive)
        {
            bits = BitConverter.DoubleToInt64Bits(double.NaN);
        }

        var archive = store.FindOrCreate(SeriesKey.WithRole(cellKey, EntryRole.Archive, -1), SharedMemoryStore.EmptyArchive, describe);
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

/// <summary>Compares decoded label sets by value.</summary>
internal sealed class LabelsComparer : IEqualityComparer<string[]>
{
    public static readonly LabelsComparer Instance = new();

    public bool Equals(string[]? x, string[]? y) => ReferenceEquals(x, y) || (x is not null && y is not null && x.AsSpan().SequenceEqual(y));

    public int GetHashCode(string[] obj)
    {
        var hash = default(HashCode);
        foreach (var value in obj)
        {
            hash.Add(value, StringComparer.Ordinal);
        }

        return hash.ToHashCode();
    }
}
