using System.Buffers.Binary;
using System.Collections.Concurrent;
using StackExchange.Redis;

namespace Metrics.Backends.Redis;

/// <summary>
/// Everything one configuration shares in a process: the settings, the connection, the families and their values, the
/// flusher that sends their updates and the collector that reads them; created by <c>Initialize</c> and released by
/// <c>ShutdownAsync</c>.
/// </summary>
internal sealed class RedisStore
{
    private static readonly ConcurrentDictionary<BackendConfig, Lazy<RedisStore>> Stores = new();

    private readonly ConcurrentDictionary<(string Name, string DefinitionId), RedisFamily> _families = new();
    private readonly ConcurrentDictionary<(string Name, string DefinitionId), RedisFamilyKeys> _keys = new();
    private readonly string _writerId = NewWriterId();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Name, string DefinitionId), RedisSeriesCounter> _counters = new();
    private int _readFailureLogged;
    private int _countFailureLogged;
    private volatile bool _stopped;

    private RedisStore(BackendConfig config)
    {
        Config = config;
        Settings = RedisSettings.Read(config);
        Connection = new RedisConnection(Settings, Log);
        Collector = new RedisCollector(this);
        Flusher = new RedisFlusher(this);
    }

    public static long DroppedUpdates => RedisFlusher.DroppedUpdates;

    /// <summary>This process's writer id in this configuration (see <see cref="NewWriterId"/>).</summary>
    public string WriterId => _writerId;

    public BackendConfig Config { get; }

    public RedisSettings Settings { get; }

    public RedisConnection Connection { get; }

    public RedisFlusher Flusher { get; }

    public RedisCollector Collector { get; }

    /// <summary>The families this process uses, under their definitions.</summary>
    public IEnumerable<RedisFamily> Families => _families.Values;

    /// <summary>The store of <paramref name="config"/>, created (connecting in the background) on first use.</summary>
    public static RedisStore Get(BackendConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Stores.GetOrAdd(config, static c => new Lazy<RedisStore>(() => new RedisStore(c))).Value;
    }

    /// <summary>The store of <paramref name="config"/> if one is running.</summary>
    public static RedisStore? Find(BackendConfig config) =>
        Stores.TryGetValue(config, out var lazy) && lazy.IsValueCreated ? lazy.Value : null;

    /// <summary>
    /// Flushes, stops and forgets the store of <paramref name="config"/>; the next use creates a fresh one. Updates that
    /// could not be sent within OperationTimeout or before <paramref name="cancellationToken"/> are counted as dropped
    /// and logged. Values created before keep working against the stopped store: their updates are no longer sent.
    /// </summary>
    public static async ValueTask ShutdownAsync(BackendConfig config, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (Stores.TryRemove(config, out var lazy) && lazy.IsValueCreated)
        {
            await lazy.Value.StopAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The keys of <paramref name="name"/> under <paramref name="definitionId"/>, built on first use.</summary>
    public RedisFamilyKeys KeysOf(string name, string definitionId) =>
        _keys.GetOrAdd((name, definitionId), static (key, settings) => new RedisFamilyKeys(settings, key.Name, key.DefinitionId), Settings);

    /// <summary>The one cell of this series and part; a new one is queued so the flusher creates the field in Redis.</summary>
    /// <exception cref="ArgumentException">A label value cannot be stored as UTF-8 (an unpaired surrogate).</exception>
    public RedisCell GetCell(MetricDescriptor metric, HistogramBucket? part)
    {
        // Refused here, when the value is created: the field is encoded again at every flush and must not fail there.
        FieldCodec.Validate(metric.LabelValues);
        var family = _families.GetOrAdd((metric.Name, metric.DefinitionId), static (_, state) => new RedisFamily(state.Store, state.Metric, state.Writer), (Store: this, Metric: metric, Writer: _writerId));
        var cell = family.GetOrAdd(metric.LabelValues, part, out var created);
        if (created)
        {
            if (_counters.TryGetValue((metric.Name, metric.DefinitionId), out var counter))
            {
                counter.Created(cell.Field);
            }

            cell.MarkDirty();
        }

        return cell;
    }

    /// <summary>
    /// Removals waiting for the flusher, which applies them before the next round of updates. The prefix is the bytes the
    /// series' fields start with: sent as a string it would be encoded again and miss fields of non-ASCII label values.
    /// </summary>
    public ConcurrentQueue<(RedisFamilyKeys Keys, byte[] Prefix, bool Owned)> PendingRemovals { get; } = new();

    /// <summary>
    /// Removes a series (or every series of a family) in Redis with the next flush, before any update made after this call;
    /// this process's pending updates of it are dropped.
    /// </summary>
    public void RemoveSeries(MetricDescriptor series)
    {
        byte[] encoded = series.LabelValues.Count == 0 ? [] : FieldCodec.Encode(series.LabelValues, null);
        var family = FindFamily(series);
        if (family is not null)
        {
            foreach (var cell in family.Cells())
            {
                if (cell.Field.AsSpan().StartsWith(encoded))
                {
                    cell.ResetRemoved();
                }
            }
        }

        var owned = RedisFamily.ModeOf(series).Owned;
        PendingRemovals.Enqueue((KeysOf(series.Name, series.DefinitionId), encoded, owned));
        if (_counters.TryGetValue((series.Name, series.DefinitionId), out var counter))
        {
            counter.Removed(encoded);
        }
    }

    /// <summary>
    /// The number of series of <paramref name="family"/> in Redis, every process's, as last read (see
    /// <see cref="RedisSeriesCounter"/>), with the series this process created since; -1 while Redis could not be read.
    /// A call that finds nothing read within FlushInterval (the family's first, or the first after it was idle) reads it
    /// when connected, waiting at most OperationTimeout; other calls answer from memory and have the flusher read what was
    /// added since.
    /// </summary>
    public long SeriesCount(MetricDescriptor family)
    {
        var counter = _counters.GetOrAdd((family.Name, family.DefinitionId), static (_, state) => new RedisSeriesCounter(state.Store, state.Family), (Store: this, Family: family));
        if (counter.TakeWait((long)Settings.FlushInterval.TotalMilliseconds))
        {
            TryReadCount(counter, DateTime.UtcNow + Settings.OperationTimeout);
        }

        return counter.Count();
    }

    /// <summary>
    /// Reads the series of the families whose count was asked for since the last refresh (every counted family when
    /// <paramref name="all"/>), pipelined; called by the flusher after each periodic round and by an explicit flush. A
    /// transport fault leaves the last counts in place (logged once until a read succeeds).
    /// </summary>
    public async Task RefreshSeriesCountsAsync(bool all = false)
    {
        if (_stopped || _counters.IsEmpty || Connection.Current is not { IsConnected: true } connection)
        {
            return;
        }

        var db = connection.GetDatabase();
        var reads = new List<(RedisSeriesCounter Counter, Task<RedisResult> Read)>();
        foreach (var counter in _counters.Values)
        {
            if (counter.TakeAsked() || all)
            {
                reads.Add((counter, ReadCountAsync(db, counter)));
            }
        }

        foreach (var (counter, read) in reads)
        {
            try
            {
                counter.Apply(await read.WaitAsync(Settings.OperationTimeout).ConfigureAwait(false));
                Interlocked.Exchange(ref _countFailureLogged, 0);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException or OperationCanceledException or InvalidCastException)
            {
                // InvalidCastException: a reply of another shape, from keys another program wrote; the counts stay as last read.
                CountFailed(RedisDiagnosis.Describe(Settings, ex));
                ObserveLate(read);
            }
        }
    }

    private static Task<RedisResult> ReadCountAsync(IDatabase db, RedisSeriesCounter counter) => counter.Owned
        ? db.ScriptEvaluateAsync(Scripts.ListOwnedSeries, [counter.Keys.Data])
        : db.ScriptEvaluateAsync(Scripts.ReadFieldList, [counter.Keys.List], counter.ListReadArgs());

    /// <summary>One read of a family's series for its first count, answering by <paramref name="deadline"/>; a late answer is still taken in.</summary>
    private void TryReadCount(RedisSeriesCounter counter, DateTime deadline)
    {
        if (_stopped)
        {
            return;
        }

        try
        {
            // No wait for a connection being made (Redis down at startup must not hold up creations): until it is made, and
            // while Redis is unreachable, the count is the last one read; the flusher reads again once connected.
            var connection = Connection.Current;
            if (connection is null || !connection.IsConnected)
            {
                CountFailed(Connection.NotConnected());
                return;
            }

            var read = ReadCountAsync(connection.GetDatabase(), counter);
            var remaining = deadline - DateTime.UtcNow;
            if (remaining > TimeSpan.Zero && ((IAsyncResult)read).AsyncWaitHandle.WaitOne(remaining) && read.IsCompletedSuccessfully)
            {
                counter.Apply(read.Result);
                Interlocked.Exchange(ref _countFailureLogged, 0);
                return;
            }

            // Taken in when it arrives, so the next creation already sees it; a fault is only observed.
            var late = read.ContinueWith(static (t, c) => ((RedisSeriesCounter)c!).Apply(t.Result), counter, CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
            ObserveLate(late);
            ObserveLate(read);
            CountFailed(read.IsFaulted ? RedisDiagnosis.Describe(Settings, read.Exception!.InnerException!) : $"no answer within OperationTimeout ({Settings.OperationTimeout})");
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException or InvalidCastException)
        {
            // Creating a series never throws for the count: it is then the last one read (or this process's own).
            CountFailed(RedisDiagnosis.Describe(Settings, ex));
        }
    }

    private static void ObserveLate(Task read) =>
        _ = read.ContinueWith(static t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);

    private void CountFailed(string error)
    {
        if (Interlocked.Exchange(ref _countFailureLogged, 1) == 0)
        {
            Log($"could not read series counts from Redis at {Settings.Endpoints}: {error}. Cardinality limits count the series last read plus this process's own (only its own before a first read) until Redis answers again.");
        }
    }

    /// <summary>This process's family of <paramref name="metric"/>'s name under its definition, if it created values of it.</summary>
    public RedisFamily? FindFamily(MetricDescriptor metric) => _families.GetValueOrDefault((metric.Name, metric.DefinitionId));

    public void PushDirty(RedisCell value) => Flusher.PushDirty(value);

    /// <summary>
    /// Reads the stored value of <paramref name="cell"/> and this writer's applied-batch marker of its family in one
    /// atomic script, answering by <paramref name="deadline"/>. <see langword="false"/> (reported through the backend log (BackendLog) once
    /// until a read succeeds again) when Redis is not connected, fails or is late, or the store was shut down.
    /// </summary>
    /// <remarks>Synchronous because <c>Get</c> is: the contract's one blocking read, bounded by OperationTimeout.</remarks>
    internal bool TryReadStored(RedisCell cell, DateTime deadline, out double stored, out long marker)
    {
        stored = 0;
        marker = 0;
        const string Meanwhile = "Values read this process's last known stored value plus its own unsent updates until Redis answers again.";
        var family = cell.Family;
        if (!TryEvaluate(deadline, Scripts.ReadValue, [family.Key, family.MarkerKey, family.ValuesKey], [cell.Field], Meanwhile, out var result))
        {
            return false;
        }

        var reply = (RedisResult[])result!;
        var raw = (byte[])reply[0]!;
        marker = (long)reply[1];
        if (raw.Length is not (0 or 8))
        {
            return ReadFailed($"the key '{family.Key}' holds a field that is not an 8-byte double; it was not written by the Metrics Redis backend", Meanwhile);
        }

        stored = raw.Length == 0 ? 0 : BinaryPrimitives.ReadDoubleLittleEndian(raw);
        Interlocked.Exchange(ref _readFailureLogged, 0);
        return true;
    }

    /// <summary>
    /// Reads the aggregate of an owned gauge's series on the server, with this process's own value <paramref name="own"/>
    /// in it (<paramref name="changed"/>: not yet acknowledged by Redis, so written now), answering by
    /// <paramref name="deadline"/>. <see langword="false"/> (reported once until a read succeeds again) when Redis is not
    /// connected, fails or is late, or the store was shut down.
    /// </summary>
    internal bool TryReadOwned(RedisCell cell, double own, bool changed, DateTime deadline, out double aggregate)
    {
        aggregate = 0;
        var family = cell.Family;
        var args = OwnedCollectArgs(Settings, family.DefinitionId, family.Keys, family.Combine, family.LiveOnly, family.WriterId, cell.Field, [(cell.Field, own, changed)]);
        if (!TryEvaluate(deadline, Scripts.CollectOwned, [family.Key, family.DefinitionsKey, family.LiveKey], args,
            "Per-process gauges read the last aggregate this process read (or its own value) until Redis answers again.", out var result))
        {
            return false;
        }

        var values = (RedisResult[])((RedisResult[])result!)[0]!;
        // The reader's own value is always part of the aggregate, so its series is always there.
        aggregate = values.Length >= 2 ? BinaryPrimitives.ReadDoubleLittleEndian((byte[])values[1]!) : own;
        Interlocked.Exchange(ref _readFailureLogged, 0);
        return true;
    }

    /// <summary>
    /// Runs one script for a blocking read, answering by <paramref name="deadline"/>. <see langword="false"/> when the
    /// store was shut down, or (reported with <paramref name="meanwhile"/> once until a read succeeds again) when Redis is
    /// not connected, fails or is late.
    /// </summary>
    private bool TryEvaluate(DateTime deadline, string script, RedisKey[] keys, RedisValue[] args, string meanwhile, out RedisResult? reply)
    {
        reply = null;
        if (_stopped)
        {
            return false;
        }

        string? error;
        try
        {
            var connection = Connection.ForRead(deadline);
            if (connection is null || !connection.IsConnected)
            {
                error = Connection.NotConnected();
            }
            else
            {
                var read = connection.GetDatabase().ScriptEvaluateAsync(script, keys, args);
                var remaining = deadline - DateTime.UtcNow;
                if (remaining > TimeSpan.Zero && read.Wait(remaining))
                {
                    reply = read.Result;
                    return true;
                }

                // Observe a late failure so it does not surface as an unobserved task exception.
                ObserveLate(read);
                error = $"no answer within OperationTimeout ({Settings.OperationTimeout})";
            }
        }
        catch (AggregateException ex) when (ex.InnerException is RedisException or TimeoutException or ObjectDisposedException)
        {
            error = RedisDiagnosis.Describe(Settings, ex.InnerException);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            error = RedisDiagnosis.Describe(Settings, ex);
        }

        return ReadFailed(error, meanwhile);
    }

    /// <summary>Reports a failed read once until a read succeeds again; returns <see langword="false"/> for the caller to return.</summary>
    private bool ReadFailed(string error, string meanwhile)
    {
        if (Interlocked.Exchange(ref _readFailureLogged, 1) == 0)
        {
            Log($"Get could not read Redis at {Settings.Endpoints}: {error}. {meanwhile}");
        }

        return false;
    }

    /// <summary>The arguments of <see cref="Scripts.CollectOwned"/>: the family's mode, the reader's id, the series to read (null: all) and the reader's own values.</summary>
    internal static RedisValue[] OwnedCollectArgs(RedisSettings settings, string definitionId, RedisFamilyKeys keys, string combine, bool liveOnly, string writerId, byte[]? filter,
        IReadOnlyList<(byte[] Field, double Value, bool Changed)> own)
    {
        var args = new RedisValue[7 + (3 * own.Count)];
        args[0] = definitionId;
        args[1] = keys.DataPrefix;
        args[2] = settings.KeyExpiryMs;
        args[3] = combine;
        args[4] = liveOnly ? "1" : "0";
        args[5] = writerId;
        args[6] = filter is null ? RedisValue.EmptyString : (RedisValue)filter;
        for (var i = 0; i < own.Count; i++)
        {
            var payload = new byte[8];
            BinaryPrimitives.WriteDoubleLittleEndian(payload, own[i].Value);
            args[7 + (3 * i)] = own[i].Field;
            args[8 + (3 * i)] = payload;
            args[9 + (3 * i)] = own[i].Changed ? "1" : "0";
        }

        return args;
    }

    /// <summary>Holds off flushes and scrapes, so no batch is acknowledged meanwhile; <see langword="false"/> after <paramref name="timeout"/>.</summary>
    internal bool TryEnterExclusive(TimeSpan timeout) => timeout > TimeSpan.Zero && Flusher.Lock.Wait(timeout);

    internal void ExitExclusive() => Flusher.Lock.Release();

    /// <summary>
    /// Reports a fault through the host's backend log channel. Messages are built from the backend's own text, which
    /// holds no secret, and causes from <see cref="RedisDiagnosis"/>, which masks the text it takes from outside; the
    /// whole line is not masked again, so a password equal to a word of the message cannot garble it.
    /// </summary>
    public void Log(string message, BackendLogLevel level = BackendLogLevel.Warning) => BackendLog.Write("Redis", level, message);

    private async Task StopAsync(CancellationToken cancellationToken)
    {
        await Flusher.StopAsync(cancellationToken).ConfigureAwait(false);
        string? error;
        try
        {
            (var ok, error) = await Flusher.TryFlushAsync(Settings.OperationTimeout, cancellationToken).ConfigureAwait(false);
            if (ok)
            {
                error = null;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            error = "shutdown was cancelled";
        }

        // From here on updates of values created before stay in this process: reads answer from what it knows.
        _stopped = true;
        await RetireAsync(cancellationToken).ConfigureAwait(false);
        if (error is not null)
        {
            var lost = Flusher.Unsent();
            Flusher.CountDropped(lost);
            Log($"shutdown: could not send the last updates of {lost} series to Redis at {Settings.Endpoints} ({error}); they are lost.");
        }

        await Connection.CloseAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Removes this writer from the liveness hash of every per-process gauge family it wrote, so the Live modes leave it
    /// out at once instead of after HeartbeatTimeout. Best effort: when Redis cannot be reached, the deadline does it.
    /// </summary>
    private async Task RetireAsync(CancellationToken cancellationToken)
    {
        if (Connection.Current is not { IsConnected: true } connection)
        {
            return;
        }

        var db = connection.GetDatabase();
        var retires = Families.Where(f => f.Owned && f.AcknowledgedSequence > 0).Select(f => (Task)db.HashDeleteAsync(f.LiveKey, _writerId)).ToArray();
        try
        {
            await Task.WhenAll(retires).WaitAsync(Settings.OperationTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException or OperationCanceledException)
        {
            // The heartbeat deadline passes on its own; nothing is lost, the writer only shows for up to HeartbeatTimeout.
        }
    }

    /// <summary>
    /// A writer id unique across hosts and over time: a pid alone repeats across hosts and is recycled, so it is combined
    /// with the host name and the process start time, plus a random part that tells apart two configurations (or two
    /// initializations) in one process. '|' separates the writer id from the series in a field, so it is replaced.
    /// </summary>
    private static string NewWriterId()
    {
        long started;
        try
        {
            using var process = System.Diagnostics.Process.GetCurrentProcess();
            started = new DateTimeOffset(process.StartTime.ToUniversalTime()).ToUnixTimeMilliseconds();
        }
        catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException or System.ComponentModel.Win32Exception)
        {
            started = 0;
        }

        var host = new string([.. Environment.MachineName.Select(c => c == '|' || char.IsWhiteSpace(c) || char.IsControl(c) ? '_' : c)]);
        return $"{host}/{Environment.ProcessId}/{started}/{Guid.NewGuid().ToString("N")[..8]}";
    }
}
