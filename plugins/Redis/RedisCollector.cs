using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using StackExchange.Redis;

namespace Metrics.Backends.Redis;

/// <summary>
/// Reads one configuration's families for a scrape: one script per family, pipelined (one round trip), decoded, with
/// this process's unsent updates on top, and filtered by definition so that values written under another definition of
/// the same name are never mixed in.
/// </summary>
internal sealed class RedisCollector(RedisStore store)
{
    // Per configuration and kept across shutdowns, so the exposed counter never goes back while the process lives.
    private static readonly ConcurrentDictionary<BackendConfig, StrongBox<long>> Conflicts = new();

    // Per process: each family's conflict is logged once, however many scrapes find it.
    private static readonly ConcurrentDictionary<string, bool> LoggedConflicts = new(StringComparer.Ordinal);

    private readonly HashSet<string> _warnedFamilies = new(StringComparer.Ordinal);

    private RedisSettings Settings => store.Settings;

    /// <summary>Collections of a family that found it recorded under another definition too, for <paramref name="config"/>.</summary>
    public static long SchemaConflicts(BackendConfig config) =>
        Conflicts.TryGetValue(config, out var count) ? Interlocked.Read(ref count.Value) : 0;

    public async Task<IReadOnlyList<CollectedValue>[]> CollectAsync(IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken)
    {
        // Not disposed when the wait is given up: the read still finishing in the background holds its token.
        var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(Settings.OperationTimeout);
        try
        {
            var result = await store.Flusher.RunExclusiveAsync(token => CollectExclusiveAsync(families, token), bounded.Token).ConfigureAwait(false);
            bounded.Dispose();
            return result;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RedisBackendException(
                $"The Redis backend could not read metrics from Redis at {Settings.Endpoints}: no answer within OperationTimeout ({Settings.OperationTimeout}), including the wait for a flush in progress. " +
                "Check that Redis is running and reachable, and its latency (redis-cli --latency).");
        }
    }

    private async Task<IReadOnlyList<CollectedValue>[]> CollectExclusiveAsync(IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken)
    {
        var (connection, cause) = await store.Connection.GetOrDiagnoseAsync(cancellationToken).ConfigureAwait(false);
        if (connection is null)
        {
            throw Unreachable(cause ?? store.Connection.NotConnected());
        }

        // The last round's outcome is unknown: settle it first, or its values would be counted twice or not at all.
        if (await store.Flusher.SettleAsync(connection).ConfigureAwait(false) is { } error)
        {
            throw Unreachable(error);
        }

        // Nothing is sent for a scrape that nobody waits for any more.
        cancellationToken.ThrowIfCancellationRequested();
        var db = connection.GetDatabase();
        var expiryMs = Settings.KeyExpiry > TimeSpan.Zero ? (long)Settings.KeyExpiry.TotalMilliseconds : 0;
        var reads = new Task<RedisResult>[families.Count];
        for (var i = 0; i < families.Count; i++)
        {
            var family = families[i];
            var (owned, combine, liveOnly) = RedisFamily.ModeOf(family);
            if (owned)
            {
                var dataKey = RedisFamily.DataKey(Settings, family.Name, family.DefinitionId);
                var own = new List<(byte[] Field, double Value, bool Changed)>();
                if (store.FindFamily(family) is { } local)
                {
                    foreach (var cell in local.Cells())
                    {
                        var value = cell.OwnValue(out var changed);
                        own.Add((cell.Field, value, changed));
                    }
                }

                reads[i] = db.ScriptEvaluateAsync(
                    Scripts.CollectOwned,
                    [dataKey, RedisFamily.DefinitionsKeyOf(Settings, family.Name), RedisFamily.LiveKeyOf(dataKey)],
                    RedisStore.OwnedCollectArgs(Settings, family.DefinitionId, family.Name, combine, liveOnly, store.WriterId, null, own));
                continue;
            }

            reads[i] = db.ScriptEvaluateAsync(
                Scripts.CollectFamily,
                [RedisFamily.DataKey(Settings, family.Name, family.DefinitionId), RedisFamily.DefinitionsKeyOf(Settings, family.Name)],
                [family.DefinitionId, RedisFamily.DataKeyPrefix(Settings, family.Name), expiryMs]);
        }

        try
        {
            await Task.WhenAll(reads).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            throw Unreachable(RedisDiagnosis.Describe(Settings, ex));
        }

        var result = new IReadOnlyList<CollectedValue>[families.Count];
        for (var i = 0; i < families.Count; i++)
        {
            var reply = (RedisResult[])reads[i].Result!;
            CheckSchema(families[i], (RedisResult[])reply[1]!);
            // A per-process gauge's aggregate already holds this process's own values, unflushed ones included.
            result[i] = Merge(families[i], (RedisResult[])reply[0]!, overlay: !RedisFamily.ModeOf(families[i]).Owned);
        }

        return result;
    }

    /// <summary>Counts and logs (once per family per process) another definition of the family that still holds data.</summary>
    private void CheckSchema(MetricDescriptor family, RedisResult[] others)
    {
        if (others.Length == 0)
        {
            return;
        }

        Interlocked.Increment(ref Conflicts.GetOrAdd(store.Config, static _ => new StrongBox<long>()).Value);
        if (LoggedConflicts.TryAdd(Settings.Endpoints + "\n" + Settings.KeyPrefix + "\n" + family.Name, true))
        {
            var theirs = string.Join(" and ", Enumerable.Range(0, others.Length / 2).Select(i => $"'{(string?)others[(2 * i) + 1]}' (id {(string?)others[2 * i]})"));
            store.Log(
                $"metric '{family.Name}' is declared here as '{family.Definition}' (id {family.DefinitionId}) but another process using this store declares it as {theirs}. " +
                "Each process serves only the values written under its own definition; the conflict is counted in metrics_backend_schema_conflicts_total " +
                "and ends when the other definition's keys expire, KeyExpiry after its last writer stops.");
        }
    }

    private List<CollectedValue> Merge(MetricDescriptor family, RedisResult[] flat, bool overlay)
    {
        var labelCount = family.LabelNames.Count;
        var byField = new Dictionary<string, (string[] Labels, HistogramBucket? Part, double Value)>(flat.Length / 2, StringComparer.Ordinal);
        for (var i = 0; i + 1 < flat.Length; i += 2)
        {
            var field = (byte[])flat[i]!;
            var raw = (byte[])flat[i + 1]!;
            if (raw.Length != 8)
            {
                throw new RedisBackendException($"The Redis key '{RedisFamily.DataKey(Settings, family.Name, family.DefinitionId)}' holds a field that is not an 8-byte double; it was not written by the Metrics Redis backend. Use another KeyPrefix or delete the key.");
            }

            if (!FieldCodec.TryDecode(field, labelCount, out var labels, out var part))
            {
                WarnOnce(family.Name, $"metric '{family.Name}' has stored series that do not match its {labelCount} label names; they are left out of the scrape. The key was not written by this version of the Metrics Redis backend.");
                continue;
            }

            byField[Encoding.Latin1.GetString(field)] = (labels, part, BinaryPrimitives.ReadDoubleLittleEndian(raw));
        }

        if (overlay && store.FindFamily(family) is { } local)
        {
            var cells = local.Cells();
            HashSet<RedisSeriesGroup>? overlaid = null;
            foreach (var cell in cells)
            {
                if (cell.Group is not { } series)
                {
                    Overlay(cell, byField, labelCount);
                }
                else if ((overlaid ??= []).Add(series))
                {
                    // All parts of a series at one instant: an observation in progress shows in every part or in none.
                    lock (series.Gate)
                    {
                        foreach (var part in series.Cells)
                        {
                            Overlay(part, byField, labelCount);
                        }
                    }
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

    private static void Overlay(RedisCell cell, Dictionary<string, (string[] Labels, HistogramBucket? Part, double Value)> byField, int labelCount)
    {
        var key = Encoding.Latin1.GetString(cell.Field);
        if (byField.TryGetValue(key, out var found))
        {
            byField[key] = found with { Value = cell.Overlay(found.Value) };
        }
        else if (cell.Unsent && FieldCodec.TryDecode(cell.Field, labelCount, out var labels, out var part))
        {
            byField[key] = (labels, part, cell.Overlay(0));
        }
    }

    // The reason is built by RedisDiagnosis, which masks secrets in the text it takes from outside.
    private RedisBackendException Unreachable(string reason) =>
        new($"The Redis backend could not read metrics from Redis at {Settings.Endpoints}: {reason}.");

    private void WarnOnce(string family, string message)
    {
        lock (_warnedFamilies)
        {
            if (!_warnedFamilies.Add(family))
            {
                return;
            }
        }

        store.Log(message);
    }
}
