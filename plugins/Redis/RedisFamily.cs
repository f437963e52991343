using System.Text;
using StackExchange.Redis;

namespace Metrics.Backends.Redis;

/// <summary>
/// One metric family under one definition as this process knows it: its keys in Redis and its local values.
/// </summary>
/// <remarks>
/// Keys carry the definition id, so two processes that declare the same name differently (other buckets, other
/// labels) write disjoint hashes and never mix values. All keys of a name share the <c>{name}</c> hash tag, which puts
/// them in one Redis Cluster slot: the scripts touch the data hash, the writer's marker and the definitions hash together.
/// </remarks>
internal sealed class RedisFamily
{
    private readonly Lock _gate = new();

    // The cells themselves, found by series and part: an entry is the cell reference and its hash, no key object.
    private readonly HashSet<RedisCell> _cells = new(SeriesComparer.Instance);
    private readonly HashSet<RedisCell>.AlternateLookup<SeriesProbe> _cellLookup;
    private readonly Dictionary<IReadOnlyList<string>, RedisSeriesGroup> _groups = new(LabelValuesComparer.Instance);

    // Every cell in creation order, for the walks over all of them (a scrape, a flush, a removal), which then copy
    // nothing: cells are only added, an array is filled before its count is published and a full one is replaced by a
    // larger copy, so the first _cellCount entries of whichever array a reader finds after reading the count are set.
    private RedisCell[] _cellArray = new RedisCell[16];
    private int _cellCount;

    public RedisFamily(RedisStore store, MetricDescriptor metric, string writerId)
    {
        Store = store;
        _cellLookup = _cells.GetAlternateLookup<SeriesProbe>();
        Name = metric.Name;
        DefinitionId = metric.DefinitionId;
        Definition = metric.Definition;
        Keys = store.KeysOf(Name, DefinitionId);
        MarkerKey = Keys.Data.ToString() + ":w:" + writerId;
        WriterId = writerId;
        (Owned, Combine, LiveOnly) = ModeOf(metric);
    }

    /// <summary>The family's keys, shared with the store's other users of this family and definition.</summary>
    public RedisFamilyKeys Keys { get; }

    /// <summary>The store this family's cells send their updates through.</summary>
    public RedisStore Store { get; }

    /// <summary>
    /// Whether each process keeps its own value of every series (a per-process gauge: LiveSum, Max, LiveMax, Min, LiveMin,
    /// LiveMostRecent, LivePerProcess), aggregated by the server at a scrape, rather than one shared value.
    /// </summary>
    public bool Owned { get; }

    /// <summary>How the server combines the writers' values of a series: 'sum', 'max', 'min' or 'recent' (for <see cref="Owned"/> families).</summary>
    public string Combine { get; }

    /// <summary>Whether only live writers count (the Live modes); otherwise dead writers' last values stay (Max, Min).</summary>
    public bool LiveOnly { get; }

    /// <summary>This process's writer id (host, pid, start time and a random part), unique across hosts.</summary>
    public string WriterId { get; }

    /// <summary>The liveness hash of an <see cref="Owned"/> family: writer id to deadline (Redis TIME, ms).</summary>
    public RedisKey LiveKey => Keys.Live;

    public string Name { get; }

    /// <summary>
    /// The last batch sequence Redis acknowledged for this family to this writer (flusher state, under its lock): a
    /// marker found below it means Redis lost what it had stored.
    /// </summary>
    public long AcknowledgedSequence { get; set; }

    public string DefinitionId { get; }

    public string Definition { get; }

    /// <summary>
    /// The hash of the series and parts written under this definition: a per-process gauge's values, or for every other
    /// family the slot of each field in <see cref="ValuesKey"/> (see <see cref="Scripts.ApplyBatch"/>). Whether it
    /// exists is whether the definition holds data.
    /// </summary>
    public RedisKey Key => Keys.Data;

    /// <summary>The string of the family's values, one 8-byte double per slot (families with one shared value per series).</summary>
    public RedisKey ValuesKey => Keys.Values;

    /// <summary>The field list naming the slots of <see cref="ValuesKey"/> in order, after an 8-byte generation.</summary>
    public RedisKey ListKey => Keys.List;

    /// <summary>This writer's last-applied-batch marker for <see cref="Key"/>.</summary>
    public RedisKey MarkerKey { get; }

    /// <summary>The hash recording every definition of this name in use: definition id to definition text.</summary>
    public RedisKey DefinitionsKey => Keys.Definitions;

    /// <summary>Where the values of <paramref name="name"/> under definition <paramref name="definitionId"/> live.</summary>
    public static string DataKey(RedisSettings settings, string name, string definitionId) => TagOf(settings, name) + ":" + definitionId;

    /// <summary>The definitions hash of <paramref name="name"/>; a definition id is 16 hex digits, so it never collides with a data key.</summary>
    public static string DefinitionsKeyOf(RedisSettings settings, string name) => TagOf(settings, name) + ":defs";

    /// <summary>What a data key of <paramref name="name"/> starts with, before the definition id.</summary>
    public static string DataKeyPrefix(RedisSettings settings, string name) => TagOf(settings, name) + ":";

    /// <summary>The hash of the latest exemplar per field beside the data hash <paramref name="dataKey"/> (same hash tag, so the same Cluster slot).</summary>
    public static string ExemplarKeyOf(string dataKey) => dataKey + ":ex";

    /// <summary>The values string beside the slot directory <paramref name="dataKey"/> (same hash tag, so the same Cluster slot).</summary>
    public static string ValuesKeyOf(string dataKey) => dataKey + ":v";

    /// <summary>The field list beside the slot directory <paramref name="dataKey"/> (same hash tag, so the same Cluster slot).</summary>
    public static string ListKeyOf(string dataKey) => dataKey + ":l";

    /// <summary>The liveness hash beside the data hash <paramref name="dataKey"/> (same hash tag, so the same Cluster slot).</summary>
    public static string LiveKeyOf(string dataKey) => dataKey + ":live";

    /// <summary>
    /// Whether <paramref name="metric"/> keeps a value per process, and how the server combines them. Sum, MostRecent and
    /// PerProcess keep one shared value per series: Inc/Dec add up and Set is last writer wins, in the order Redis applies
    /// the flushes (PerProcess series are distinct through the pid label the host adds).
    /// </summary>
    public static (bool Owned, string Combine, bool LiveOnly) ModeOf(MetricDescriptor metric) =>
        metric.Type != MetricType.Gauge ? (false, "sum", false) : metric.GaugeAggregation switch
        {
            GaugeAggregation.LiveSum => (true, "sum", true),
            GaugeAggregation.Max => (true, "max", false),
            GaugeAggregation.LiveMax => (true, "max", true),
            GaugeAggregation.Min => (true, "min", false),
            GaugeAggregation.LiveMin => (true, "min", true),
            // One writer per pid-labelled series normally; two hosts whose processes share a pid share the series, and the
            // last write among the live ones shows, as Set on a shared value would.
            GaugeAggregation.LiveMostRecent or GaugeAggregation.LivePerProcess => (true, "recent", true),
            _ => (false, "sum", false),
        };

    /// <summary>
    /// The cell of the series <paramref name="labelValues"/> and <paramref name="part"/>, created the first time;
    /// <paramref name="created"/> says which. A part of a histogram or summary series joins the series' group.
    /// </summary>
    public RedisCell GetOrAdd(IReadOnlyList<string> labelValues, HistogramBucket? part, out bool created)
    {
        lock (_gate)
        {
            created = !_cellLookup.TryGetValue(new SeriesProbe(labelValues, part), out var cell);
            if (created)
            {
                if (part is { } p)
                {
                    if (!_groups.TryGetValue(labelValues, out var group))
                    {
                        _groups.Add(labelValues, group = new RedisSeriesGroup());
                    }

                    var partCell = new RedisPartCell(this, labelValues, p, group);
                    group.Add(partCell);
                    cell = partCell;
                }
                else
                {
                    cell = new RedisCell(this, labelValues);
                }

                _cells.Add(cell);
                if (_cellCount == _cellArray.Length)
                {
                    var larger = new RedisCell[_cellArray.Length * 2];
                    _cellArray.CopyTo(larger, 0);
                    Volatile.Write(ref _cellArray, larger);
                }

                _cellArray[_cellCount] = cell;
                Volatile.Write(ref _cellCount, _cellCount + 1);
            }

            return cell!;
        }
    }

    /// <summary>The family's cells at this moment, without a lock or a copy; a cell created meanwhile may be left out.</summary>
    public ReadOnlySpan<RedisCell> Cells()
    {
        var count = Volatile.Read(ref _cellCount);
        return Volatile.Read(ref _cellArray).AsSpan(0, count);
    }

    private static string TagOf(RedisSettings settings, string name) => settings.KeyPrefix + "{" + name + "}";

    /// <summary>A series and part to look a cell up by, without creating one.</summary>
    private readonly record struct SeriesProbe(IReadOnlyList<string> LabelValues, HistogramBucket? Part);

    /// <summary>Cells are equal when their series (label values, ordinal) and part are.</summary>
    private sealed class SeriesComparer : IEqualityComparer<RedisCell>, IAlternateEqualityComparer<SeriesProbe, RedisCell>
    {
        public static readonly SeriesComparer Instance = new();

        public bool Equals(RedisCell? x, RedisCell? y) =>
            ReferenceEquals(x, y) || (x is not null && y is not null && Nullable.Equals(x.Part, y.Part) && LabelValuesComparer.Instance.Equals(x.LabelValues, y.LabelValues));

        public int GetHashCode(RedisCell obj) => Hash(obj.LabelValues, obj.Part);

        public bool Equals(SeriesProbe alternate, RedisCell other) =>
            Nullable.Equals(alternate.Part, other.Part) && LabelValuesComparer.Instance.Equals(alternate.LabelValues, other.LabelValues);

        public int GetHashCode(SeriesProbe alternate) => Hash(alternate.LabelValues, alternate.Part);

        // Creating a cell from a probe is not needed: a miss adds a cell built by GetOrAdd.
        public RedisCell Create(SeriesProbe alternate) => throw new NotSupportedException("Cells are added by RedisFamily.GetOrAdd.");

        private static int Hash(IReadOnlyList<string> labelValues, HistogramBucket? part) =>
            HashCode.Combine(LabelValuesComparer.Instance.GetHashCode(labelValues), part);
    }

    /// <summary>Label value lists compared element by element (ordinal).</summary>
    private sealed class LabelValuesComparer : IEqualityComparer<IReadOnlyList<string>>
    {
        public static readonly LabelValuesComparer Instance = new();

        public bool Equals(IReadOnlyList<string>? x, IReadOnlyList<string>? y)
        {
            if (ReferenceEquals(x, y))
            {
                return true;
            }

            if (x is null || y is null || x.Count != y.Count)
            {
                return false;
            }

            for (var i = 0; i < x.Count; i++)
            {
                if (!string.Equals(x[i], y[i], StringComparison.Ordinal))
                {
                    return false;
                }
            }

            return true;
        }

        public int GetHashCode(IReadOnlyList<string> obj)
        {
            var hash = new HashCode();
            for (var i = 0; i < obj.Count; i++)
            {
                hash.Add(obj[i], StringComparer.Ordinal);
            }

            return hash.ToHashCode();
        }
    }
}

/// <summary>
/// The parts (buckets and sum, or count and sum) of one histogram or summary series in one process. An observation adds
/// to a bucket and the sum under <see cref="Gate"/>, and the flusher and a scrape take every part's pending update under
/// it, so a bucket increment and its sum always travel in the same batch to the same hash.
/// </summary>
internal sealed class RedisSeriesGroup
{
    private RedisCell[] _cells = [];

    public Lock Gate { get; } = new();

    public RedisCell[] Cells => Volatile.Read(ref _cells);

    public void Add(RedisCell cell)
    {
        lock (Gate)
        {
            Volatile.Write(ref _cells, [.. _cells, cell]);
        }
    }
}
