using System.Runtime.CompilerServices;

[assembly: Metrics.MetricBackend(typeof(Metrics.Backends.Redis.RedisBackend))]

namespace Metrics.Backends.Redis;

/// <summary>
/// A metric value shared by every process and host that uses the same Redis server and key prefix. Updates never wait
/// on the network: they are coalesced in this process (a pending delta, or a pending set plus a delta) and flushed
/// in pipelined batches every <c>FlushInterval</c>, on <see cref="FlushAsync"/> and on <see cref="ShutdownAsync"/>.
/// </summary>
/// <remarks>
/// <para>
/// Configuration keys (all optional): <c>ConnectionString</c> (StackExchange.Redis syntax, default
/// <c>127.0.0.1:6379</c>; AUTH and TLS through <c>password=</c>, <c>user=</c>, <c>ssl=true</c>), <c>KeyPrefix</c>
/// (<c>metrics:</c>), <c>KeyExpiry</c> (<c>24h</c>; <c>0s</c> keeps keys forever), <c>FlushInterval</c> (<c>1s</c>),
/// <c>MaxPendingSeries</c> (100000), <c>ConnectTimeout</c> (<c>5s</c>), <c>OperationTimeout</c> (<c>5s</c>),
/// <c>HeartbeatInterval</c> (<c>5s</c>) and <c>HeartbeatTimeout</c> (<c>30s</c>).
/// </para>
/// <para>
/// Gauges support every <see cref="GaugeAggregation"/>. Sum, MostRecent and PerProcess keep one shared value per series;
/// the other modes keep one value per process (identified by host, pid and start time), aggregated by the server at a
/// scrape. A process is live while it renews its deadline (Redis server time) every <c>HeartbeatInterval</c>; one that
/// has not for <c>HeartbeatTimeout</c>, or shut down, is dead: the Live modes leave it out, Max and Min keep its value.
/// </para>
/// <para>
/// If Redis is unreachable no update throws: pending updates stay coalesced per series and are sent when Redis is back.
/// What has to be discarded is counted in <see cref="DroppedUpdates"/> and reported through the backend log (BackendLog).
/// </para>
/// <para>
/// Each family's values are stored under its definition (<see cref="MetricDescriptor.DefinitionId"/>): processes that
/// declare a name differently never mix values, and a scrape that finds another definition in use counts it in
/// <c>metrics_backend_schema_conflicts_total</c> and serves its own values only.
/// </para>
/// </remarks>
public sealed class RedisBackend : IMetricBackend<RedisBackend>
{
    // Shared by every instance of the same series and part in this configuration, so each sees the others' unflushed updates.
    private readonly RedisCell _cell;

    /// <summary>Creates the value and schedules its creation in Redis (as 0 when absent). Never waits on the network.</summary>
    /// <param name="config">The backend configuration; <see cref="Initialize"/> runs first if the host has not called it.</param>
    /// <param name="metric">The metric and the series' full label values.</param>
    /// <param name="histogramBucket">The histogram or summary part, or <see langword="null"/> for a counter or gauge.</param>
    /// <exception cref="ArgumentException">A label value holds an unpaired UTF-16 surrogate, which has no UTF-8 form.</exception>
    public RedisBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(metric);
        _cell = RedisStore.Get(config).GetCell(metric, histogramBucket);
    }

    /// <summary>
    /// Updates discarded since the process started, over every configuration: pending series beyond
    /// <c>MaxPendingSeries</c> while Redis was unreachable, and updates still unsent when a shutdown could not reach
    /// Redis in time. Each discarded series counts once, whatever number of coalesced updates it held.
    /// </summary>
    public static long DroppedUpdates => RedisStore.DroppedUpdates;

    /// <summary>
    /// Values are shared by every process using the same Redis server and key prefix
    /// (<see cref="BackendCapabilities.SharedAcrossProcesses"/>); updates are coalesced and added in one step per flush,
    /// so fractional sums may round differently from one-at-a-time addition while whole numbers stay exact
    /// (<see cref="BackendCapabilities.BatchesUpdates"/>); a histogram observation reaches Redis and every scrape with its
    /// bucket and sum together (<see cref="BackendCapabilities.AtomicHistogramObserve"/>); each family's definition is
    /// recorded and values of other definitions are never mixed in (<see cref="BackendCapabilities.RecordsSchema"/>).
    /// </summary>
    public static BackendCapabilities Capabilities =>
        BackendCapabilities.SharedAcrossProcesses | BackendCapabilities.BatchesUpdates | BackendCapabilities.AtomicHistogramObserve | BackendCapabilities.RecordsSchema | BackendCapabilities.NativeHistogramBuckets | BackendCapabilities.AllGaugeAggregations | BackendCapabilities.RemovesSeries | BackendCapabilities.CountsSeries | BackendCapabilities.Exemplars;

    /// <summary>
    /// Keeps the exemplar in this process (a scrape here shows it at once) and sends it with the next flush to the
    /// family's exemplar hash (<c>&lt;data key&gt;:ex</c>, same hash tag), where the latest by timestamp wins and every
    /// process's scrape reads it. Never waits on the network; allocates only when the flush encodes it.
    /// </summary>
    /// <param name="exemplar">The exemplar.</param>
    public void RecordExemplar(in RecordedExemplar exemplar) => _cell.RecordExemplar(exemplar);

    /// <summary>The latest exemplar this process recorded for the value; scrapes read every process's through <see cref="CollectAsync"/>.</summary>
    /// <returns>The exemplar, or null.</returns>
    public RecordedExemplar? GetExemplar() => _cell.LocalExemplar;

    internal RedisFamily Family => _cell.Family;

    internal RedisCell Cell => _cell;

    /// <summary>
    /// Reports <c>metrics_backend_dropped_updates_total</c> (<see cref="DroppedUpdates"/>, over every configuration) and
    /// <c>metrics_backend_schema_conflicts_total</c> (collections of a family, with <paramref name="config"/>, that found
    /// it recorded under another definition too) and <c>metrics_backend_store_resets_total</c> (times a flush with
    /// <paramref name="config"/> found that Redis had lost what this process had stored) in every scrape.
    /// </summary>
    /// <param name="config">The configuration whose schema conflicts to report.</param>
    /// <returns>The statistics.</returns>
    public static IReadOnlyList<BackendStatistic> Statistics(BackendConfig config) =>
    [
        new("metrics_backend_dropped_updates_total", "Series updates the Redis backend discarded because Redis was unreachable and MaxPendingSeries was reached, or a shutdown could not reach it. Raise Metrics:BackendConfig:MaxPendingSeries or restore Redis.", MetricType.Counter, DroppedUpdates),
        new("metrics_backend_store_resets_total", "Times Redis was found to have lost data it had stored for this process (a restart without persistence, FLUSHALL, a failover to a replica that missed writes); values written before are gone. Enable appendonly on Redis.", MetricType.Counter, RedisFlusher.StoreResets(config)),
        new("metrics_backend_schema_conflicts_total", "Scrapes of a metric family that found another process declaring the same name with another definition (type, labels, buckets or aggregation); the other definition's values are left out. See the log for the family and both definitions.", MetricType.Counter, RedisCollector.SchemaConflicts(config)),
    ];

    /// <summary>
    /// Reads <paramref name="config"/>, starts connecting in the background and starts the flusher. Returns without
    /// waiting for Redis; a server that is down at startup only delays the first flush.
    /// </summary>
    /// <param name="config">The backend configuration.</param>
    /// <exception cref="BackendConfigException">A setting is invalid; the message names the key and never shows a secret.</exception>
    public static void Initialize(BackendConfig config) => RedisStore.Get(config);

    /// <summary>
    /// Reads every stored value of <paramref name="families"/> in one pipeline (one script per family, each an atomic
    /// snapshot of the family's values under the definition given, as one bulk string), plus this process's unflushed updates. Values written
    /// under another definition of a family are left out and counted (see <see cref="Statistics"/>).
    /// </summary>
    /// <param name="config">The configuration the values were created with.</param>
    /// <param name="families">The families to read.</param>
    /// <param name="cancellationToken">Stops waiting; a read already sent completes in the background and is discarded.</param>
    /// <returns>One list per family, in order.</returns>
    /// <exception cref="RedisBackendException">Redis is unreachable or did not answer within <c>OperationTimeout</c>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was signalled.</exception>
    public static async ValueTask<IReadOnlyList<CollectedValue>[]?> CollectAsync(BackendConfig config, IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(families);
        return await RedisStore.Get(config).Collector.CollectAsync(families, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Removes a series (or, with no label values on a labelled family, every series of the family) from Redis: this
    /// process's pending updates of it are dropped at once, and its fields are deleted with the next flush (within
    /// FlushInterval, or by <see cref="FlushAsync"/>), before any update made after the call is sent, so the series comes
    /// back from 0 with the next update in any process. Another process's updates made before the removal but not yet
    /// flushed by it still arrive afterwards and bring the series back with them. Never blocks on the network.
    /// </summary>
    /// <param name="config">The backend's configuration section.</param>
    /// <param name="series">The family with the series' label values.</param>
    public static void RemoveSeries(BackendConfig config, MetricDescriptor series)
    {
        ArgumentNullException.ThrowIfNull(series);
        RedisStore.Get(config).RemoveSeries(series);
    }

    /// <summary>
    /// The number of series of <paramref name="family"/> in Redis (every process's) as this process last read the family's
    /// field list, plus the series it created since; -1 while Redis could not be read. No scrape is needed: a call that
    /// finds nothing read within FlushInterval reads it when connected (waiting at most OperationTimeout; never for a
    /// connection), other calls answer from memory and the flusher reads what was appended since. The host calls it when it is about to create a series.
    /// </summary>
    /// <param name="config">The backend's configuration section.</param>
    /// <param name="family">The family.</param>
    /// <returns>The number of series, or -1.</returns>
    public static long SeriesCount(BackendConfig config, MetricDescriptor family)
    {
        ArgumentNullException.ThrowIfNull(family);
        return RedisStore.Get(config).SeriesCount(family);
    }

    /// <summary>
    /// Sends every update made before the call and completes when Redis stored them, or after <c>OperationTimeout</c>
    /// when Redis is unreachable (the updates then stay pending and the failure is reported through the backend log (BackendLog)).
    /// Then reads the series counts of the families whose cardinality limit this process checks (see <see cref="SeriesCount"/>).
    /// </summary>
    /// <param name="config">The configuration whose values to flush.</param>
    /// <param name="cancellationToken">Stops waiting; pending updates stay pending.</param>
    /// <returns>A task completing when the flush is done or given up.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was signalled.</exception>
    public static async ValueTask FlushAsync(BackendConfig config, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (RedisStore.Find(config) is not { } store)
        {
            return;
        }

        var (ok, error) = await store.Flusher.TryFlushAsync(store.Settings.OperationTimeout, cancellationToken).ConfigureAwait(false);
        if (!ok)
        {
            store.Log($"flush did not complete: {error}. The updates stay pending and are re-sent when Redis is reachable.");
        }

        // Then the counts, so that series created after a flush are checked against every process's series flushed before it.
        await store.RefreshSeriesCountsAsync(all: true).ConfigureAwait(false);
    }

    /// <summary>
    /// Flushes pending updates (bounded by <c>OperationTimeout</c> and <paramref name="cancellationToken"/>), stops the
    /// flusher and closes the connection of <paramref name="config"/>. Updates that could not be sent are counted in
    /// <see cref="DroppedUpdates"/> and logged; the call does not throw for them. A later <see cref="Initialize"/> with
    /// the same configuration starts a fresh store. Values created before keep accepting updates without error, but those
    /// updates are no longer sent.
    /// </summary>
    /// <param name="config">The configuration to release.</param>
    /// <param name="cancellationToken">Cuts the final flush short.</param>
    /// <returns>A task completing when the configuration is released.</returns>
    public static ValueTask ShutdownAsync(BackendConfig config, CancellationToken cancellationToken) => RedisStore.ShutdownAsync(config, cancellationToken);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Inc(double value) => _cell.Inc(value);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dec(double value) => _cell.Inc(-value);

    /// <inheritdoc/>
    public void Set(double value) => _cell.Set(value);

    /// <inheritdoc/>
    /// <remarks>
    /// Reads the stored value from Redis (one round trip, at most <c>OperationTimeout</c>) and adds this process's
    /// updates that Redis has not applied yet, so it sees other instances and processes as well as its own writes. When
    /// Redis cannot be read it returns the last stored value this process saw plus its own unapplied updates, and writes
    /// the failure once through the backend log; it never throws for a transport fault.
    /// </remarks>
    public double Get() => _cell.Get();

    /// <inheritdoc/>
    /// <remarks>
    /// Adds 1 to the bucket's pending update and <paramref name="value"/> to this sum's under one short lock of the
    /// series (no network, no allocation); the flusher takes every part of the series under the same lock and writes them
    /// with one script to one hash, and a scrape reads that hash in one step, so no scrape sees a bucket without its sum.
    /// A bucket from another backend or series is updated with two separate calls.
    /// </remarks>
    public void ObserveHistogram(IMetricBackend bucket, double value)
    {
        if (bucket is RedisBackend { _cell: var part } && _cell.Group is { } series && ReferenceEquals(part.Group, series))
        {
            lock (series.Gate)
            {
                part.AddPending(1);
                _cell.AddPending(value);
            }

            part.MarkDirty();
            _cell.MarkDirty();
            return;
        }

        ArgumentNullException.ThrowIfNull(bucket);
        bucket.Inc(1);
        Inc(value);
    }
}
