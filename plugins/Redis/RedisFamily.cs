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

    // Keyed by the field's bytes as Latin-1, which maps each byte to one char, so distinct fields never collide.
    private readonly Dictionary<string, RedisCell> _cells = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RedisSeriesGroup> _groups = new(StringComparer.Ordinal);

    public RedisFamily(RedisSettings settings, MetricDescriptor metric, string writerId)
    {
        Name = metric.Name;
        DefinitionId = metric.DefinitionId;
        Definition = metric.Definition;
        var key = DataKey(settings, Name, DefinitionId);
        Key = key;
        MarkerKey = key + ":w:" + writerId;
        DefinitionsKey = DefinitionsKeyOf(settings, Name);
        WriterId = writerId;
        (Owned, Combine, LiveOnly) = ModeOf(metric);
        LiveKey = LiveKeyOf(key);
    }

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
    public RedisKey LiveKey { get; }

    public string Name { get; }

    /// <summary>
    /// The last batch sequence Redis acknowledged for this family to this writer (flusher state, under its lock): a
    /// marker found below it means Redis lost what it had stored.
    /// </summary>
    public long AcknowledgedSequence { get; set; }

    /// <summary>Series (label sets) this process created in the family since the last scrape counted them in Redis.</summary>
    public long CreatedSinceCount;

    public string DefinitionId { get; }

    public string Definition { get; }

    /// <summary>The hash holding one field per series and part written under this definition.</summary>
    public RedisKey Key { get; }

    /// <summary>This writer's last-applied-batch marker for <see cref="Key"/>.</summary>
    public RedisKey MarkerKey { get; }

    /// <summary>The hash recording every definition of this name in use: definition id to definition text.</summary>
    public RedisKey DefinitionsKey { get; }

    /// <summary>Where the values of <paramref name="name"/> under definition <paramref name="definitionId"/> live.</summary>
    public static string DataKey(RedisSettings settings, string name, string definitionId) => TagOf(settings, name) + ":" + definitionId;

    /// <summary>The definitions hash of <paramref name="name"/>; a definition id is 16 hex digits, so it never collides with a data key.</summary>
    public static string DefinitionsKeyOf(RedisSettings settings, string name) => TagOf(settings, name) + ":defs";

    /// <summary>What a data key of <paramref name="name"/> starts with, before the definition id.</summary>
    public static string DataKeyPrefix(RedisSettings settings, string name) => TagOf(settings, name) + ":";

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

    /// <summary>
    /// The group of the histogram or summary series whose fields start with <paramref name="seriesPrefix"/> (the
    /// encoded label values): its parts are flushed and overlaid together, so no scrape sees half an observation.
    /// </summary>
    public RedisSeriesGroup GroupOf(string seriesPrefix)
    {
        lock (_gate)
        {
            if (!_groups.TryGetValue(seriesPrefix, out var group))
            {
                _groups.Add(seriesPrefix, group = new RedisSeriesGroup());
            }

            return group;
        }
    }

    public RedisCell[] Cells()
    {
        lock (_gate)
        {
            return [.. _cells.Values];
        }
    }

    private static string TagOf(RedisSettings settings, string name) => settings.KeyPrefix + "{" + name + "}";
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
