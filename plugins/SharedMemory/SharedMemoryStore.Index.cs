namespace Metrics.Backends.SharedMemory;

/// <summary>
/// This process's index of the store's published entries, by family and series, kept up to date by reading only what
/// was published since the last look: each bucket chain grows at its head, so a walk stops at the head it saw before.
/// </summary>
/// <remarks>
/// Keys never change once published, so each entry is decoded once per mapping. A scrape then walks each family's
/// series in the order of their entries in the file (creation order), reading value words almost sequentially, instead
/// of following hash chains across the whole mapping and decoding or hashing anything. Guarded by
/// <see cref="DecodeGate"/>.
/// </remarks>
internal sealed unsafe partial class SharedMemoryStore
{
    private readonly Dictionary<(string Name, ulong Definition), FamilyIndex> _families = [];

    // One string per metric name, so families are keyed by a shared string and new entries allocate no name.
    private readonly Dictionary<string, string> _names = new(StringComparer.Ordinal);

    // Every schema record published, for the conflict check of each scrape.
    private readonly List<nint> _schema = [];
    private int[]? _seenHeads;

    // The used size when the index was last brought up to date: a count asked for while it is unchanged skips the walk.
    private long _refreshedUsed = -1;

    /// <summary>Serializes the use of the index (<see cref="Family"/>, <see cref="KnownSchema"/>), which is not thread-safe.</summary>
    public object DecodeGate { get; } = new();

    /// <summary>The schema records published up to the last <see cref="Refresh"/>. Call under <see cref="DecodeGate"/>.</summary>
    public List<nint> KnownSchema => _schema;

    /// <summary>
    /// Reads the entries published since the last call into the index. Nothing is taken into the index unless every new
    /// entry was read and decoded: a damaged entry throws and leaves the index as it was. Call under <see cref="DecodeGate"/>.
    /// </summary>
    public void Refresh()
    {
        // Read before the walk, so that growth during the walk makes the next count walk again.
        var used = UsedBytes;
        _seenHeads ??= new int[_bucketCount];
        List<(int Bucket, int Head)>? heads = null;
        List<nint>? found = null;
        var limit = UsedBytes / EntryAlignment;
        for (var b = 0; b < _bucketCount; b++)
        {
            var head = Volatile.Read(ref Buckets[b]);
            var stop = _seenHeads[b];
            if (head == stop)
            {
                continue;
            }

            var steps = 0L;
            for (var index = head; index != 0 && index != stop; index = Volatile.Read(ref *(int*)((byte*)found![^1] + EntryNext)))
            {
                (found ??= []).Add((nint)EntryAt(index));
                if (++steps > limit)
                {
                    throw Corrupt("the index has a cycle");
                }
            }

            (heads ??= []).Add((b, head));
        }

        if (found is null)
        {
            _refreshedUsed = used;
            return;
        }

        // In file order: the objects made for the entries then lie in memory in the order scrapes walk them.
        found.Sort();

        // Decoded before anything is taken in, so that a damaged key leaves the index unchanged.
        var decoded = new (nint Entry, EntryRole Role, string Name, ulong Definition, string[] Labels, HistogramBucket? Bucket)[found.Count];
        var names = _names.GetAlternateLookup<ReadOnlySpan<char>>();
        for (var i = 0; i < found.Count; i++)
        {
            var key = KeyOf((byte*)found[i]);
            var role = SeriesKey.RoleOf(key);
            if (role == SharedMemory.EntryRole.Schema)
            {
                decoded[i] = (found[i], role, string.Empty, 0, [], null);
                continue;
            }

            var name = SeriesKey.NameOf(key);
            if (!names.TryGetValue(name, out var nameText))
            {
                // Kept even if a later entry turns out damaged: a name is harmless, and the next look finds it.
                nameText = name.ToString();
                _names.Add(nameText, nameText);
            }

            decoded[i] = (found[i], role, nameText, SeriesKey.DefinitionOf(key), SeriesKey.DecodeLabels(key, out var bucket), bucket);
        }

        HashSet<FamilyIndex>? grown = null;
        foreach (var (entry, role, name, definition, labels, bucket) in decoded)
        {
            if (role == SharedMemory.EntryRole.Schema)
            {
                _schema.Add(entry);
                continue;
            }

            if (!_families.TryGetValue((name, definition), out var family))
            {
                _families.Add((name, definition), family = new FamilyIndex());
            }

            family.Add(labels, new EntryPart(entry, role, bucket));
            (grown ??= []).Add(family);
        }

        if (grown is not null)
        {
            foreach (var family in grown)
            {
                family.Arrange();
            }
        }

        foreach (var (bucket, head) in heads!)
        {
            _seenHeads[bucket] = head;
        }

        _refreshedUsed = used;
    }

    /// <summary>The indexed series of a family under one definition, or null when the store holds none. Call under <see cref="DecodeGate"/> after <see cref="Refresh"/>.</summary>
    public FamilyIndex? Family(string name, ulong definition) => _families.GetValueOrDefault((name, definition));

    /// <summary>
    /// How many label sets of <paramref name="name"/> under <paramref name="definition"/> the store holds: every series
    /// published, less those this process's removals and scrapes found removed. Only the count skips the walk while the
    /// used size is unchanged (an entry reserved before the last walk and published since waits for the next growth or
    /// scrape; a scrape always walks). Call under <see cref="DecodeGate"/>.
    /// </summary>
    public int SeriesOf(string name, ulong definition)
    {
        if (UsedBytes != _refreshedUsed)
        {
            Refresh();
        }

        return Family(name, definition)?.Counted ?? 0;
    }
}

/// <summary>One entry of a series: a value, a process's cell, an archive or an exemplar record.</summary>
internal readonly record struct EntryPart(nint Entry, EntryRole Role, HistogramBucket? Bucket);

/// <summary>Every indexed entry of one label set of a family under one definition, in file order.</summary>
internal sealed class SeriesIndex(string[] labels)
{
    private EntryPart[] _parts = new EntryPart[1];

    /// <summary>The label values, one array shared by all parts of the series (and reused by every scrape).</summary>
    public string[] Labels { get; } = labels;

    /// <summary>How many label values there are, kept here so a scrape need not touch the array to check it.</summary>
    public int Arity { get; } = labels.Length;

    public int PartCount { get; private set; }

    /// <summary>Whether the series counts in <see cref="FamilyIndex.Counted"/>: not found removed by the last look.</summary>
    public bool Counted { get; set; } = true;

    /// <summary>The address of the first entry: series are walked in this order.</summary>
    public nint First => _parts[0].Entry;

    public ReadOnlySpan<EntryPart> Parts => _parts.AsSpan(0, PartCount);

    public void Add(EntryPart part)
    {
        if (PartCount == _parts.Length)
        {
            Array.Resize(ref _parts, _parts.Length * 2);
        }

        // Kept in file order: a scrape reads the entries as they lie in memory.
        var i = PartCount++;
        while (i > 0 && _parts[i - 1].Entry > part.Entry)
        {
            _parts[i] = _parts[i - 1];
            i--;
        }

        _parts[i] = part;
    }
}

/// <summary>The indexed series of one family under one definition.</summary>
internal sealed class FamilyIndex
{
    private readonly Dictionary<string[], SeriesIndex> _byLabels = new(LabelsComparer.Instance);
    private readonly List<SeriesIndex> _series = [];
    private int _arranged;

    /// <summary>The series in the order of their first entry in the file.</summary>
    public List<SeriesIndex> Series => _series;

    /// <summary>Series not found removed (see <see cref="SeriesIndex.Counted"/>).</summary>
    public int Counted { get; private set; }

    public SeriesIndex? Find(string[] labels) => _byLabels.GetValueOrDefault(labels);

    public void Add(string[] labels, EntryPart part)
    {
        if (!_byLabels.TryGetValue(labels, out var series))
        {
            _byLabels.Add(labels, series = new SeriesIndex(labels));
            _series.Add(series);
            Counted++;
        }
        else if (!series.Counted)
        {
            // A new entry of a series this process found removed: published by an update, so the series is back.
            SetCounted(series, true);
        }

        series.Add(part);
    }

    /// <summary>Records whether a series counts, keeping <see cref="Counted"/> in step.</summary>
    public void SetCounted(SeriesIndex series, bool counted)
    {
        if (series.Counted != counted)
        {
            series.Counted = counted;
            Counted += counted ? 1 : -1;
        }
    }

    /// <summary>Puts series added since the last call in file order; entries are appended, so new series usually go last.</summary>
    public void Arrange()
    {
        var added = _series.Count - _arranged;
        if (added > 0)
        {
            _series.Sort(_arranged, added, FirstEntryOrder.Instance);
            if (_arranged > 0 && _series[_arranged - 1].First > _series[_arranged].First)
            {
                _series.Sort(FirstEntryOrder.Instance);
            }
        }

        _arranged = _series.Count;
    }

    private sealed class FirstEntryOrder : IComparer<SeriesIndex>
    {
        public static readonly FirstEntryOrder Instance = new();

        public int Compare(SeriesIndex? x, SeriesIndex? y) => x!.First.CompareTo(y!.First);
    }
}
