using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using StackExchange.Redis;

namespace Metrics.Backends.Redis;

/// <summary>One metric family as this process knows it: its hash key, this writer's marker key and its local values.</summary>
internal sealed class RedisFamily(string name, RedisKey key, RedisKey markerKey)
{
    private readonly Lock _gate = new();

    // Keyed by the field's bytes as Latin-1, which maps each byte to one char, so distinct fields never collide.
    private readonly Dictionary<string, RedisCell> _cells = new(StringComparer.Ordinal);

    public string Name { get; } = name;

    public RedisKey Key { get; } = key;

    public RedisKey MarkerKey { get; } = markerKey;

    /// <summary>The cell of <paramref name="field"/>, created by <paramref name="create"/> the first time; <paramref name="created"/> says which.</summary>
    public RedisCell GetOrAdd(byte[] field, Func<byte[], RedisCell> create, out bool created)
    {
        var key = Encoding.Latin1.GetString(field);
        lock (_gate)
        {
            created = !_cells.TryGetValue(key, out var cell);
            if (created)
            {
                cell = create(field);
                _cells.Add(key, cell);
            }

            return cell!;
        }
    }

    public RedisCell[] Cells()
    {
        lock (_gate)
        {
            return [.. _cells.Values];
        }
    }
}

/// <summary>
/// Everything one configuration shares in a process: the connection, the families, the stack of values with unsent
/// updates and the flusher that sends them.
/// </summary>
/// <remarks>
/// A flush takes a batch ("round") of dirty values, moves each value's pending update into its in-flight slot and
/// sends one script per family, pipelined. A round is re-sent unchanged until every family acknowledged it, and only
/// then is the next one taken; with the per-writer sequence the script checks, that makes every update apply exactly
/// once even when a reply is lost. Rounds and scrapes are serialized by one lock, so a scrape never runs while a
/// round's outcome is unknown.
/// </remarks>
internal sealed class RedisStore
{
    private static readonly ConcurrentDictionary<BackendConfig, Lazy<RedisStore>> Stores = new();
    private static long s_dropped;

    private readonly ConcurrentDictionary<string, RedisFamily> _families = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _flushLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly string _writerId = Guid.NewGuid().ToString("N");
    private readonly HashSet<string> _warnedFamilies = new(StringComparer.Ordinal);
    private readonly Task _loop;
    private ConnectionMultiplexer? _connection;
    private Task<ConnectionMultiplexer>? _connecting;
    private RedisCell? _dirtyHead;
    private int _dirtyCount;
    private long _sequence;
    private Round? _inFlight;
    private bool _unreachableLogged;
    private int _readFailureLogged;
    private volatile string? _lastConnectionFailure;
    private DateTime _lastTouch = DateTime.UtcNow;

    private RedisStore(BackendConfig config)
    {
        Settings = RedisSettings.Read(config);
        _connecting = ConnectionMultiplexer.ConnectAsync(Settings.Options);
        _loop = Task.Run(LoopAsync);
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
    }

    public static long DroppedUpdates => Interlocked.Read(ref s_dropped);

    public RedisSettings Settings { get; }

    public static RedisStore Get(BackendConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Stores.GetOrAdd(config, static c => new Lazy<RedisStore>(() => new RedisStore(c))).Value;
    }

    /// <summary>Stops the flusher and closes the connection without flushing; for tests that start and stop servers.</summary>
    internal static void Shutdown(BackendConfig config)
    {
        if (Stores.TryRemove(config, out var lazy) && lazy.IsValueCreated)
        {
            lazy.Value.Stop();
        }
    }

    /// <summary>The one cell of this field of metric <paramref name="name"/>; a new one is queued so the flusher creates the field in Redis.</summary>
    public RedisCell GetCell(string name, byte[] field)
    {
        var family = _families.GetOrAdd(name, n =>
        {
            var key = Settings.KeyPrefix + "{" + n + "}";
            return new RedisFamily(n, key, key + ":w:" + _writerId);
        });
        var cell = family.GetOrAdd(field, f => new RedisCell(this, family, f), out var created);
        if (created)
        {
            cell.MarkDirty();
        }

        return cell;
    }

    public void PushDirty(RedisCell value)
    {
        Interlocked.Increment(ref _dirtyCount);
        Push(value);
    }

    public void FlushAndLog()
    {
        if (!TryFlush(Settings.OperationTimeout, out var error))
        {
            Log($"flush did not complete: {error}. The updates stay pending and are re-sent when Redis is reachable.");
        }
    }

    /// <summary>Sends every update made before the call; <see langword="false"/> with the reason when Redis did not store them.</summary>
    internal bool TryFlush(TimeSpan timeout, out string? error)
    {
        var deadline = DateTime.UtcNow + timeout;
        if (!_flushLock.Wait(timeout))
        {
            error = $"another flush or scrape held the store for {timeout}";
            return false;
        }

        try
        {
            while (true)
            {
                var outcome = RunRoundAsync().GetAwaiter().GetResult();
                if (!outcome.Ok)
                {
                    error = outcome.Error;
                    return false;
                }

                // A fresh, complete round took everything that was dirty when it started, which includes every update
                // that returned before this call.
                if (outcome.Idle || (outcome.Fresh && !outcome.Truncated))
                {
                    error = null;
                    return true;
                }

                if (DateTime.UtcNow > deadline)
                {
                    error = $"more than {timeout} spent sending pending updates";
                    return false;
                }
            }
        }
        finally
        {
            _flushLock.Release();
        }
    }

    public IReadOnlyList<CollectedValue>[] Collect(IReadOnlyList<MetricDescriptor> families)
    {
        if (!_flushLock.Wait(Settings.OperationTimeout))
        {
            throw new RedisBackendException($"The Redis backend could not read metrics: a flush to Redis at {Settings.Endpoints} took longer than OperationTimeout ({Settings.OperationTimeout}).");
        }

        try
        {
            var connection = GetConnectionAsync().GetAwaiter().GetResult();
            if (connection is null || !connection.IsConnected)
            {
                throw Unreachable(NotConnected());
            }

            if (_inFlight is not null)
            {
                // The last round's outcome is unknown: settle it first, or its values would be counted twice or not at all.
                var error = SendAsync(connection, _inFlight).GetAwaiter().GetResult();
                if (error is not null)
                {
                    throw Unreachable(error);
                }

                _inFlight = null;
            }

            var db = connection.GetDatabase();
            var reads = new Task<HashEntry[]>[families.Count];
            for (var i = 0; i < families.Count; i++)
            {
                var key = (RedisKey)(Settings.KeyPrefix + "{" + families[i].Name + "}");
                reads[i] = db.HashGetAllAsync(key);
                if (Settings.KeyExpiry > TimeSpan.Zero)
                {
                    _ = db.KeyExpireAsync(key, Settings.KeyExpiry, CommandFlags.FireAndForget);
                }
            }

            try
            {
                Task.WaitAll(reads);
            }
            catch (AggregateException ex)
            {
                throw Unreachable(ex.InnerExceptions[0].Message);
            }

            var result = new IReadOnlyList<CollectedValue>[families.Count];
            for (var i = 0; i < families.Count; i++)
            {
                result[i] = Merge(families[i], reads[i].Result);
            }

            return result;
        }
        finally
        {
            _flushLock.Release();
        }
    }

    /// <summary>
    /// Reads the stored value of <paramref name="cell"/> and this writer's applied-batch marker of its family in one
    /// atomic script, answering by <paramref name="deadline"/>. <see langword="false"/> (written to standard error once
    /// until a read succeeds again) when Redis is not connected, fails or is late.
    /// </summary>
    internal bool TryReadStored(RedisCell cell, DateTime deadline, out double stored, out long marker)
    {
        stored = 0;
        marker = 0;
        string? error;
        try
        {
            var connection = ConnectionForRead(deadline);
            if (connection is null || !connection.IsConnected)
            {
                error = NotConnected();
            }
            else
            {
                var read = connection.GetDatabase().ScriptEvaluateAsync(Scripts.ReadValue, [cell.Family.Key, cell.Family.MarkerKey], [cell.Field]);
                var remaining = deadline - DateTime.UtcNow;
                if (remaining > TimeSpan.Zero && read.Wait(remaining))
                {
                    var reply = (RedisResult[])read.Result!;
                    var raw = (byte[])reply[0]!;
                    marker = (long)reply[1];
                    if (raw.Length is 0 or 8)
                    {
                        stored = raw.Length == 0 ? 0 : BinaryPrimitives.ReadDoubleLittleEndian(raw);
                        Interlocked.Exchange(ref _readFailureLogged, 0);
                        return true;
                    }

                    error = $"the key '{cell.Family.Key}' holds a field that is not an 8-byte double; it was not written by the Metrics Redis backend";
                }
                else
                {
                    // Observe a late failure so it does not surface as an unobserved task exception.
                    _ = read.ContinueWith(static t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                    error = $"no answer within OperationTimeout ({Settings.OperationTimeout})";
                }
            }
        }
        catch (AggregateException ex) when (ex.InnerException is RedisException or TimeoutException or ObjectDisposedException)
        {
            error = $"{ex.InnerException.GetType().Name}: {ex.InnerException.Message}";
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            error = $"{ex.GetType().Name}: {ex.Message}";
        }

        if (Interlocked.Exchange(ref _readFailureLogged, 1) == 0)
        {
            Log($"Get could not read Redis at {Settings.Endpoints} ({error}); values read this process's last known stored value plus its own unsent updates until Redis answers again.");
        }

        return false;
    }

    /// <summary>Holds off flushes and scrapes, so no batch is acknowledged meanwhile; <see langword="false"/> after <paramref name="timeout"/>.</summary>
    internal bool TryEnterExclusive(TimeSpan timeout) => timeout > TimeSpan.Zero && _flushLock.Wait(timeout);

    internal void ExitExclusive() => _flushLock.Release();

    /// <summary>
    /// The connection for a read, waiting until <paramref name="deadline"/> for an attempt in progress (a process reads
    /// right after it starts), without starting one: reconnecting is the flusher's job.
    /// </summary>
    private ConnectionMultiplexer? ConnectionForRead(DateTime deadline)
    {
        if (Volatile.Read(ref _connection) is { } connection)
        {
            return connection;
        }

        var connecting = Volatile.Read(ref _connecting);
        if (connecting is null)
        {
            return null;
        }

        if (!connecting.IsCompleted)
        {
            var wait = deadline - DateTime.UtcNow;
            if (wait <= TimeSpan.Zero || !((IAsyncResult)connecting).AsyncWaitHandle.WaitOne(wait))
            {
                return null;
            }
        }

        return connecting.IsCompletedSuccessfully ? connecting.Result : null;
    }

    private List<CollectedValue> Merge(MetricDescriptor family, HashEntry[] entries)
    {
        var labelCount = family.LabelNames.Count;
        var byField = new Dictionary<string, (string[] Labels, HistogramBucket? Part, double Value)>(entries.Length, StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            var field = (byte[])entry.Name!;
            var raw = (byte[])entry.Value!;
            if (raw.Length != 8)
            {
                throw new RedisBackendException($"The Redis key '{Settings.KeyPrefix}{{{family.Name}}}' holds a field that is not an 8-byte double; it was not written by the Metrics Redis backend. Use another KeyPrefix or delete the key.");
            }

            if (!FieldCodec.TryDecode(field, labelCount, out var labels, out var part))
            {
                WarnOnce(family.Name, $"metric '{family.Name}' has stored series that do not match its {labelCount} label names (written by a different definition of the metric); they are left out of the scrape.");
                continue;
            }

            byField[Encoding.Latin1.GetString(field)] = (labels, part, BinaryPrimitives.ReadDoubleLittleEndian(raw));
        }

        if (_families.TryGetValue(family.Name, out var local))
        {
            foreach (var value in local.Cells())
            {
                var key = Encoding.Latin1.GetString(value.Field);
                if (byField.TryGetValue(key, out var found))
                {
                    byField[key] = found with { Value = value.Overlay(found.Value) };
                }
                else if (FieldCodec.TryDecode(value.Field, labelCount, out var labels, out var part))
                {
                    byField[key] = (labels, part, value.Overlay(0));
                }
            }
        }

        var list = new List<CollectedValue>(byField.Count);
        foreach (var (labels, part, value) in byField.Values)
        {
            list.Add(new CollectedValue(labels, part, value));
        }

        return list;
    }

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(Settings.FlushInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                await _flushLock.WaitAsync(_stop.Token).ConfigureAwait(false);
                try
                {
                    await RunRoundAsync().ConfigureAwait(false);
                    await TouchIfDueAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The flusher must outlive any single failure; the batch stays in flight and is retried next tick.
                    Log($"flush failed: {ex.GetType().Name}: {ex.Message}");
                }
                finally
                {
                    _flushLock.Release();
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Stopped by Shutdown.
        }
    }

    private async Task<RoundOutcome> RunRoundAsync()
    {
        var fresh = false;
        var truncated = false;
        if (_inFlight is null)
        {
            var batch = PopDirty(Settings.MaxPendingSeries, out truncated);
            if (batch.Count == 0)
            {
                return new RoundOutcome(true, true, false, false, null);
            }

            _inFlight = BuildRound(batch);
            fresh = true;
        }

        var connection = await GetConnectionAsync().ConfigureAwait(false);
        string? error;
        if (connection is null || !connection.IsConnected)
        {
            error = NotConnected();
        }
        else
        {
            error = await SendAsync(connection, _inFlight).ConfigureAwait(false);
        }

        if (error is null)
        {
            _inFlight = null;
            if (_unreachableLogged)
            {
                _unreachableLogged = false;
                Log($"Redis at {Settings.Endpoints} is reachable again; pending updates were sent.");
            }

            return new RoundOutcome(true, false, fresh, truncated, null);
        }

        if (!_unreachableLogged)
        {
            _unreachableLogged = true;
            Log($"cannot write to Redis at {Settings.Endpoints} ({error}); updates are kept and re-sent when it is reachable.");
        }

        EnforceBound();
        return new RoundOutcome(false, false, fresh, truncated, error);
    }

    private async Task<ConnectionMultiplexer?> GetConnectionAsync()
    {
        if (_connection is not null)
        {
            return _connection;
        }

        var connecting = _connecting;
        if (connecting is null)
        {
            return null;
        }

        if (!connecting.IsCompleted)
        {
            // Never hold a flush for longer than one connect attempt; the next tick tries again.
            await Task.WhenAny(connecting, Task.Delay(Settings.Options.ConnectTimeout)).ConfigureAwait(false);
            if (!connecting.IsCompleted)
            {
                return null;
            }
        }

        if (connecting.IsCompletedSuccessfully)
        {
            var connection = connecting.Result;
            // Kept so that "not connected" can say why (authentication, refused, timeout), scrubbed when shown.
            connection.ConnectionFailed += (_, e) => _lastConnectionFailure = $"{e.FailureType}: {e.Exception?.Message}";
            connection.ConnectionRestored += (_, _) => _lastConnectionFailure = null;
            _connection = connection;
            return _connection;
        }

        Log($"connecting to Redis at {Settings.Endpoints} failed: {connecting.Exception?.InnerException?.Message}; retrying.");
        _connecting = ConnectionMultiplexer.ConnectAsync(Settings.Options);
        return null;
    }

    private Round BuildRound(List<RedisCell> batch)
    {
        var sequence = ++_sequence;
        var expiryMs = Settings.KeyExpiry > TimeSpan.Zero ? (long)Settings.KeyExpiry.TotalMilliseconds : 0;
        var markerMs = (long)Settings.MarkerExpiry.TotalMilliseconds;
        var byFamily = new Dictionary<RedisFamily, (List<RedisCell> Values, List<RedisValue> Args)>();
        foreach (var value in batch)
        {
            value.ClearDirty();
            var (set, setValue, delta) = value.TakePending(sequence);
            if (!byFamily.TryGetValue(value.Family, out var group))
            {
                group = ([], [sequence, expiryMs, markerMs]);
                byFamily.Add(value.Family, group);
            }

            group.Values.Add(value);
            group.Args.Add(value.Field);
            if (set)
            {
                var payload = new byte[16];
                BinaryPrimitives.WriteDoubleLittleEndian(payload, setValue);
                BinaryPrimitives.WriteDoubleLittleEndian(payload.AsSpan(8), delta);
                group.Args.Add("s");
                group.Args.Add(payload);
            }
            else
            {
                var payload = new byte[8];
                BinaryPrimitives.WriteDoubleLittleEndian(payload, delta);
                group.Args.Add("a");
                group.Args.Add(payload);
            }
        }

        return new Round(sequence, [.. byFamily.Select(kv => new FamilyBatch(kv.Key, [.. kv.Value.Values], [.. kv.Value.Args]))]);
    }

    /// <summary>Sends the families of <paramref name="round"/> not yet acknowledged; returns null when all are, else the first error.</summary>
    private async Task<string?> SendAsync(ConnectionMultiplexer connection, Round round)
    {
        var db = connection.GetDatabase();
        var pending = new List<(FamilyBatch Batch, Task<RedisResult> Task)>();
        foreach (var batch in round.Families)
        {
            if (!batch.Done)
            {
                pending.Add((batch, db.ScriptEvaluateAsync(Scripts.ApplyBatch, [batch.Family.Key, batch.Family.MarkerKey], batch.Args)));
            }
        }

        string? error = null;
        foreach (var (batch, task) in pending)
        {
            RedisResult result;
            try
            {
                result = await task.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
            {
                error ??= Settings.Scrub($"{ex.GetType().Name}: {ex.Message}");
                continue;
            }

            var stored = (RedisResult[])result!;
            for (var i = 0; i < batch.Values.Length; i++)
            {
                batch.Values[i].Acknowledge(BinaryPrimitives.ReadDoubleLittleEndian((byte[])stored[i]!), round.Sequence);
            }

            batch.Done = true;
        }

        return error;
    }

    /// <summary>Refreshes the expiry of every family this process uses, so a family that is only read stays alive.</summary>
    private async Task TouchIfDueAsync()
    {
        if (Settings.KeyExpiry <= TimeSpan.Zero || DateTime.UtcNow - _lastTouch < Settings.KeyExpiry / 4 || _connection is not { IsConnected: true } connection)
        {
            return;
        }

        var db = connection.GetDatabase();
        var tasks = _families.Values.Select(f => db.KeyExpireAsync(f.Key, Settings.KeyExpiry)).ToArray();
        await Task.WhenAll(tasks).ConfigureAwait(false);
        _lastTouch = DateTime.UtcNow;
    }

    private List<RedisCell> PopDirty(int max, out bool truncated)
    {
        var node = Interlocked.Exchange(ref _dirtyHead, null);
        var batch = new List<RedisCell>();
        truncated = false;
        while (node is not null)
        {
            // Read the link before the value can be re-queued by another thread.
            var next = node.NextDirty;
            node.NextDirty = null;
            if (batch.Count < max)
            {
                batch.Add(node);
                Interlocked.Decrement(ref _dirtyCount);
            }
            else
            {
                truncated = true;
                Push(node);
            }

            node = next;
        }

        return batch;
    }

    /// <summary>While Redis is unreachable, keeps at most MaxPendingSeries series with unsent updates and discards the rest.</summary>
    private void EnforceBound()
    {
        if (Volatile.Read(ref _dirtyCount) <= Settings.MaxPendingSeries)
        {
            return;
        }

        var node = Interlocked.Exchange(ref _dirtyHead, null);
        var kept = 0;
        var discarded = 0L;
        while (node is not null)
        {
            var next = node.NextDirty;
            node.NextDirty = null;
            if (kept < Settings.MaxPendingSeries)
            {
                kept++;
                Push(node);
            }
            else
            {
                Interlocked.Decrement(ref _dirtyCount);
                node.ClearDirty();
                if (node.DiscardPending())
                {
                    discarded++;
                }
            }

            node = next;
        }

        if (discarded > 0)
        {
            Interlocked.Add(ref s_dropped, discarded);
            Log($"Redis at {Settings.Endpoints} is unreachable and more than MaxPendingSeries={Settings.MaxPendingSeries} series hold unsent updates; discarded the updates of {discarded} series.");
        }
    }

    private void Push(RedisCell value)
    {
        RedisCell? head;
        do
        {
            head = Volatile.Read(ref _dirtyHead);
            value.NextDirty = head;
        }
        while (Interlocked.CompareExchange(ref _dirtyHead, value, head) != head);
    }

    private void OnProcessExit(object? sender, EventArgs e)
    {
        if (TryFlush(Settings.OperationTimeout, out var error))
        {
            return;
        }

        var lost = Volatile.Read(ref _dirtyCount) + (_inFlight?.Families.Sum(f => f.Done ? 0 : f.Values.Length) ?? 0);
        Interlocked.Add(ref s_dropped, lost);
        Log($"process exit: could not send the last updates of {lost} series to Redis at {Settings.Endpoints} ({error}); they are lost.");
    }

    private void Stop()
    {
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        _stop.Cancel();
        _loop.GetAwaiter().GetResult();
        (_connection ?? (_connecting is { IsCompletedSuccessfully: true } c ? c.Result : null))?.Dispose();
    }

    private string NotConnected() => _lastConnectionFailure is { } failure
        ? $"not connected; last failure {failure}"
        : $"not connected (no connection established within ConnectTimeout, {Settings.Options.ConnectTimeout} ms)";

    private RedisBackendException Unreachable(string reason) =>
        new(Settings.Scrub($"The Redis backend could not read metrics from Redis at {Settings.Endpoints}: {reason}. Check that Redis is running and reachable; updates are kept and re-sent when it is."));

    private void WarnOnce(string family, string message)
    {
        lock (_warnedFamilies)
        {
            if (!_warnedFamilies.Add(family))
            {
                return;
            }
        }

        Log(message);
    }

    private void Log(string message) => Console.Error.WriteLine("Metrics Redis backend: " + Settings.Scrub(message));

    private sealed class Round(long sequence, FamilyBatch[] families)
    {
        public long Sequence { get; } = sequence;

        public FamilyBatch[] Families { get; } = families;
    }

    private sealed class FamilyBatch(RedisFamily family, RedisCell[] values, RedisValue[] args)
    {
        public RedisFamily Family { get; } = family;

        public RedisCell[] Values { get; } = values;

        public RedisValue[] Args { get; } = args;

        public bool Done { get; set; }
    }

    private readonly record struct RoundOutcome(bool Ok, bool Idle, bool Fresh, bool Truncated, string? Error);
}
