using System.Buffers.Binary;
using StackExchange.Redis;

namespace Metrics.Backends.Redis;

/// <summary>
/// Sends one configuration's coalesced updates to Redis: the stack of values with unsent updates, the periodic flush,
/// batches with their retry, the bound on pending series while Redis is unreachable, and the count of what was dropped.
/// </summary>
/// <remarks>
/// A flush takes a batch ("round") of dirty values, moves each value's pending update into its in-flight slot and
/// sends one script per family, pipelined. A round is re-sent unchanged until every family acknowledged it, and only
/// then is the next one taken; with the per-writer sequence the script checks, that makes every update apply exactly
/// once even when a reply is lost. Rounds and scrapes are serialized by <see cref="Lock"/>, so a scrape never runs while
/// a round's outcome is unknown.
/// </remarks>
internal sealed partial class RedisFlusher
{
    // Per configuration and kept across shutdowns, so the exposed counter never goes back while the process lives.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<BackendConfig, System.Runtime.CompilerServices.StrongBox<long>> Resets = new();

    private readonly RedisStore _store;

    // Cells whose latest exemplar waits to be sent; a cell is queued once until it is taken (see RedisCell.RecordExemplar).
    private readonly System.Collections.Concurrent.ConcurrentQueue<RedisCell> _exemplars = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly Task _heartbeats;
    private long _sequence;
    private Round? _inFlight;
    private bool _unreachableLogged;
    private DateTime _lastTouch = DateTime.UtcNow;

    public RedisFlusher(RedisStore store)
    {
        _store = store;
        _loop = Task.Run(LoopAsync);
        _heartbeats = Task.Run(HeartbeatLoopAsync);
    }

    /// <summary>Held by a flush round, a scrape and a retried <c>Get</c>: no batch is acknowledged while it is held.</summary>
    public SemaphoreSlim Lock { get; } = new(1, 1);

    private RedisSettings Settings => _store.Settings;

    /// <summary>
    /// Sends every update made before the call. Returns <see langword="false"/> with the reason when Redis did not store
    /// them within <paramref name="timeout"/>; they then stay pending. Throws <see cref="OperationCanceledException"/>
    /// when <paramref name="cancellationToken"/> is signalled first (a round already sent completes in the background).
    /// </summary>
    public async Task<(bool Ok, string? Error)> TryFlushAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        // Not disposed when the wait is given up: the round still running in the background holds its token.
        var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(timeout);
        try
        {
            var result = await RunExclusiveAsync(token => FlushRoundsAsync(DateTime.UtcNow + timeout, token), bounded.Token).ConfigureAwait(false);
            bounded.Dispose();
            return result;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (false, $"more than {timeout} spent waiting for Redis or for another flush or scrape");
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> holding <see cref="Lock"/>. A caller whose token is signalled stops waiting at once;
    /// the work then finishes in the background (each step is bounded by OperationTimeout) and releases the lock, so a
    /// round is never left half acknowledged.
    /// </summary>
    public async Task<T> RunExclusiveAsync<T>(Func<CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        await Lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        Task<T> running;
        try
        {
            running = work(cancellationToken);
        }
        catch
        {
            Lock.Release();
            throw;
        }

        try
        {
            var result = await running.WaitAsync(cancellationToken).ConfigureAwait(false);
            Lock.Release();
            return result;
        }
        catch (Exception) when (running.IsCompleted)
        {
            Lock.Release();
            throw;
        }
        catch (OperationCanceledException)
        {
            _ = running.ContinueWith(
                static (t, state) =>
                {
                    ((SemaphoreSlim)state!).Release();
                    return t.Exception;
                },
                Lock,
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
            throw;
        }
    }

    /// <summary>
    /// Settles a round whose outcome is unknown, before a scrape reads: otherwise its values would be counted twice or
    /// not at all. Call holding <see cref="Lock"/>. Returns null when settled, else the error.
    /// </summary>
    public async Task<string?> SettleAsync(ConnectionMultiplexer connection)
    {
        if (_inFlight is null)
        {
            return null;
        }

        var error = await SendAsync(connection, _inFlight).ConfigureAwait(false);
        if (error is null)
        {
            _inFlight = null;
        }

        return error;
    }

    /// <summary>Stops the periodic flush; waits for a round in progress unless <paramref name="cancellationToken"/> is signalled.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_loop, _heartbeats).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The round in progress finishes on its own, bounded by OperationTimeout.
        }
    }

    /// <summary>Series whose updates were not stored: pending ones and those of the unacknowledged round. Call holding <see cref="Lock"/> or after the loop stopped.</summary>
    public long Unsent() => Volatile.Read(ref _dirtyCount) + (_inFlight?.Families.Sum(f => f.Done ? 0 : f.Values.Length) ?? 0);

    private async Task<(bool Ok, string? Error)> FlushRoundsAsync(DateTime deadline, CancellationToken cancellationToken)
    {
        while (true)
        {
            var outcome = await RunRoundAsync(cancellationToken).ConfigureAwait(false);
            if (!outcome.Ok)
            {
                return (false, outcome.Error);
            }

            // A fresh, complete round took everything that was dirty when it started, which includes every update
            // that returned before this call.
            if (outcome.Idle || (outcome.Fresh && !outcome.Truncated))
            {
                var exemplarError = await SendExemplarsAsync(cancellationToken).ConfigureAwait(false);
                return (exemplarError is null, exemplarError);
            }

            cancellationToken.ThrowIfCancellationRequested();
            if (DateTime.UtcNow > deadline)
            {
                return (false, "more than OperationTimeout spent sending pending updates");
            }
        }
    }

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(Settings.FlushInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                await Lock.WaitAsync(_stop.Token).ConfigureAwait(false);
                try
                {
                    await RunRoundAsync(CancellationToken.None).ConfigureAwait(false);
                    await SendExemplarsAsync(CancellationToken.None).ConfigureAwait(false);
                    await TouchIfDueAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !_stop.IsCancellationRequested)
                {
                    // The flusher must outlive any single failure; the batch stays in flight and is retried next tick.
                    _store.Log($"flush failed: {RedisDiagnosis.Describe(Settings, ex)}.");
                }
                finally
                {
                    Lock.Release();
                }

                // Outside the lock: counting reads only the field lists, and scrapes need not wait for it.
                try
                {
                    await _store.RefreshSeriesCountsAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !_stop.IsCancellationRequested)
                {
                    // Like a failed round: the flusher outlives it, and the counts stay as last read.
                    _store.Log($"reading series counts failed: {RedisDiagnosis.Describe(Settings, ex)}.");
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Stopped by shutdown.
        }
    }

    /// <summary>Queues <paramref name="cell"/>, whose exemplar waits to be sent with the next flush.</summary>
    public void QueueExemplar(RedisCell cell) => _exemplars.Enqueue(cell);

    /// <summary>
    /// Sends the exemplars waiting, one script per family (latest by timestamp wins on the server, so a re-send is
    /// harmless). Exemplars that could not be sent wait for the next flush. Returns null when sent, else the error.
    /// </summary>
    private async Task<string?> SendExemplarsAsync(CancellationToken cancellationToken)
    {
        if (_exemplars.IsEmpty)
        {
            return null;
        }

        var (connection, error) = await _store.Connection.GetOrDiagnoseAsync(cancellationToken).ConfigureAwait(false);
        if (connection is null)
        {
            return error ?? "not connected";
        }

        var byFamily = new Dictionary<RedisFamily, (List<RedisCell> Cells, List<RedisValue> Args)>();
        while (_exemplars.TryDequeue(out var cell))
        {
            if (!cell.TakeExemplar(out var exemplar))
            {
                continue;
            }

            if (!byFamily.TryGetValue(cell.Family, out var group))
            {
                byFamily[cell.Family] = group = ([], [Settings.KeyExpiryMs]);
            }

            group.Cells.Add(cell);
            group.Args.Add(cell.Field);
            group.Args.Add(ExemplarCodec.Encode(exemplar));
        }

        var db = connection.GetDatabase();
        var sends = byFamily.Select(pair => (pair.Value.Cells, Task: db.ScriptEvaluateAsync(Scripts.StoreExemplars, [pair.Key.Keys.Exemplars], [.. pair.Value.Args]))).ToList();
        string? failure = null;
        foreach (var (cells, task) in sends)
        {
            try
            {
                await task.WaitAsync(Settings.OperationTimeout, cancellationToken).ConfigureAwait(false);
                foreach (var cell in cells)
                {
                    cell.ExemplarSent();
                }
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException or OperationCanceledException)
            {
                failure ??= RedisDiagnosis.Describe(Settings, ex);
                foreach (var cell in cells)
                {
                    cell.ExemplarNotSent();
                }
            }
        }

        return failure;
    }

    private async Task<RoundOutcome> RunRoundAsync(CancellationToken cancellationToken)
    {
        var fresh = false;
        var truncated = false;
        if (_inFlight is null)
        {
            // Removals go first: every update taken below was made after them (the removal dropped older pending ones).
            if (!_store.PendingRemovals.IsEmpty)
            {
                var removalError = await ApplyRemovalsAsync(cancellationToken).ConfigureAwait(false);
                if (removalError is not null)
                {
                    return new RoundOutcome(false, false, false, false, removalError);
                }
            }

            var batch = PopDirty(Settings.MaxPendingSeries, out truncated);
            if (batch.Count == 0)
            {
                return new RoundOutcome(true, true, false, false, null);
            }

            _inFlight = BuildRound(batch);
            fresh = true;
        }

        var (connection, error) = await _store.Connection.GetOrDiagnoseAsync(cancellationToken).ConfigureAwait(false);
        if (connection is not null)
        {
            error = await SendAsync(connection, _inFlight).ConfigureAwait(false);
        }

        if (error is null)
        {
            _inFlight = null;
            if (_unreachableLogged)
            {
                _unreachableLogged = false;
                _store.Log($"Redis at {Settings.Endpoints} is reachable again; the updates kept meanwhile were sent (whether Redis kept what it had stored before is checked with every write, see metrics_backend_store_resets_total).", BackendLogLevel.Information);
            }

            return new RoundOutcome(true, false, fresh, truncated, null);
        }

        if (!_unreachableLogged)
        {
            _unreachableLogged = true;
            _store.Log($"cannot write to Redis at {Settings.Endpoints}: {error}. Updates are kept and re-sent when it is reachable.");
        }

        EnforceBound();
        return new RoundOutcome(false, false, fresh, truncated, error);
    }

    /// <summary>Applies the queued removals in order; one that fails stays queued, with those after it, for the next round.</summary>
    private async Task<string?> ApplyRemovalsAsync(CancellationToken cancellationToken)
    {
        var (connection, error) = await _store.Connection.GetOrDiagnoseAsync(cancellationToken).ConfigureAwait(false);
        if (connection is null)
        {
            return error;
        }

        var db = connection.GetDatabase();
        while (_store.PendingRemovals.TryPeek(out var removal))
        {
            try
            {
                var keys = removal.Keys;
                await (removal.Owned
                    ? db.ScriptEvaluateAsync(Scripts.RemoveFields, [keys.Data, keys.Exemplars], [removal.Prefix, "1"])
                    : db.ScriptEvaluateAsync(Scripts.RemoveSlots, [keys.Data, keys.Values, keys.List, keys.Exemplars], [removal.Prefix])).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException or OperationCanceledException)
            {
                return RedisDiagnosis.Describe(Settings, ex);
            }

            _store.PendingRemovals.TryDequeue(out _);
        }

        return null;
    }

    private Round BuildRound(List<RedisCell> batch)
    {
        var sequence = ++_sequence;
        var expiryMs = Settings.KeyExpiryMs;
        var markerMs = (long)Settings.MarkerExpiry.TotalMilliseconds;
        var byFamily = new Dictionary<RedisFamily, (List<RedisCell> Values, List<RedisValue> Args)>();

        void Take(RedisCell value)
        {
            if (value.SkipRemoved())
            {
                return;
            }

            if (value.Family.Owned)
            {
                // The process is the only writer of its own field, so it sends the whole value: re-sending is harmless.
                var own = value.TakeOwned(sequence);
                if (!byFamily.TryGetValue(value.Family, out var owned))
                {
                    var timeoutMs = (long)Settings.HeartbeatTimeout.TotalMilliseconds;
                    owned = ([], [value.Family.WriterId, timeoutMs, expiryMs, value.Family.DefinitionId, value.Family.Definition]);
                    byFamily.Add(value.Family, owned);
                }

                var whole = new byte[8];
                BinaryPrimitives.WriteDoubleLittleEndian(whole, own);
                owned.Values.Add(value);
                owned.Args.Add(value.Field);
                owned.Args.Add(whole);
                return;
            }

            var (set, setValue, delta) = value.TakePending(sequence);
            if (!byFamily.TryGetValue(value.Family, out var group))
            {
                group = ([], [sequence, expiryMs, markerMs, value.Family.DefinitionId, value.Family.Definition]);
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

        // Every flag first, then the takes: an update landing after its cell was taken with another part of its series
        // then sees the cleared flag and queues the cell again, instead of being stranded behind a flag still set.
        foreach (var value in batch)
        {
            value.ClearDirty();
        }

        foreach (var value in batch)
        {
            if (value.TakenSequence == sequence)
            {
                continue;
            }

            if (value.Group is not { } series)
            {
                Take(value);
                continue;
            }

            // The parts of one histogram series leave together, so a bucket never reaches Redis without its sum. A part
            // still on the stack keeps its flag and is taken again, with nothing or with what came later, next round.
            lock (series.Gate)
            {
                foreach (var part in series.Cells)
                {
                    if (part.TakenSequence != sequence && (ReferenceEquals(part, value) || part.HasPending))
                    {
                        Take(part);
                    }
                }
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
                pending.Add((batch, batch.Family.Owned
                    ? db.ScriptEvaluateAsync(Scripts.ApplyOwned, [batch.Family.Key, batch.Family.LiveKey, batch.Family.DefinitionsKey], batch.Args)
                    : db.ScriptEvaluateAsync(Scripts.ApplyBatch, [batch.Family.Key, batch.Family.MarkerKey, batch.Family.DefinitionsKey, batch.Family.ValuesKey, batch.Family.ListKey], batch.Args)));
            }
        }

        string? error = null;
        List<string>? lostFamilies = null;
        foreach (var (batch, task) in pending)
        {
            RedisResult result;
            try
            {
                result = await task.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException or OperationCanceledException)
            {
                error ??= RedisDiagnosis.Describe(Settings, ex);
                continue;
            }

            if (batch.Family.Owned)
            {
                foreach (var value in batch.Values)
                {
                    value.AcknowledgeOwned();
                }

                // Found dead (or its data lost) after it had written: its other fields may be gone, so all are sent again.
                if ((long)result == 0 && batch.Family.AcknowledgedSequence > 0)
                {
                    Resend(batch.Family);
                }

                batch.Family.AcknowledgedSequence = round.Sequence;
                batch.Done = true;
                continue;
            }

            var stored = (RedisResult[])result!;
            for (var i = 0; i < batch.Values.Length; i++)
            {
                batch.Values[i].Acknowledge(BinaryPrimitives.ReadDoubleLittleEndian((byte[])stored[i]!), round.Sequence);
            }

            if ((long)stored[batch.Values.Length] < batch.Family.AcknowledgedSequence)
            {
                (lostFamilies ??= []).Add(batch.Family.Name);
            }

            batch.Family.AcknowledgedSequence = round.Sequence;
            batch.Done = true;
        }

        if (lostFamilies is not null)
        {
            ReportReset(lostFamilies);
        }

        return error;
    }

    /// <summary>Resets of the server's data found by <paramref name="config"/>'s writers, kept across shutdowns.</summary>
    public static long StoreResets(BackendConfig config) =>
        Resets.TryGetValue(config, out var count) ? Interlocked.Read(ref count.Value) : 0;

    /// <summary>Counts one reset and says, once per reset, what was lost and why.</summary>
    private void ReportReset(List<string> families)
    {
        Interlocked.Increment(ref Resets.GetOrAdd(_store.Config, static _ => new System.Runtime.CompilerServices.StrongBox<long>()).Value);
        var named = string.Join(", ", families.Take(20).Select(f => $"'{f}'")) + (families.Count > 20 ? $" and {families.Count - 20} more" : string.Empty);
        _store.Log(
            $"Redis at {Settings.Endpoints} lost data it had stored: this process's earlier writes to {named} are gone (a restart without persistence, FLUSHALL/FLUSHDB, " +
            "or a failover to a replica that had not received them). Values written before the reset are lost unless Redis persists them (appendonly yes); " +
            "totals continue from what processes send now, which Prometheus reads as a counter reset. Counted in metrics_backend_store_resets_total.",
            BackendLogLevel.Error);
    }

    /// <summary>
    /// Refreshes the expiry of every family this process uses and its definition record, so a family that is only read
    /// stays alive and a definition stays recorded for as long as a live process uses it.
    /// </summary>
    private async Task TouchIfDueAsync()
    {
        // Markers expire too (after MarkerExpiry): one of a writer that stays idle must not look like lost data later.
        var every = (Settings.KeyExpiry > TimeSpan.Zero ? Settings.KeyExpiry : Settings.MarkerExpiry) / 4;
        if (DateTime.UtcNow - _lastTouch < every || _store.Connection.Current is not { IsConnected: true } connection)
        {
            return;
        }

        var db = connection.GetDatabase();
        var tasks = new List<Task>();
        foreach (var family in _store.Families)
        {
            if (Settings.KeyExpiry > TimeSpan.Zero)
            {
                tasks.Add(db.KeyExpireAsync(family.Key, Settings.KeyExpiry));
                if (!family.Owned)
                {
                    tasks.Add(db.KeyExpireAsync(family.ValuesKey, Settings.KeyExpiry));
                    tasks.Add(db.KeyExpireAsync(family.ListKey, Settings.KeyExpiry));
                }

                tasks.Add(db.HashSetAsync(family.DefinitionsKey, family.DefinitionId, family.Definition));
                tasks.Add(db.KeyExpireAsync(family.DefinitionsKey, Settings.KeyExpiry));
            }

            if (family.AcknowledgedSequence > 0)
            {
                tasks.Add(db.KeyExpireAsync(family.MarkerKey, Settings.MarkerExpiry));
            }
        }

        await Task.WhenAll(tasks).ConfigureAwait(false);
        _lastTouch = DateTime.UtcNow;
    }

    /// <summary>Queues every value of an owned gauge family, so the next round sends them all again.</summary>
    private static void Resend(RedisFamily family)
    {
        foreach (var cell in family.Cells())
        {
            cell.MarkDirty();
        }
    }

    /// <summary>
    /// Renews this writer's liveness deadline on every per-process gauge family it has written, every HeartbeatInterval,
    /// independently of flushes (a writer with nothing to send stays alive). A writer that finds it had been declared dead
    /// sends all its values again. Failures are left to the flush path, which reports an unreachable Redis.
    /// </summary>
    private async Task HeartbeatLoopAsync()
    {
        using var timer = new PeriodicTimer(Settings.HeartbeatInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                if (_store.Connection.Current is not { IsConnected: true } connection)
                {
                    continue;
                }

                var db = connection.GetDatabase();
                var timeoutMs = (long)Settings.HeartbeatTimeout.TotalMilliseconds;
                var expiryMs = Settings.KeyExpiryMs;
                var beats = new List<(RedisFamily Family, Task<RedisResult> Task)>();
                foreach (var family in _store.Families)
                {
                    if (family.Owned && family.AcknowledgedSequence > 0)
                    {
                        beats.Add((family, db.ScriptEvaluateAsync(Scripts.Heartbeat, [family.LiveKey, family.Key], [family.WriterId, timeoutMs, expiryMs])));
                    }
                }

                foreach (var (family, beat) in beats)
                {
                    try
                    {
                        if ((long)await beat.ConfigureAwait(false) == 0)
                        {
                            Resend(family);
                        }
                    }
                    catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException or OperationCanceledException)
                    {
                        // Redis is unreachable: the flusher reports it; the next tick tries again.
                    }
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Stopped by shutdown.
        }
    }

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
