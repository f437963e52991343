using System.Runtime.CompilerServices;

[assembly: Metrics.MetricBackend(typeof(Metrics.Backends.Redis.RedisBackend))]

namespace Metrics.Backends.Redis;

/// <summary>
/// A metric value shared by every process and host that uses the same Redis server and key prefix. Updates never wait
/// on the network: they are coalesced in this process (a pending delta, or a pending set plus a delta) and flushed
/// in pipelined batches every <c>FlushInterval</c>, on <see cref="Flush"/> and at process exit.
/// </summary>
/// <remarks>
/// <para>
/// Configuration keys (all optional): <c>ConnectionString</c> (StackExchange.Redis syntax, default
/// <c>127.0.0.1:6379</c>; AUTH and TLS through <c>password=</c>, <c>user=</c>, <c>ssl=true</c>), <c>KeyPrefix</c>
/// (<c>metrics:</c>), <c>KeyExpiry</c> (<c>24h</c>; <c>0s</c> keeps keys forever), <c>FlushInterval</c> (<c>1s</c>),
/// <c>MaxPendingSeries</c> (100000), <c>ConnectTimeout</c> (<c>5s</c>), <c>OperationTimeout</c> (<c>5s</c>).
/// </para>
/// <para>
/// If Redis is unreachable no update throws: pending updates stay coalesced per series and are sent when Redis is back.
/// What has to be discarded is counted in <see cref="DroppedUpdates"/> and written to standard error.
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
    /// <exception cref="NotSupportedException">
    /// A gauge asks for an aggregation other than <see cref="GaugeAggregation.Sum"/> or <see cref="GaugeAggregation.PerProcess"/>:
    /// one shared value per series cannot give a maximum, minimum or live-processes-only view.
    /// </exception>
    public RedisBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(metric);
        if (metric.Type == MetricType.Gauge && metric.GaugeAggregation is not (GaugeAggregation.Sum or GaugeAggregation.PerProcess))
        {
            throw new NotSupportedException(
                $"Gauge '{metric.Name}' asks for aggregation {metric.GaugeAggregation}, which the Redis backend does not support: it keeps one shared value per series " +
                $"(Inc/Dec add up, Set is last writer wins). Use {nameof(GaugeAggregation.Sum)} or {nameof(GaugeAggregation.PerProcess)}, or the SharedMemory backend for per-process aggregation on one host.");
        }

        _cell = RedisStore.Get(config).GetCell(metric.Name, FieldCodec.Encode(metric.LabelValues, histogramBucket));
    }

    /// <summary>
    /// Updates discarded since the process started, over every configuration: pending series beyond
    /// <c>MaxPendingSeries</c> while Redis was unreachable, and updates still unsent when the process exited with
    /// Redis unreachable. Each discarded series counts once, whatever number of coalesced updates it held.
    /// </summary>
    public static long DroppedUpdates => RedisStore.DroppedUpdates;

    /// <summary>Reports <see cref="DroppedUpdates"/> as <c>metrics_backend_dropped_updates_total</c> in every scrape.</summary>
    /// <param name="config">The configuration (the count covers every configuration of the process).</param>
    /// <returns>The statistic.</returns>
    public static IReadOnlyList<BackendStatistic> Statistics(BackendConfig config) =>
    [
        new("metrics_backend_dropped_updates_total", "Series updates the Redis backend discarded because Redis was unreachable and MaxPendingSeries was reached. Raise Metrics:BackendConfig:MaxPendingSeries or restore Redis.", MetricType.Counter, DroppedUpdates),
    ];

    /// <summary>Values are shared by every process using the same Redis server and key prefix.</summary>
    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses;

    /// <summary>
    /// Reads <paramref name="config"/>, starts connecting in the background and starts the flusher. Returns without
    /// waiting for Redis; a server that is down at startup only delays the first flush.
    /// </summary>
    /// <param name="config">The backend configuration.</param>
    /// <exception cref="BackendConfigException">A setting is invalid; the message names the key and never shows a secret.</exception>
    public static void Initialize(BackendConfig config) => RedisStore.Get(config);

    /// <summary>
    /// Reads every stored value of <paramref name="families"/> in one pipeline (one <c>HGETALL</c> per family hash, each
    /// atomic), plus this process's unflushed updates.
    /// </summary>
    /// <param name="config">The configuration the values were created with.</param>
    /// <param name="families">The families to read.</param>
    /// <returns>One list per family, in order.</returns>
    /// <exception cref="RedisBackendException">Redis is unreachable or did not answer within <c>OperationTimeout</c>.</exception>
    public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families)
    {
        ArgumentNullException.ThrowIfNull(families);
        return RedisStore.Get(config).Collect(families);
    }

    /// <summary>
    /// Sends every update made before the call and returns when Redis stored them, or after <c>OperationTimeout</c>
    /// when Redis is unreachable (the updates then stay pending and the failure is written to standard error).
    /// </summary>
    /// <param name="config">The configuration whose values to flush.</param>
    public static void Flush(BackendConfig config) => RedisStore.Get(config).FlushAndLog();

    internal RedisFamily Family => _cell.Family;

    internal RedisCell Cell => _cell;

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
    /// the failure to standard error once; it never throws for a transport fault.
    /// </remarks>
    public double Get() => _cell.Get();
}
