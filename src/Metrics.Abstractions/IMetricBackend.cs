namespace Metrics;

/// <summary>
/// One backend value: one series of a counter or gauge, or one bucket, sum or count of a histogram or summary
/// series. This is the instance surface the metrics API calls on every update.
/// </summary>
/// <remarks>
/// <para>
/// Implement <see cref="IMetricBackend{TSelf}"/> rather than this interface directly: the host also needs the static
/// members declared there. A backend type must have a public constructor
/// <c>(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)</c>; the host calls it once per
/// value, after <see cref="IMetricBackend{TSelf}.Initialize"/>.
/// </para>
/// <para>
/// Every member may be called concurrently from many threads. Updates must not throw for transport faults (a network
/// or disk error): keep the update and report the fault through your own channel. They must not block on the network
/// either: buffer and flush in the background.
/// </para>
/// <para>
/// <b>Identity.</b> Two values are the same value exactly when their configuration, <see cref="MetricDescriptor.Name"/>,
/// <see cref="MetricDescriptor.LabelValues"/> and bucket are equal <i>and</i> the backend shares its store: a backend
/// with <see cref="BackendCapabilities.SharedAcrossProcesses"/> gives every value created for the same series with an
/// equal configuration one stored value, whether the two were created in two processes or in two registries of one
/// process. A backend without it keeps each created value on its own, so two registries of one process never see each
/// other's updates.
/// </para>
/// <para>
/// <b>Exactness under concurrency.</b> N threads each adding M whole numbers read the exact total while it stays below
/// 2^53, in every backend. Without <see cref="BackendCapabilities.BatchesUpdates"/>, a value also reads exactly what
/// the same updates give when applied one at a time in some order: ten threads each adding 0.1 a thousand times read
/// what ten thousand sequential additions of 0.1 give. A backend may add whole numbers apart from the rest (as the
/// Memory backend's contention cells do), since that is exact. A backend that declares
/// <see cref="BackendCapabilities.BatchesUpdates"/> may add a process's pending updates to the store in one step, so a
/// fractional total can differ from one-at-a-time addition in its last bits.
/// </para>
/// </remarks>
public interface IMetricBackend
{
    /// <summary>Adds <paramref name="value"/> to the stored value. Atomic against concurrent updates.</summary>
    /// <param name="value">The amount to add; any double, the caller has validated it.</param>
    void Inc(double value);

    /// <summary>Subtracts <paramref name="value"/> from the stored value. Atomic against concurrent updates.</summary>
    /// <param name="value">The amount to subtract.</param>
    void Dec(double value);

    /// <summary>Replaces the stored value. NaN, infinities and negative zero must round-trip through <see cref="Get"/>.</summary>
    /// <param name="value">The new value.</param>
    void Set(double value);

    /// <summary>
    /// Reads the current value. In the calling process this includes every update that has returned
    /// (read-your-writes), even when writes to a shared store are batched.
    /// </summary>
    /// <returns>The current value; 0 for a value that was never updated.</returns>
    double Get();

    /// <summary>
    /// Contract 1.1, optional: the address of an 8-byte aligned word holding this value's double bits
    /// (<see cref="BitConverter.DoubleToInt64Bits"/>), or 0 (the default) when the value has none.
    /// </summary>
    /// <remarks>
    /// The host reads it when the value is created, and again after an update found the word moved (below). When it is not 0, the host may add to the value by one
    /// compare-and-swap of that word (<see cref="AtomicDouble.TryAddToCell"/>) instead of calling <see cref="Inc"/> or
    /// <see cref="Dec"/>; when that compare-and-swap fails it calls <see cref="Inc"/>. <see cref="Set"/> and
    /// <see cref="Get"/> always go through the backend. Return an address only when a successful compare-and-swap there
    /// is a complete increment: the word must stay valid and fixed in memory for as long as this object is reachable
    /// (pinned or native memory, or a mapped file that stays mapped), and <see cref="Get"/> and collection must read it.
    /// <para>
    /// Contract 1.1, additive: a value may move. The backend then writes <see cref="AtomicDouble.MovedCell"/> into the old word,
    /// which stays valid memory and is never written again; <see cref="AtomicDouble.TryAddToCell"/> refuses it, so the host
    /// calls <see cref="Inc"/>, which adds at the new place, and the host reads this property again for its later
    /// updates. A backend whose values move must itself add with <see cref="AtomicDouble.TryAddToCell"/> (never over the
    /// marker) and never <see cref="Set"/> over it. A backend whose values never move has nothing to do. A value whose own
    /// bits happen to equal <see cref="AtomicDouble.MovedCell"/> (stored by <see cref="Set"/>) only takes the slower path:
    /// <see cref="Inc"/> must treat it as a value, not as a move, unless the value did move.
    /// </para>
    /// </remarks>
    nint ValueCell => 0;

    /// <summary>
    /// Contract 1.1, optional: records one histogram observation, called on the series' <em>sum</em> value: adds 1 to
    /// <paramref name="bucket"/> (a value the same backend type created for the same series) and
    /// <paramref name="value"/> to this sum. The host calls it only when the backend declares
    /// <see cref="BackendCapabilities.AtomicHistogramObserve"/>; a shared backend implements it so that no scrape sees
    /// the bucket without the sum or the sum without the bucket.
    /// </summary>
    /// <param name="bucket">The bucket value the observation falls into.</param>
    /// <param name="value">The observed value, added to the sum.</param>
    void ObserveHistogram(IMetricBackend bucket, double value)
    {
        ArgumentNullException.ThrowIfNull(bucket);
        bucket.Inc(1);
        Inc(value);
    }

    /// <summary>
    /// Optional (backends declaring <see cref="BackendCapabilities.Exemplars"/>): stores <paramref name="exemplar"/> as this
    /// value's exemplar unless the stored one is later (<see cref="RecordedExemplar.TimestampUnixSeconds"/>): the latest
    /// by timestamp wins, across processes for a shared backend. The host calls it after the increment it belongs to,
    /// only when the backend declares the capability. Must not throw for transport faults; the default does nothing.
    /// </summary>
    /// <param name="exemplar">The exemplar, its labels already validated.</param>
    void RecordExemplar(in RecordedExemplar exemplar)
    {
    }

    /// <summary>
    /// Optional (backends declaring <see cref="BackendCapabilities.Exemplars"/>): the latest exemplar stored for this value,
    /// or <see langword="null"/> (the default). The host reads it when it collects value by value (a backend whose
    /// <see cref="IMetricBackend{TSelf}.CollectAsync"/> returns <see langword="null"/>); a backend that collects in batch
    /// returns exemplars in <see cref="CollectedValue.Exemplar"/> instead.
    /// </summary>
    /// <returns>The exemplar, or <see langword="null"/> when none was recorded.</returns>
    RecordedExemplar? GetExemplar() => null;
}

/// <summary>
/// The full backend contract: the instance surface of <see cref="IMetricBackend"/> plus the per-configuration hooks the
/// host calls through the concrete type.
/// </summary>
/// <typeparam name="TSelf">The implementing type itself (<c>sealed class MyBackend : IMetricBackend&lt;MyBackend&gt;</c>).</typeparam>
/// <remarks>
/// <para>
/// Only <see cref="Initialize"/> must be implemented; every other static member has a default that suits an in-process
/// backend. A shared backend overrides <see cref="Capabilities"/>, <see cref="CollectAsync"/>, <see cref="FlushAsync"/>
/// and <see cref="ShutdownAsync"/>.
/// </para>
/// <para>
/// Version 1.0 of the contract had the synchronous <see cref="Collect"/> and <see cref="Flush"/>; version 1.1 added the
/// asynchronous forms, <see cref="ShutdownAsync"/>, <see cref="IMetricBackend.ValueCell"/> and
/// <see cref="IMetricBackend.ObserveHistogram"/>. The host only calls the 1.1 members, whose defaults call the 1.0 ones,
/// so a backend built against 1.0 keeps working unchanged. Implement either form of a hook, not both. Later, additive versions added
/// the optional <see cref="IMetricBackend.RecordExemplar"/> and <see cref="IMetricBackend.GetExemplar"/>, and the optional
/// <see cref="RemoveSeries"/> and <see cref="SeriesCount"/>, used only when declared in
/// <see cref="Capabilities"/>, and let a value cell move (<see cref="AtomicDouble.MovedCell"/>); a backend whose cells stay put is
/// unaffected.
/// </para>
/// </remarks>
public interface IMetricBackend<TSelf> : IMetricBackend
    where TSelf : IMetricBackend<TSelf>
{
    /// <summary>
    /// Called once per backend type and configuration before the first value is created with that configuration, and
    /// again after <see cref="ShutdownAsync"/> when the configuration is used again. Open connections, map files and
    /// validate <paramref name="config"/> here; throw a <see cref="BackendConfigException"/> (for example through the typed
    /// reads of <see cref="BackendConfig"/>) when a setting is wrong, so the application fails at startup with a message
    /// naming the key.
    /// </summary>
    /// <param name="config">The backend's configuration section.</param>
    static abstract void Initialize(BackendConfig config);

    /// <summary>What the backend promises beyond the basic contract. The default is <see cref="BackendCapabilities.None"/>.</summary>
    static virtual BackendCapabilities Capabilities => BackendCapabilities.None;

    /// <summary>
    /// Contract 1.0: the synchronous form of <see cref="CollectAsync"/>, which calls it by default. Return
    /// <see langword="null"/> (the default) to let the host read each value it created through
    /// <see cref="IMetricBackend.Get"/> instead, which is right for an in-process backend.
    /// </summary>
    /// <param name="config">The configuration the values were created with.</param>
    /// <param name="families">The metric families to read; <see cref="MetricDescriptor.LabelValues"/> is empty on these.</param>
    /// <returns>One list per family, in the order of <paramref name="families"/>, or <see langword="null"/>.</returns>
    static virtual IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) => null;

    /// <summary>
    /// Reads, in one batch, every value the store holds for the given metric families, including series created only in
    /// other processes and this process's updates that are not flushed yet. The host calls it once per scrape, and
    /// concurrent scrapes of one registry share one call. Return <see langword="null"/> to let the host read each value
    /// it created through <see cref="IMetricBackend.Get"/>. The default calls <see cref="Collect"/>.
    /// </summary>
    /// <remarks>
    /// A backend that records family definitions (<see cref="BackendCapabilities.RecordsSchema"/>) returns only values
    /// written under the definition given here (<see cref="MetricDescriptor.Definition"/>): values another process wrote
    /// under another definition of the same name are left out, counted in its statistics, and the family named once in
    /// its log. One family's conflict never fails the collection of the others.
    /// </remarks>
    /// <param name="config">The configuration the values were created with.</param>
    /// <param name="families">The metric families to read; <see cref="MetricDescriptor.LabelValues"/> is empty on these.</param>
    /// <param name="cancellationToken">Signalled when no scrape waits for the result any more: stop reading and throw.</param>
    /// <returns>
    /// One list per family, in the order of <paramref name="families"/>, each holding one entry per stored value, or
    /// <see langword="null"/> when the backend does not collect in batch.
    /// </returns>
    /// <exception cref="Exception">Any exception fails the scrape with its message; never return partial data silently.</exception>
    static virtual ValueTask<IReadOnlyList<CollectedValue>[]?> CollectAsync(BackendConfig config, IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken) =>
        ValueTask.FromResult(TSelf.Collect(config, families));

    /// <summary>Contract 1.0: the synchronous form of <see cref="FlushAsync"/>, which calls it by default. The default does nothing.</summary>
    /// <param name="config">The configuration whose values to flush.</param>
    static virtual void Flush(BackendConfig config)
    {
    }

    /// <summary>
    /// Pushes buffered updates to the store and completes when they are stored, when the backend's own timeout elapses
    /// or when <paramref name="cancellationToken"/> is signalled (updates not sent then stay pending; never lose them
    /// silently). Called by the host before shutdown and by tests that need other processes to see this process's
    /// values. The default calls <see cref="Flush"/>, which is right for a backend that writes through.
    /// </summary>
    /// <param name="config">The configuration whose values to flush.</param>
    /// <param name="cancellationToken">Bounds the wait.</param>
    /// <returns>A task completing when the flush is done.</returns>
    static virtual ValueTask FlushAsync(BackendConfig config, CancellationToken cancellationToken)
    {
        TSelf.Flush(config);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Contract 1.1: flushes and releases what <see cref="Initialize"/> opened for <paramref name="config"/> (connections,
    /// mapped files, process slots, background loops). The host calls it once per initialized configuration: when the
    /// registry or host that owns it is disposed, or from its single process-exit hook with a timeout. Backends must not
    /// hook process exit themselves.
    /// </summary>
    /// <remarks>
    /// Values created before shutdown may still be updated afterwards by code that kept them: that must not crash
    /// (keep memory they point into alive until they are collected); such updates may be lost, but never land in the
    /// values of other series or of another configuration, also after the store is initialized again (never hand out
    /// storage that live values may still update). After shutdown the host
    /// may call <see cref="Initialize"/> with the same configuration again, which must give a working store. The default
    /// calls <see cref="FlushAsync"/>.
    /// </remarks>
    /// <param name="config">The configuration to release.</param>
    /// <param name="cancellationToken">Bounds the flush; release what you can when it is signalled.</param>
    /// <returns>A task completing when the configuration is released.</returns>
    static virtual ValueTask ShutdownAsync(BackendConfig config, CancellationToken cancellationToken) => TSelf.FlushAsync(config, cancellationToken);

    /// <summary>
    /// Optional, added after contract 1.1 (a plugin built against 1.1 keeps loading and does not declare it): removes every stored value of one series (<paramref name="series"/> carries its label
    /// values; every part of a histogram or summary series, native buckets included), in every process's view of a
    /// shared store. Called only when the backend declares <see cref="BackendCapabilities.RemovesSeries"/>; the default
    /// does nothing.
    /// </summary>
    /// <remarks>
    /// After the call, collection leaves the series out until one of its values is updated again (by any process, through
    /// any value created for the series before or after the removal), and then reports it as if it had been created at
    /// the removal: the updates made before it are gone. Values created for the series before the removal stay valid and
    /// usable (a metric may keep pointers into them). An update racing the removal may be lost or may bring the series
    /// back; either is correct. Must not block on the network: a backend that batches may apply the removal with its next
    /// flush, before the updates that follow it, and must not resend this process's updates made before it.
    /// </remarks>
    /// <param name="config">The configuration the series' values were created with.</param>
    /// <param name="series">The family descriptor with the series' full label values.</param>
    static virtual void RemoveSeries(BackendConfig config, MetricDescriptor series)
    {
    }

    /// <summary>
    /// Optional, added after contract 1.1 (a plugin built against 1.1 keeps loading and does not declare it): how many distinct series (label sets) of <paramref name="family"/> the shared store holds,
    /// created by any process, as this process last knew it; -1 (the default) when unknown. Called only when the backend
    /// declares <see cref="BackendCapabilities.CountsSeries"/>, each time the host is about to create a series it has
    /// not seen, so it must be cheap: return a number refreshed by the last flush or collection when the store is remote.
    /// A remote backend may read the count when it is older than its flush interval, but only within a bounded time, never
    /// while its connection is still being made, and never throwing: on a fault it answers from what it last knew plus
    /// this process's own series. Removed series do not count.
    /// </summary>
    /// <param name="config">The configuration the family's values are created with.</param>
    /// <param name="family">The family; <see cref="MetricDescriptor.LabelValues"/> is empty.</param>
    /// <returns>The number of series, or -1.</returns>
    static virtual long SeriesCount(BackendConfig config, MetricDescriptor family) => -1;

    /// <summary>
    /// Numbers the backend reports about itself (updates dropped, series refused, schema conflicts), exposed by the host
    /// in every scrape of a registry that uses this backend. The default reports nothing.
    /// </summary>
    /// <param name="config">The configuration whose statistics to report.</param>
    /// <returns>The statistics; names must be valid metric names and should start with <c>metrics_backend_</c>.</returns>
    static virtual IReadOnlyList<BackendStatistic> Statistics(BackendConfig config) => [];
}
