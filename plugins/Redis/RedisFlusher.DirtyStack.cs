namespace Metrics.Backends.Redis;

/// <summary>
/// The flusher's stack of values with unsent updates: lock-free, each value pushed once while it holds an update (its
/// dirty flag), and bounded while Redis is unreachable, with what had to be discarded counted.
/// </summary>
internal sealed partial class RedisFlusher
{
    private static long s_dropped;
    private long _dropped;
    private RedisCell? _dirtyHead;
    private int _dirtyCount;

    /// <summary>Series updates discarded in this process, over every configuration.</summary>
    public static long DroppedUpdates => Interlocked.Read(ref s_dropped);

    public void PushDirty(RedisCell value)
    {
        Interlocked.Increment(ref _dirtyCount);
        Push(value);
    }

    /// <summary>Series updates this store discarded: what the process-wide count holds for one configuration.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Counts <paramref name="count"/> series whose updates this store discarded.</summary>
    public void CountDropped(long count)
    {
        Interlocked.Add(ref _dropped, count);
        Interlocked.Add(ref s_dropped, count);
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
            if (node.Family.Owned)
            {
                // A per-process gauge's value lives in the cell whether or not it is queued: keeping it costs nothing,
                // and discarding would leave Redis without the process's current value.
                Push(node);
            }
            else if (kept < Settings.MaxPendingSeries)
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
            CountDropped(discarded);
            _store.Log($"Redis at {Settings.Endpoints} is unreachable and more than MaxPendingSeries={Settings.MaxPendingSeries} series hold unsent updates; discarded the updates of {discarded} series.", BackendLogLevel.Error);
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
}
