using System.Runtime.CompilerServices;

namespace Metrics.Backends.Redis;

/// <summary>
/// This process's state of one stored value (one field of a family hash): the pending and in-flight updates and the
/// last stored value seen. Every <see cref="RedisBackend"/> created for the same series and part in one configuration
/// delegates to the same cell, so each instance reads the others' unflushed updates.
/// </summary>
internal sealed class RedisCell
{
    private readonly RedisStore _store;
    private readonly Lock _gate = new();

    // An empty delta is -0.0, the identity of IEEE addition (x + -0 is x for every x, -0 included), so a delta that is
    // +0 after Inc(0) still turns a stored -0 into +0, as one-at-a-time addition would.
    private const long EmptyDelta = unchecked((long)0x8000_0000_0000_0000);

    // Pending delta as the double's bits, added with compare-and-swap so Inc never takes a lock.
    private long _deltaBits = EmptyDelta;
    private int _dirty;

    // Changed by every acknowledgement, so a read of Redis can tell whether an acknowledgement raced it.
    private int _acknowledgements;

    // Guarded by _gate.
    private bool _pendingSet;
    private bool _removed;
    private bool _acknowledged;
    private double _pendingSetValue;
    private bool _inFlight;
    private long _inFlightSequence;
    private bool _inFlightSet;
    private double _inFlightSetValue;
    private double _inFlightDelta;
    // A shared value's last stored value seen; for a per-process (owned) gauge, this process's own value as of the last
    // take: the process is its field's only writer, so it holds the authoritative value and sends it whole.
    private double _stored;
    private long _storedSequence;

    // The last aggregate an owned gauge's Get read, answered while Redis cannot be read.
    private double _lastAggregate;
    private bool _hasAggregate;

    public RedisCell(RedisStore store, RedisFamily family, byte[] field, RedisSeriesGroup? group)
    {
        _store = store;
        Family = family;
        Field = field;
        Group = group;
    }

    public byte[] Field { get; }

    public RedisFamily Family { get; }

    /// <summary>The histogram or summary series this part belongs to, whose parts are flushed together; null for a counter or gauge.</summary>
    public RedisSeriesGroup? Group { get; }

    /// <summary>The round that last took this cell's pending update; the flusher's own state, so a round takes a cell once.</summary>
    public long TakenSequence { get; private set; }

    /// <summary>Whether an update waits to be taken (read under the group's gate by the flusher).</summary>
    public bool HasPending => Volatile.Read(ref _deltaBits) != EmptyDelta || Volatile.Read(ref _pendingSet);

    // Intrusive link of the dirty stack; written only by the thread that set _dirty from 0 to 1, read by the flusher.
    public RedisCell? NextDirty { get; set; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Inc(double value)
    {
        AtomicDouble.Add(ref _deltaBits, value);
        MarkDirty();
    }

    /// <summary>Adds to the pending delta without queueing the cell; the caller marks it dirty afterwards.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void AddPending(double value) => AtomicDouble.Add(ref _deltaBits, value);

    public void Set(double value)
    {
        lock (_gate)
        {
            _pendingSet = true;
            _pendingSetValue = value;
            // An Inc that lands in the delta before this exchange happened before the Set and is overwritten by it;
            // one that lands after is added on top: both are valid orders for racing calls.
            Interlocked.Exchange(ref _deltaBits, EmptyDelta);
        }

        MarkDirty();
    }

    /// <summary>
    /// The stored value read from Redis, with this process's in-flight batch (unless Redis already applied it) and
    /// pending updates on top. Falls back to the last stored value seen when Redis cannot be read in time.
    /// </summary>
    public double Get()
    {
        if (Family.Owned)
        {
            return GetOwned();
        }

        var deadline = DateTime.UtcNow + _store.Settings.OperationTimeout;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            // A retry holds the flush lock: no batch can be acknowledged while it reads, so it cannot race again.
            var exclusive = attempt > 0;
            if (exclusive && !_store.TryEnterExclusive(deadline - DateTime.UtcNow))
            {
                break;
            }

            try
            {
                var acknowledgements = Volatile.Read(ref _acknowledgements);
                if (!_store.TryReadStored(this, deadline, out var stored, out var marker))
                {
                    break;
                }

                lock (_gate)
                {
                    // An acknowledgement after the read means a batch the read did not include may have left the
                    // in-flight slot; the marker cannot tell, so read again.
                    if (_acknowledgements == acknowledgements)
                    {
                        if (marker >= _storedSequence)
                        {
                            _stored = stored;
                            _storedSequence = marker;
                        }

                        return Combine(stored, marker);
                    }
                }
            }
            finally
            {
                if (exclusive)
                {
                    _store.ExitExclusive();
                }
            }
        }

        lock (_gate)
        {
            return Combine(_stored, _storedSequence);
        }
    }

    /// <summary>Whether the cell waits for the flusher (new, updated, or re-queued after its writer was found dead).</summary>
    public bool IsDirty => Volatile.Read(ref _dirty) != 0;

    /// <summary>
    /// This process's own value of an owned gauge, with every update applied; <paramref name="changed"/> says whether it
    /// holds updates Redis has not acknowledged (they then count as written now).
    /// </summary>
    public double OwnValue(out bool changed)
    {
        lock (_gate)
        {
            changed = _inFlight || _pendingSet || IsDirty || Volatile.Read(ref _deltaBits) != EmptyDelta;
            return Apply(_stored, _pendingSet, _pendingSetValue, BitConverter.Int64BitsToDouble(Volatile.Read(ref _deltaBits)));
        }
    }

    /// <summary>Folds the pending update into this process's own value and returns it, to be sent whole in round <paramref name="sequence"/>.</summary>
    public double TakeOwned(long sequence)
    {
        lock (_gate)
        {
            TakenSequence = sequence;
            _inFlight = true;
            _inFlightSequence = sequence;
            _stored = Apply(_stored, _pendingSet, _pendingSetValue, BitConverter.Int64BitsToDouble(Interlocked.Exchange(ref _deltaBits, EmptyDelta)));
            _pendingSet = false;
            return _stored;
        }
    }

    /// <summary>Redis stored the own value taken by the in-flight round.</summary>
    public void AcknowledgeOwned()
    {
        lock (_gate)
        {
            _inFlight = false;
            _acknowledged = true;
            _acknowledgements++;
        }
    }

    /// <summary>
    /// The aggregate the scrape would show for this series: read on the server (the other writers' values, live or kept
    /// per the mode) with this process's current own value in it. Falls back to the last aggregate read, else the own value.
    /// </summary>
    private double GetOwned()
    {
        var own = OwnValue(out var changed);
        if (_store.TryReadOwned(this, own, changed, DateTime.UtcNow + _store.Settings.OperationTimeout, out var aggregate))
        {
            lock (_gate)
            {
                _lastAggregate = aggregate;
                _hasAggregate = true;
            }

            return aggregate;
        }

        lock (_gate)
        {
            return _hasAggregate ? _lastAggregate : own;
        }
    }

    /// <summary>Same rule as the flush script: the delta is always added; an empty one is -0.0, which changes nothing.</summary>
    internal static double Apply(double value, bool set, double setValue, double delta) => (set ? setValue : value) + delta;

    /// <summary>Moves the pending update into the in-flight batch <paramref name="sequence"/>. Called by the flusher after clearing the dirty flag.</summary>
    public (bool Set, double SetValue, double Delta) TakePending(long sequence)
    {
        lock (_gate)
        {
            TakenSequence = sequence;
            _inFlight = true;
            _inFlightSequence = sequence;
            _inFlightSet = _pendingSet;
            _inFlightSetValue = _pendingSetValue;
            _inFlightDelta = BitConverter.Int64BitsToDouble(Interlocked.Exchange(ref _deltaBits, EmptyDelta));
            _pendingSet = false;
            return (_inFlightSet, _inFlightSetValue, _inFlightDelta);
        }
    }

    /// <summary>Redis stored the in-flight batch <paramref name="sequence"/>; <paramref name="stored"/> is the value it returned.</summary>
    public void Acknowledge(double stored, long sequence)
    {
        lock (_gate)
        {
            _stored = stored;
            _storedSequence = sequence;
            _inFlight = false;
            _acknowledged = true;
            _acknowledgements++;
        }
    }

    /// <summary>The stored value <paramref name="stored"/> with this process's unsent updates applied, for a scrape that settled the in-flight batch.</summary>
    public double Overlay(double stored)
    {
        lock (_gate)
        {
            return Apply(stored, _pendingSet, _pendingSetValue, BitConverter.Int64BitsToDouble(Volatile.Read(ref _deltaBits)));
        }
    }

    /// <summary>Discards the pending update (the in-flight one is kept). Returns whether there was one.</summary>
    /// <summary>
    /// Forgets this process's pending updates and the stored value seen, for a removed series: the removal is applied
    /// before anything updated later is sent, so the series comes back from 0.
    /// </summary>
    public void ResetRemoved()
    {
        lock (_gate)
        {
            _removed = true;
            _pendingSet = false;
            Interlocked.Exchange(ref _deltaBits, EmptyDelta);
            _stored = 0;
            _lastAggregate = 0;
            _hasAggregate = false;
        }
    }

    /// <summary>
    /// Whether the flusher must leave this cell out: its series was removed and nothing was updated since, so sending its
    /// empty delta would create the field again. An update since the removal clears the mark and the cell is sent.
    /// </summary>
    public bool SkipRemoved()
    {
        lock (_gate)
        {
            if (!_removed)
            {
                return false;
            }

            if (!_pendingSet && Volatile.Read(ref _deltaBits) == EmptyDelta)
            {
                return true;
            }

            _removed = false;
            return false;
        }
    }

    /// <summary>
    /// Whether a scrape must show this cell though Redis has no field for it: it holds updates not stored yet, or it was
    /// never stored (a series just created). A cell stored before whose field is gone was removed, by any process.
    /// </summary>
    public bool Unsent
    {
        get
        {
            lock (_gate)
            {
                return !_removed && (IsDirty || _inFlight || _pendingSet || Volatile.Read(ref _deltaBits) != EmptyDelta || !_acknowledged);
            }
        }
    }

    public bool DiscardPending()
    {
        lock (_gate)
        {
            var had = _pendingSet || Volatile.Read(ref _deltaBits) != EmptyDelta;
            _pendingSet = false;
            Interlocked.Exchange(ref _deltaBits, EmptyDelta);
            return had;
        }
    }

    // A full fence: the flusher clears the flag before taking the delta, and an Inc adds to the delta before reading the flag,
    // so an Inc either lands in the taken delta or sees the cleared flag and queues the value again.
    public void ClearDirty() => Interlocked.Exchange(ref _dirty, 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void MarkDirty()
    {
        if (Volatile.Read(ref _dirty) == 0 && Interlocked.Exchange(ref _dirty, 1) == 0)
        {
            _store.PushDirty(this);
        }
    }

    /// <summary>
    /// <paramref name="stored"/> was read together with this writer's applied-batch marker <paramref name="marker"/>:
    /// the in-flight batch is in it when its sequence is at or below the marker, the pending updates never are.
    /// </summary>
    private double Combine(double stored, long marker)
    {
        var value = stored;
        if (_inFlight && _inFlightSequence > marker)
        {
            value = Apply(value, _inFlightSet, _inFlightSetValue, _inFlightDelta);
        }

        return Apply(value, _pendingSet, _pendingSetValue, BitConverter.Int64BitsToDouble(Volatile.Read(ref _deltaBits)));
    }
}
