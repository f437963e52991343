using System.Text;
using StackExchange.Redis;

namespace Metrics.Backends.Redis;

/// <summary>
/// How many series (label sets) one family holds in Redis, learned without a scrape so that a process that only writes
/// still enforces a cardinality limit over every process's series. The family's field list only grows until a removal
/// renews its generation, so after a first read each refresh moves only the entries appended since (usually none).
/// </summary>
/// <remarks>
/// Kept as the set of stored series plus the set of series this process created and has not yet seen stored, so a
/// series both hold counts once and no count goes stale by the time of the next refresh. Only families the host asks
/// about (those with a finite limit that create a series) are tracked; their sets are bounded by the limit, since past
/// it no process creates more.
/// </remarks>
internal sealed class RedisSeriesCounter
{
    private readonly object _gate = new();

    // Series as the text of their encoded label values up to and including '#' (Latin-1, one char per byte: exact).
    private readonly HashSet<string> _stored = new(StringComparer.Ordinal);
    private readonly HashSet<string> _pending = new(StringComparer.Ordinal);
    private byte[] _generation = [];
    private long _listLength = FieldList.HeaderLength;
    private bool _known;
    private int _asked;

    // Environment.TickCount64 of the last reply taken in and of the last read a creation waited for; -1: never.
    private long _appliedAt = -1;
    private long _waitedAt = -1;

    public RedisSeriesCounter(RedisStore store, MetricDescriptor family)
    {
        Owned = RedisFamily.ModeOf(family).Owned;
        Keys = store.KeysOf(family.Name, family.DefinitionId);
        LabelCount = family.LabelNames.Count;
        if (store.FindFamily(family) is { } local)
        {
            foreach (var cell in local.Cells())
            {
                Created(cell.Field);
            }
        }
    }

    /// <summary>Per-process gauges keep a hash of writer and series instead of a field list.</summary>
    public bool Owned { get; }

    public RedisFamilyKeys Keys { get; }

    public int LabelCount { get; }

    /// <summary>Whether a read since the last refresh asked for one (cleared by <see cref="TakeAsked"/>).</summary>
    public bool TakeAsked() => Interlocked.Exchange(ref _asked, 0) != 0;

    /// <summary>
    /// Whether the caller should read the count before answering: nothing was read within <paramref name="intervalMs"/>
    /// (the first call, or the first after the family was idle) and no caller waited for a read within it either, so a
    /// creation waits at most once per interval, and not at all while the flusher keeps the count fresh.
    /// </summary>
    public bool TakeWait(long intervalMs)
    {
        var now = Environment.TickCount64;
        lock (_gate)
        {
            if ((_appliedAt >= 0 && now - _appliedAt < intervalMs) || (_waitedAt >= 0 && now - _waitedAt < intervalMs))
            {
                return false;
            }

            _waitedAt = now;
            return true;
        }
    }

    /// <summary>The stored series plus those created here not yet seen stored; -1 while no read has succeeded.</summary>
    public long Count()
    {
        Volatile.Write(ref _asked, 1);
        lock (_gate)
        {
            return _known ? _stored.Count + _pending.Count : -1;
        }
    }

    /// <summary>Notes a series this process created (any part of it: the series is what counts).</summary>
    public void Created(byte[] field)
    {
        if (SeriesOf(field) is not { } series)
        {
            return;
        }

        lock (_gate)
        {
            if (!_stored.Contains(series))
            {
                _pending.Add(series);
            }
        }
    }

    /// <summary>Forgets the series whose encoded label values start with <paramref name="prefix"/> (all of them for an empty one).</summary>
    public void Removed(ReadOnlySpan<byte> prefix)
    {
        var text = Encoding.Latin1.GetString(prefix);
        lock (_gate)
        {
            _pending.RemoveWhere(s => s.StartsWith(text, StringComparison.Ordinal));
            _stored.RemoveWhere(s => s.StartsWith(text, StringComparison.Ordinal));
        }
    }

    /// <summary>The arguments of <see cref="Scripts.ReadFieldList"/>: the generation read so far and where the next read starts.</summary>
    public RedisValue[] ListReadArgs()
    {
        lock (_gate)
        {
            return [_generation, _listLength];
        }
    }

    /// <summary>Takes in a reply of <see cref="Scripts.ReadFieldList"/> or <see cref="Scripts.ListOwnedSeries"/>.</summary>
    public void Apply(RedisResult reply)
    {
        var parts = (RedisResult[])reply!;
        lock (_gate)
        {
            if (Owned)
            {
                _stored.Clear();
                foreach (var series in parts)
                {
                    if (SeriesOf((byte[])series!) is { } s)
                    {
                        _stored.Add(s);
                    }
                }
            }
            else if (!ApplyList((byte[]?)parts[0] ?? [], (long)parts[1], (byte[]?)parts[2] ?? []))
            {
                // A reply older than what was already taken in (two reads crossed): the next refresh reads on.
                return;
            }

            _pending.RemoveWhere(_stored.Contains);
            _known = true;
            _appliedAt = Environment.TickCount64;
        }
    }

    private bool ApplyList(byte[] generation, long from, byte[] tail)
    {
        var read = FieldList.Classify(generation, from, _generation, _listLength);
        if (read == FieldListRead.Stale)
        {
            return false;
        }

        if (read != FieldListRead.Continue)
        {
            // No data, or another generation whose whole list follows: what was read before is gone.
            _stored.Clear();
            _generation = generation;
            _listLength = FieldList.HeaderLength;
            if (read == FieldListRead.Empty)
            {
                return true;
            }
        }

        var list = new FieldListEntries(tail);
        while (list.TryNext(out var live, out var field))
        {
            if (live && SeriesOf(field) is { } series)
            {
                _stored.Add(series);
            }
        }

        _listLength += list.Consumed;
        return true;
    }

    /// <summary>The series of a field: its label values up to and including '#', without the part; null when not one of this family's fields.</summary>
    private string? SeriesOf(ReadOnlySpan<byte> field) =>
        FieldCodec.SeriesLength(field, LabelCount) is var length and > 0 ? Encoding.Latin1.GetString(field[..length]) : null;
}
