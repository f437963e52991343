using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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

    // Each family's fields decoded once and kept across scrapes (collections are serialized by the flusher's exclusive
    // run, so they are used by one collection at a time): a steady scrape decodes no label text and returns the same
    // label arrays every time, which the host then finds its rendered labels for by reference.
    private readonly Dictionary<(string Name, string DefinitionId), DecodedFields> _fields = [];

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
        var reads = new Task<RedisResult>[families.Count];
        var slotted = new bool[families.Count];
        var exemplarReads = new Task<HashEntry[]>?[families.Count];
        for (var i = 0; i < families.Count; i++)
        {
            var family = families[i];
            var keys = store.KeysOf(family.Name, family.DefinitionId);
            if (family.Type is MetricType.Counter or MetricType.Histogram)
            {
                // In the same pipeline: one round trip still reads values and exemplars.
                exemplarReads[i] = db.HashGetAllAsync(keys.Exemplars);
            }

            var (owned, combine, liveOnly) = RedisFamily.ModeOf(family);
            if (owned)
            {
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
                    [keys.Data, keys.Definitions, keys.Live],
                    RedisStore.OwnedCollectArgs(Settings, family.DefinitionId, keys, combine, liveOnly, store.WriterId, null, own));
                continue;
            }

            // Sent together on one connection: one round trip per master however many families. The field list is read
            // from where this scraper stopped last time, so a steady scrape moves the values and nothing else.
            var layout = FieldsOf(family).Layout;
            slotted[i] = true;
            reads[i] = db.ScriptEvaluateAsync(
                Scripts.CollectSlots,
                [keys.Data, keys.Definitions, keys.Values, keys.List],
                [family.DefinitionId, keys.DataPrefix, Settings.KeyExpiryMs, layout.Generation, layout.ListLength]);
        }

        try
        {
            await Task.WhenAll(reads).ConfigureAwait(false);
            foreach (var read in exemplarReads)
            {
                if (read is not null)
                {
                    await read.ConfigureAwait(false);
                }
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException or OperationCanceledException)
        {
            // The reads carry no token of ours: a cancelled one is a command the client gave up on, a transport fault.
            throw Unreachable(RedisDiagnosis.Describe(Settings, ex));
        }

        var result = new IReadOnlyList<CollectedValue>[families.Count];
        for (var i = 0; i < families.Count; i++)
        {
            if (slotted[i])
            {
                var reply = (RedisResult[])reads[i].Result!;
                CheckSchema(families[i], (RedisResult[])reply[4]!);
                result[i] = MergeSlots(families[i], reply, exemplarReads[i]?.Result);
                continue;
            }

            // A per-process gauge's aggregate already holds this process's own values, unflushed ones included.
            var aggregate = (RedisResult[])reads[i].Result!;
            CheckSchema(families[i], (RedisResult[])aggregate[1]!);
            result[i] = Merge(families[i], (RedisResult[])aggregate[0]!);
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

    /// <summary>A per-process gauge's aggregate: the owned-collect script's array of field, value pairs, this process's values in it.</summary>
    private CollectedValueList Merge(MetricDescriptor family, RedisResult[] flat)
    {
        var (fields, generation, list) = Begin(family);
        for (var i = 0; i + 1 < flat.Length; i += 2)
        {
            Add(family, fields, generation, list, (byte[])flat[i]!, (byte[])flat[i + 1]!);
        }

        fields.Trim(generation, list.Count);
        return list;
    }

    /// <summary>
    /// A family's values as <see cref="Scripts.CollectSlots"/> read them (generation, list offset, list tail, values),
    /// with this process's unsent updates on top.
    /// </summary>
    private CollectedValueList MergeSlots(MetricDescriptor family, RedisResult[] reply, HashEntry[]? exemplars)
    {
        var labelCount = family.LabelNames.Count;
        var (fields, generation, list) = Begin(family);
        var layout = fields.Layout;
        var values = (byte[]?)reply[3] ?? [];
        if (values.Length % 8 != 0)
        {
            throw new RedisBackendException($"The Redis key '{store.KeysOf(family.Name, family.DefinitionId).Values}' does not hold 8-byte doubles; it was not written by this version of the Metrics Redis backend. Use another KeyPrefix or delete the key.");
        }

        if (!layout.Update((byte[]?)reply[0] ?? [], (long)reply[1], (byte[]?)reply[2] ?? [], fields, labelCount))
        {
            WarnOnce(family.Name, $"metric '{family.Name}' has stored series that do not match its {labelCount} label names; they are left out of the scrape. The key was not written by this version of the Metrics Redis backend.");
        }

        var slots = layout.Slots;
        var count = Math.Min(layout.Count, values.Length / 8);
        for (var slot = 0; slot < count; slot++)
        {
            if (slots[slot] is { } decoded)
            {
                Put(fields, list, decoded, generation, BinaryPrimitives.ReadDoubleLittleEndian(values.AsSpan(slot * 8)));
            }
        }

        // Taken once for values and exemplars alike: a cell created after this shows in neither.
        var cells = store.FindFamily(family) is { } local ? local.Cells() : default;
        HashSet<RedisSeriesGroup>? overlaid = null;
        foreach (var cell in cells)
        {
            if (cell.Group is not { } series)
            {
                // A cell whose every update Redis acknowledged shows as read: no need to find it.
                if (!cell.IsSettled)
                {
                    Overlay(cell, list, fields, generation, labelCount);
                }
            }
            else if (!AllSettled(series) && (overlaid ??= []).Add(series))
            {
                // All parts of a series at one instant: an observation in progress shows in every part or in none.
                lock (series.Gate)
                {
                    foreach (var part in series.Cells)
                    {
                        Overlay(part, list, fields, generation, labelCount);
                    }
                }
            }
        }

        AttachExemplars(family, fields, generation, list, exemplars, cells);
        fields.Trim(generation, list.Count);
        return list;
    }

    // Checked without the series' lock: an observation that lands while the parts are checked makes a part checked after
    // it unsettled, so the series is overlaid under the lock; one that lands after every check is not in this scrape.
    private static bool AllSettled(RedisSeriesGroup series)
    {
        foreach (var part in series.Cells)
        {
            if (!part.IsSettled)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Gives each collected counter or histogram bucket the latest of its stored exemplar and this process's unsent one
    /// (read-your-writes, as for values). An exemplar whose value is not in the collection is left out.
    /// </summary>
    private static void AttachExemplars(MetricDescriptor family, DecodedFields fields, long generation, CollectedValueList list, HashEntry[]? exemplars, ReadOnlySpan<RedisCell> cells)
    {
        var labelCount = family.LabelNames.Count;
        foreach (var entry in exemplars ?? [])
        {
            if (ExemplarCodec.TryDecode((byte[])entry.Value!, out var exemplar))
            {
                AttachExemplar(list, fields.Find(((ReadOnlyMemory<byte>)entry.Name).Span, labelCount), generation, exemplar);
            }
        }

        if (family.Type is MetricType.Counter or MetricType.Histogram)
        {
            foreach (var cell in cells)
            {
                if (cell.UnsentExemplar is { } mine)
                {
                    AttachExemplar(list, fields.Find(cell.Field, labelCount), generation, mine);
                }
            }
        }
    }

    private static void AttachExemplar(CollectedValueList list, DecodedField? decoded, long generation, in RecordedExemplar exemplar)
    {
        if (decoded is null || decoded.Generation != generation)
        {
            return;
        }

        var found = list[decoded.Index];
        if (found.Exemplar is not { } held || exemplar.TimestampUnixSeconds > held.TimestampUnixSeconds)
        {
            list.Set(decoded.Index, found with { Exemplar = exemplar });
        }
    }

    private (DecodedFields Fields, long Generation, CollectedValueList List) Begin(MetricDescriptor family)
    {
        var fields = FieldsOf(family);
        return (fields, fields.NextGeneration(), new CollectedValueList());
    }

    private DecodedFields FieldsOf(MetricDescriptor family)
    {
        var key = (family.Name, family.DefinitionId);
        if (!_fields.TryGetValue(key, out var fields))
        {
            _fields[key] = fields = new DecodedFields();
        }

        return fields;
    }

    private void Add(MetricDescriptor family, DecodedFields fields, long generation, CollectedValueList list, ReadOnlySpan<byte> field, ReadOnlySpan<byte> raw)
    {
        if (raw.Length != 8)
        {
            throw new RedisBackendException($"The Redis key '{store.KeysOf(family.Name, family.DefinitionId).Data}' holds a field that is not an 8-byte double; it was not written by the Metrics Redis backend. Use another KeyPrefix or delete the key.");
        }

        var labelCount = family.LabelNames.Count;
        if (fields.Find(field, labelCount) is not { } decoded)
        {
            WarnOnce(family.Name, $"metric '{family.Name}' has stored series that do not match its {labelCount} label names; they are left out of the scrape. The key was not written by this version of the Metrics Redis backend.");
            return;
        }

        Put(fields, list, decoded, generation, BinaryPrimitives.ReadDoubleLittleEndian(raw));
    }

    private static void Overlay(RedisCell cell, CollectedValueList list, DecodedFields fields, long generation, int labelCount)
    {
        if (fields.Find(cell.Field, labelCount) is not { } decoded)
        {
            return;
        }

        if (decoded.Generation == generation)
        {
            var found = list[decoded.Index];
            list.Set(decoded.Index, found with { Value = cell.Overlay(found.Value) });
        }
        else if (cell.Unsent)
        {
            // Not in Redis: a series created here and not stored yet shows; one stored before whose field is gone was removed.
            Put(fields, list, decoded, generation, cell.Overlay(0));
        }
    }

    /// <summary>Adds a field's value, or replaces it when the field was already added in this collection.</summary>
    private static void Put(DecodedFields fields, CollectedValueList list, DecodedField decoded, long generation, double value)
    {
        if (decoded.Generation == generation)
        {
            list.Set(decoded.Index, new CollectedValue(decoded.Labels, decoded.Part, value));
            return;
        }

        decoded.Generation = generation;
        decoded.Index = list.Count;
        list.Add(new CollectedValue(decoded.Labels, decoded.Part, value));
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

/// <summary>One hash field decoded: its labels and part, and where the collection in progress put its value.</summary>
internal sealed class DecodedField(SeriesLabels series, HistogramBucket? part, int seriesLength)
{
    /// <summary>The field's series, shared by its parts.</summary>
    public SeriesLabels Series { get; } = series;

    /// <summary>The length of the field's series part (label values up to and including '#'), shared by the series' parts.</summary>
    public int SeriesLength { get; } = seriesLength;

    public string[] Labels => Series.Labels;

    public HistogramBucket? Part { get; } = part;

    /// <summary>The collection that last added this field, and the index of its value there.</summary>
    public long Generation { get; set; }

    public int Index { get; set; }
}

/// <summary>The label values of one series, one array for all its parts.</summary>
internal sealed class SeriesLabels(string[] labels)
{
    public string[] Labels { get; } = labels;
}

/// <summary>
/// A family's decoded fields by their bytes, pruned of fields that no longer come back, and which field each slot of
/// the family's values holds. Every part of one series gets the same label array, so a series is one array.
/// </summary>
internal sealed class DecodedFields
{
    private readonly Dictionary<byte[], DecodedField?> _byField = new(FieldComparer.Instance);
    private readonly Dictionary<byte[], SeriesLabels> _labels = new(FieldComparer.Instance);
    private long _generation;

    /// <summary>The slots of the family's values as this scraper has read their field list.</summary>
    public SlotLayout Layout { get; } = new();

    public long NextGeneration() => ++_generation;

    /// <summary>The decoded field, or <see langword="null"/> when it is not one of this family's fields.</summary>
    public DecodedField? Find(ReadOnlySpan<byte> field, int labelCount)
    {
        // One hash and probe whether the field is known or not: a first scrape of a large store decodes every field.
        var lookup = _byField.GetAlternateLookup<ReadOnlySpan<byte>>();
        ref var decoded = ref CollectionsMarshal.GetValueRefOrAddDefault(lookup, field, out var known);
        if (!known)
        {
            try
            {
                // A field that is not this family's is kept as null, so it is not decoded again.
                decoded = FieldCodec.TryDecode(field, labelCount, out var labels, out var part, out var seriesLength)
                    ? new DecodedField(part is null ? new SeriesLabels(labels) : Intern(field[..seriesLength], labels), part, seriesLength)
                    : null;
            }
            catch
            {
                // Not remembered as decoded: the next scrape meets the same failure.
                lookup.Remove(field);
                throw;
            }
        }

        return decoded;
    }

    /// <summary>Drops the fields the collection <paramref name="generation"/> did not see once they outnumber the seen ones.</summary>
    public void Trim(long generation, int seen)
    {
        if (_byField.Count <= (2 * seen) + 1024)
        {
            return;
        }

        _labels.Clear();
        foreach (var (field, decoded) in _byField)
        {
            if (decoded is null || decoded.Generation != generation)
            {
                _byField.Remove(field);
            }
            else if (decoded.Part is not null)
            {
                // Kept as they are: the slots and the host's rendered labels refer to these arrays.
                _labels.GetAlternateLookup<ReadOnlySpan<byte>>()[field.AsSpan(0, decoded.SeriesLength)] = decoded.Series;
            }
        }
    }

    /// <summary>Makes room for <paramref name="more"/> fields about to be decoded, so a large first read does not rehash over and over.</summary>
    public void Reserve(int more)
    {
        _byField.EnsureCapacity(_byField.Count + more);
    }

    // Only parts of histograms and summaries share a series; a counter's or gauge's field is its whole series.
    private SeriesLabels Intern(ReadOnlySpan<byte> series, string[] labels)
    {
        var lookup = _labels.GetAlternateLookup<ReadOnlySpan<byte>>();
        if (!lookup.TryGetValue(series, out var known))
        {
            lookup[series] = known = new SeriesLabels(labels);
        }

        return known;
    }

    private sealed class FieldComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static readonly FieldComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] obj) => GetHashCode((ReadOnlySpan<byte>)obj);

        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

        public int GetHashCode(ReadOnlySpan<byte> alternate) => (int)System.IO.Hashing.XxHash3.HashToUInt64(alternate);

        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();
    }
}

/// <summary>
/// The field of each slot of a family's values string, as one scraper has read the family's field list (see
/// <see cref="Scripts.ApplyBatch"/>): the list only grows until its generation changes, so each scrape parses only the
/// entries added since the last one.
/// </summary>
internal sealed class SlotLayout
{
    private DecodedField?[] _slots = [];

    /// <summary>The generation of the list read so far (8 bytes), empty before the first read.</summary>
    public byte[] Generation { get; private set; } = [];

    /// <summary>Bytes of the list read so far, its generation included; the next read starts there.</summary>
    public long ListLength { get; private set; }

    /// <summary>Slots named so far.</summary>
    public int Count { get; private set; }

    /// <summary>The field of each slot, null for a removed one or one that is not this family's.</summary>
    public DecodedField?[] Slots => _slots;

    /// <summary>
    /// Takes in what a scrape read: the list's <paramref name="generation"/> (empty: the family holds no data) and its
    /// <paramref name="tail"/> from offset <paramref name="from"/>. Returns <see langword="false"/> when an entry could
    /// not be decoded as one of this family's fields (it is left out).
    /// </summary>
    public bool Update(byte[] generation, long from, byte[] tail, DecodedFields fields, int labelCount)
    {
        switch (FieldList.Classify(generation, from, Generation, ListLength))
        {
            case FieldListRead.Empty:
                Reset([], 0);
                return true;
            case FieldListRead.Restart:
                Reset(generation, FieldList.HeaderLength);
                break;
            case FieldListRead.Stale:
                // Not the whole list of the new generation: read it all next time.
                Reset(generation, FieldList.HeaderLength);
                return false;
        }

        if (tail.Length > 64 * 1024)
        {
            var entries = CountEntries(tail);
            fields.Reserve(entries);
            if (Count + entries > _slots.Length)
            {
                Array.Resize(ref _slots, Count + entries);
            }
        }

        var ok = true;
        var list = new FieldListEntries(tail);
        while (list.TryNext(out var live, out var field))
        {
            DecodedField? decoded = null;
            if (live)
            {
                decoded = fields.Find(field, labelCount);
                ok &= decoded is not null;
            }

            if (Count == _slots.Length)
            {
                Array.Resize(ref _slots, Math.Max(64, _slots.Length * 2));
            }

            _slots[Count++] = decoded;
        }

        ListLength += list.Consumed;
        return ok && list.Complete;
    }

    private static int CountEntries(byte[] tail)
    {
        var count = 0;
        var list = new FieldListEntries(tail);
        while (list.TryNext(out _, out _))
        {
            count++;
        }

        return count;
    }

    private void Reset(byte[] generation, long listLength)
    {
        Array.Clear(_slots, 0, Count);
        Count = 0;
        Generation = generation;
        ListLength = listLength;
    }
}
