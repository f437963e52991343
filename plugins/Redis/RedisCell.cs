using System.Runtime.CompilerServices;

namespace Metrics.Backends.Redis;

/// <summary>
/// This process's state of one stored value (one field of a family hash): the pending and in-flight updates and the
/// last stored value seen. Every <see cref="RedisBackend"/> created for the same series and part in one configuration
/// delegates to the same cell, so each instance reads the others' unflushed updates.
/// </summary>
/// <remarks>
/// A process may hold millions of cells, so a cell keeps no more than its numbers: the hash field is not kept but
/// encoded from the series' label values (the array the metric keeps anyway) whenever it is sent, the cell locks on
/// itself (a header lock, no lock object), and state only some cells need lives in <see cref="RedisPartCell"/> (a
/// histogram or summary part) or shares a slot with state their kind never uses (an owned gauge's last aggregate).
/// </remarks>
internal class RedisCell
{
    // An empty delta is -0.0, the identity of IEEE addition (x + -0 is x for every x, -0 included), so a delta that is
    // +0 after Inc(0) still turns a stored -0 into +0, as one-at-a-time addition would.
    private const long EmptyDelta = unchecked((long)0x8000_0000_0000_0000);

    // Bits of _flags, guarded by the cell's lock.
    private const int PendingSetFlag = 1;
    private const int InFlightFlag = 2;
    private const int InFlightSetFlag = 4;
    private const int HasAggregateFlag = 8;

    // The series was removed and nothing was updated since: sending the cell would create its field again.
    private const int RemovedFlag = 16;

    // Redis acknowledged a value of this cell at least once.
    private const int AcknowledgedFlag = 32;

    // Pending delta as the double's bits, added with compare-and-swap so Inc never takes a lock.
    private long _deltaBits = EmptyDelta;
    private int _dirty;

    // Changed by every acknowledgement, so a read of Redis can tell whether an acknowledgement raced it.
    private int _acknowledgements;

    // Guarded by the cell's lock (lock (this): the cell is internal, nothing else locks on it).
    private int _flags;
    private double _pendingSetValue;

    // The round that last took the pending update: the in-flight batch's sequence while InFlightFlag is set.
    private long _sequence;

    // A shared value's in-flight set value; an owned gauge never has one, so there it is the last aggregate Get read.
    private double _inFlightSetValue;
    private double _inFlightDelta;

    // A shared value's last stored value seen; for a per-process (owned) gauge, this process's own value as of the last
    // take: the process is its field's only writer, so it holds the authoritative value and sends it whole.
    private double _stored;
    private long _storedSequence;

    // The latest exemplar recorded in this process, created with the first one: most cells never get one, so they pay
    // one reference for the feature. Guarded by the cell's lock.
    private ExemplarSlot? _exemplar;

    public RedisCell(RedisFamily family, IReadOnlyList<string> labelValues)
    {
        Family = family;
        LabelValues = labelValues;
    }

    /// <summary>The series' label values: the descriptor's list, which the metric keeps for the series' lifetime and never changes.</summary>
    public IReadOnlyList<string> LabelValues { get; }

    /// <summary>The histogram or summary part, or null for a counter or gauge.</summary>
    public virtual HistogramBucket? Part => null;

    /// <summary>The hash field of this series and part, encoded afresh (a cell does not keep it): for sending and reading.</summary>
    public byte[] Field => FieldCodec.Encode(LabelValues, Part);

    public RedisFamily Family { get; }

    /// <summary>The histogram or summary series this part belongs to, whose parts are flushed together; null for a counter or gauge.</summary>
    public RedisSeriesGroup? Group => (this as RedisPartCell)?.Series;

    /// <summary>The round that last took this cell's pending update; the flusher's own state, so a round takes a cell once.</summary>
    public long TakenSequence => _sequence;

    /// <summary>Whether an update waits to be taken (read under the group's gate by the flusher).</summary>
    public bool HasPending => Volatile.Read(ref _deltaBits) != EmptyDelta || (Volatile.Read(ref _flags) & PendingSetFlag) != 0;

    // Intrusive link of the dirty stack; written only by the thread that set _dirty from 0 to 1, read by the flusher.
    public RedisCell? NextDirty { get; set; }

    /// <summary>The latest exemplar this process recorded, sent or not (a scrape shows it when it is later than Redis' one).</summary>
    public RecordedExemplar? LocalExemplar
    {
        get
        {
            lock (this)
            {
                return _exemplar?.Exemplar;
            }
        }
    }

    /// <summary>Keeps <paramref name="exemplar"/> unless a later one is kept, and queues the cell for the next flush.</summary>
    public void RecordExemplar(in RecordedExemplar exemplar)
    {
        bool queue;
        lock (this)
        {
            var slot = _exemplar ??= new ExemplarSlot();
            if (slot.Exemplar is { } held && exemplar.TimestampUnixSeconds < held.TimestampUnixSeconds)
            {
                return;
            }

            slot.Exemplar = exemplar;
            queue = !slot.Pending;
            slot.Pending = true;
        }

        if (queue)
        {
            Store.Flusher.QueueExemplar(this);
        }
    }

    /// <summary>
    /// The latest exemplar this process recorded while Redis may not hold it yet (waiting or being sent), for a scrape's
    /// read-your-writes. Once stored, Redis is the only source: a removal by any process deletes it there, and a copy kept
    /// here would bring it back.
    /// </summary>
    public RecordedExemplar? UnsentExemplar
    {
        get
        {
            // Read on every scrape for every cell, and most cells never get an exemplar: no lock for those.
            if (Volatile.Read(ref _exemplar) is null)
            {
                return null;
            }

            lock (this)
            {
                return _exemplar is { } slot && (slot.Pending || slot.Sending) ? slot.Exemplar : null;
            }
        }
    }

    /// <summary>Takes the exemplar waiting to be sent, if any.</summary>
    public bool TakeExemplar(out RecordedExemplar exemplar)
    {
        lock (this)
        {
            if (_exemplar is not { Exemplar: { } held, Pending: true } slot)
            {
                exemplar = default;
                return false;
            }

            exemplar = held;
            slot.Pending = false;
            slot.Sending = true;
            return true;
        }
    }

    /// <summary>A taken exemplar is stored in Redis.</summary>
    public void ExemplarSent()
    {
        lock (this)
        {
            if (_exemplar is { } slot)
            {
                slot.Sending = false;
            }
        }
    }

    /// <summary>A taken exemplar was not stored: it waits again (unless a later one already does).</summary>
    public void ExemplarNotSent()
    {
        lock (this)
        {
            if (_exemplar is not { } slot || slot.Pending)
            {
                return;
            }

            slot.Sending = false;

            slot.Pending = true;
        }

        Store.Flusher.QueueExemplar(this);
    }
    private RedisStore Store => Family.Store;

    private bool PendingSet => (_flags & PendingSetFlag) != 0;

    private bool InFlight => (_flags & InFlightFlag) != 0;

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
        lock (this)
        {
            _flags |= PendingSetFlag;
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

        var deadline = DateTime.UtcNow + Store.Settings.OperationTimeout;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            // A retry holds the flush lock: no batch can be acknowledged while it reads, so it cannot race again.
            var exclusive = attempt > 0;
            if (exclusive && !Store.TryEnterExclusive(deadline - DateTime.UtcNow))
            {
                break;
            }

            try
            {
                var acknowledgements = Volatile.Read(ref _acknowledgements);
                if (!Store.TryReadStored(this, deadline, out var stored, out var marker))
                {
                    break;
                }

                lock (this)
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
                    Store.ExitExclusive();
                }
            }
        }

        lock (this)
        {
            return Combine(_stored, _storedSequence);
        }
    }

    /// <summary>
    /// Whether Redis holds everything this process did to the cell: it was stored, and no update is pending, queued or in
    /// flight. A scrape then shows the value it read without looking the cell up. Read without the lock: an update that
    /// races the check races the scrape too.
    /// </summary>
    public bool IsSettled =>
        Volatile.Read(ref _dirty) == 0 && Volatile.Read(ref _deltaBits) == EmptyDelta
        && (Volatile.Read(ref _flags) & (PendingSetFlag | InFlightFlag | AcknowledgedFlag)) == AcknowledgedFlag;

    /// <summary>Whether the cell waits for the flusher (new, updated, or re-queued after its writer was found dead).</summary>
    public bool IsDirty => Volatile.Read(ref _dirty) != 0;

    /// <summary>
    /// This process's own value of an owned gauge, with every update applied; <paramref name="changed"/> says whether it
    /// holds updates Redis has not acknowledged (they then count as written now).
    /// </summary>
    public double OwnValue(out bool changed)
    {
        lock (this)
        {
            changed = InFlight || PendingSet || IsDirty || Volatile.Read(ref _deltaBits) != EmptyDelta;
            return Apply(_stored, PendingSet, _pendingSetValue, BitConverter.Int64BitsToDouble(Volatile.Read(ref _deltaBits)));
        }
    }

    /// <summary>Folds the pending update into this process's own value and returns it, to be sent whole in round <paramref name="sequence"/>.</summary>
    public double TakeOwned(long sequence)
    {
        lock (this)
        {
            _sequence = sequence;
            _stored = Apply(_stored, PendingSet, _pendingSetValue, BitConverter.Int64BitsToDouble(Interlocked.Exchange(ref _deltaBits, EmptyDelta)));
            _flags = (_flags | InFlightFlag) & ~PendingSetFlag;
            return _stored;
        }
    }

    /// <summary>Redis stored the own value taken by the in-flight round.</summary>
    public void AcknowledgeOwned()
    {
        lock (this)
        {
            _flags = (_flags & ~InFlightFlag) | AcknowledgedFlag;
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
        if (Store.TryReadOwned(this, own, changed, DateTime.UtcNow + Store.Settings.OperationTimeout, out var aggregate))
        {
            lock (this)
            {
                // An owned gauge never has an in-flight set value: the slot holds its last aggregate.
                _inFlightSetValue = aggregate;
                _flags |= HasAggregateFlag;
            }

            return aggregate;
        }

        lock (this)
        {
            return (_flags & HasAggregateFlag) != 0 ? _inFlightSetValue : own;
        }
    }

    /// <summary>Same rule as the flush script: the delta is always added; an empty one is -0.0, which changes nothing.</summary>
    internal static double Apply(double value, bool set, double setValue, double delta) => (set ? setValue : value) + delta;

    /// <summary>Moves the pending update into the in-flight batch <paramref name="sequence"/>. Called by the flusher after clearing the dirty flag.</summary>
    public (bool Set, double SetValue, double Delta) TakePending(long sequence)
    {
        lock (this)
        {
            _sequence = sequence;
            var set = PendingSet;
            _inFlightSetValue = _pendingSetValue;
            _inFlightDelta = BitConverter.Int64BitsToDouble(Interlocked.Exchange(ref _deltaBits, EmptyDelta));
            _flags = (_flags & ~(PendingSetFlag | InFlightSetFlag)) | InFlightFlag | (set ? InFlightSetFlag : 0);
            return (set, _inFlightSetValue, _inFlightDelta);
        }
    }

    /// <summary>Redis stored the in-flight batch <paramref name="sequence"/>; <paramref name="stored"/> is the value it returned.</summary>
    public void Acknowledge(double stored, long sequence)
    {
        lock (this)
        {
            _stored = stored;
            _storedSequence = sequence;
            _flags = (_flags & ~InFlightFlag) | AcknowledgedFlag;
            _acknowledgements++;
        }
    }

    /// <summary>The stored value <paramref name="stored"/> with this process's unsent updates applied, for a scrape that settled the in-flight batch.</summary>
    public double Overlay(double stored)
    {
        lock (this)
        {
            return Apply(stored, PendingSet, _pendingSetValue, BitConverter.Int64BitsToDouble(Volatile.Read(ref _deltaBits)));
        }
    }

    /// <summary>
    /// Forgets this process's pending update and the stored value seen, for a removed series: the removal is applied
    /// before anything updated later is sent, so the series comes back from 0.
    /// </summary>
    public void ResetRemoved()
    {
        lock (this)
        {
            _flags = (_flags & ~(PendingSetFlag | HasAggregateFlag)) | RemovedFlag;
            Interlocked.Exchange(ref _deltaBits, EmptyDelta);
            _stored = 0;

            // The removal deletes the series' exemplars in Redis; one waiting here belongs to the removed series too.
            _exemplar = null;
        }
    }

    /// <summary>
    /// Whether the flusher must leave this cell out: its series was removed and nothing was updated since, so sending its
    /// empty delta would create the field again. An update since the removal clears the mark and the cell is sent.
    /// </summary>
    public bool SkipRemoved()
    {
        lock (this)
        {
            if ((_flags & RemovedFlag) == 0)
            {
                return false;
            }

            if (!PendingSet && Volatile.Read(ref _deltaBits) == EmptyDelta)
            {
                return true;
            }

            _flags &= ~RemovedFlag;
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
            lock (this)
            {
                return (_flags & RemovedFlag) == 0
                    && (IsDirty || InFlight || PendingSet || Volatile.Read(ref _deltaBits) != EmptyDelta || (_flags & AcknowledgedFlag) == 0);
            }
        }
    }

    /// <summary>Discards the pending update (the in-flight one is kept). Returns whether there was one.</summary>
    public bool DiscardPending()
    {
        lock (this)
        {
            var had = PendingSet || Volatile.Read(ref _deltaBits) != EmptyDelta;
            _flags &= ~PendingSetFlag;
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
            Store.PushDirty(this);
        }
    }

    /// <summary>
    /// <paramref name="stored"/> was read together with this writer's applied-batch marker <paramref name="marker"/>:
    /// the in-flight batch is in it when its sequence is at or below the marker, the pending updates never are.
    /// </summary>
    private double Combine(double stored, long marker)
    {
        var value = stored;
        if (InFlight && _sequence > marker)
        {
            value = Apply(value, (_flags & InFlightSetFlag) != 0, _inFlightSetValue, _inFlightDelta);
        }

        return Apply(value, PendingSet, _pendingSetValue, BitConverter.Int64BitsToDouble(Volatile.Read(ref _deltaBits)));
    }

    /// <summary>A cell's latest exemplar and whether it waits to be sent; guarded by the cell's lock.</summary>
    private sealed class ExemplarSlot
    {
        public RecordedExemplar? Exemplar { get; set; }

        public bool Pending { get; set; }

        /// <summary>Taken by the flusher and not yet acknowledged by Redis.</summary>
        public bool Sending { get; set; }
    }
}

/// <summary>A part (a bucket, the sum or the count) of a histogram or summary series: a cell that knows its part and series.</summary>
internal sealed class RedisPartCell(RedisFamily family, IReadOnlyList<string> labelValues, HistogramBucket part, RedisSeriesGroup series)
    : RedisCell(family, labelValues)
{
    /// <inheritdoc/>
    public override HistogramBucket? Part { get; } = part;

    /// <summary>The series whose parts are flushed and overlaid together.</summary>
    public RedisSeriesGroup Series { get; } = series;
}
