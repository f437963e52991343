namespace Metrics;

/// <summary>
/// What one scrape reads before anything is rendered: the registry's entries at that moment and, for every backend that
/// collects in batch, all values of its families.
/// </summary>
internal sealed class CollectedScrape(IReadOnlyList<object> entries, Dictionary<MetricFamily, IReadOnlyList<CollectedValue>>? collected, MetricFamily? overflow = null)
{
    public IReadOnlyList<object> Entries { get; } = entries;

    /// <summary>The registry's cardinality overflow counter as read for this scrape (not one of the entries), or null.</summary>
    public MetricFamily? Overflow { get; } = overflow;

    /// <summary>Values by family for families whose backend collects in batch; null when no backend does.</summary>
    public Dictionary<MetricFamily, IReadOnlyList<CollectedValue>>? Collected { get; } = collected;
}

/// <summary>
/// Reads a registry's shared backends for scrapes, one read at a time: a scrape that arrives while a read is in flight
/// waits for that read instead of starting another, so fifty concurrent scrapers cost one round of backend reads. A scrape
/// that is cancelled stops waiting; when every scrape waiting for a read has gone, the read itself is cancelled.
/// </summary>
internal sealed class ScrapeCollector(MetricRegistry registry)
{
    private readonly Lock _lock = new();
    private Flight? _current;
    private long _reads;

    /// <summary>How many backend reads this registry has started, for tests and diagnostics.</summary>
    public long Reads => Interlocked.Read(ref _reads);

    public async Task<CollectedScrape> CollectAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Flight flight;
        var start = false;
        lock (_lock)
        {
            flight = _current!;
            if (flight is null || !flight.TryJoin())
            {
                flight = new Flight();
                flight.TryJoin();
                _current = flight;
                start = true;
            }
        }

        if (start)
        {
            Interlocked.Increment(ref _reads);
            flight.Run(ReadWithCallbacksAsync(flight.Token), this);
        }

        try
        {
            return await flight.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            flight.Leave();
        }
    }

    /// <summary>Reads one scrape synchronously, outside the single flight (for <see cref="MetricRegistry.Render"/>).</summary>
    public CollectedScrape Collect() => ReadWithCallbacksAsync(CancellationToken.None).GetAwaiter().GetResult();

    private Task<CollectedScrape> ReadWithCallbacksAsync(CancellationToken cancellationToken)
    {
        try
        {
            // Before the entries are taken: a callback may record values into metrics it creates on first use.
            registry.RunCollectCallbacks();
        }
        catch (Exception e)
        {
            return Task.FromException<CollectedScrape>(e);
        }

        var entries = registry.Entries;
        foreach (var entry in entries)
        {
            // A removed child updated since comes back before this scrape reads the family (shared stores do this themselves).
            if (entry is MetricFamily family && (family.Backend.Capabilities & BackendCapabilities.SharedAcrossProcesses) == 0)
            {
                family.ReviveUpdated();
            }
        }

        return ReadAsync(entries, registry.OverflowFamilyToRead(), cancellationToken);
    }

    private static async Task<CollectedScrape> ReadAsync(IReadOnlyList<object> entries, MetricFamily? overflow, CancellationToken cancellationToken)
    {
        Dictionary<ConfiguredBackend, List<MetricFamily>>? byBackend = null;
        foreach (var entry in overflow is null ? entries : entries.Append(overflow))
        {
            if (entry is MetricFamily family && family.Backend != ConfiguredBackend.Memory)
            {
                byBackend ??= [];
                if (!byBackend.TryGetValue(family.Backend, out var list))
                {
                    byBackend[family.Backend] = list = [];
                }

                list.Add(family);
            }
        }

        if (byBackend is null)
        {
            return new CollectedScrape(entries, null, overflow);
        }

        // Every backend is read at once: a scrape takes as long as its slowest backend, not the sum of them.
        var reads = byBackend.Select(pair => ReadBackendAsync(pair.Key, pair.Value, cancellationToken)).ToArray();
        await Task.WhenAll(reads).ConfigureAwait(false);
        var result = new Dictionary<MetricFamily, IReadOnlyList<CollectedValue>>();
        foreach (var read in reads)
        {
            foreach (var (family, values) in await read.ConfigureAwait(false))
            {
                result[family] = values;
            }
        }

        return new CollectedScrape(entries, result, overflow);
    }

    private static async Task<List<(MetricFamily, IReadOnlyList<CollectedValue>)>> ReadBackendAsync(ConfiguredBackend backend, List<MetricFamily> families, CancellationToken cancellationToken)
    {
        var values = await backend.CollectAsync(families.Select(f => f.Descriptor).ToArray(), cancellationToken).ConfigureAwait(false);
        var result = new List<(MetricFamily, IReadOnlyList<CollectedValue>)>(families.Count);
        if (values is null)
        {
            return result;
        }

        if (values.Length != families.Count)
        {
            throw new InvalidOperationException($"Backend {backend} returned {values.Length} collections for {families.Count} metric families; CollectAsync must return one per family, in order.");
        }

        for (var i = 0; i < families.Count; i++)
        {
            result.Add((families[i], values[i] ?? []));
        }

        return result;
    }

    private void Landed(Flight flight)
    {
        lock (_lock)
        {
            if (ReferenceEquals(_current, flight))
            {
                _current = null;
            }
        }
    }

    /// <summary>One backend read and the scrapes waiting for it.</summary>
    private sealed class Flight
    {
        private readonly Lock _lock = new();

        // Never disposed: it has no timer, and disposing it could race a late Cancel.
        private readonly CancellationTokenSource _cancel = new();
        private readonly TaskCompletionSource<CollectedScrape> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _waiters;
        private bool _closed;

        public Task<CollectedScrape> Task => _result.Task;

        public CancellationToken Token => _cancel.Token;

        public void Run(Task<CollectedScrape> read, ScrapeCollector owner) =>
            _ = read.ContinueWith(
                static (read, state) =>
                {
                    var (flight, collector) = ((Flight, ScrapeCollector))state!;
                    lock (flight._lock)
                    {
                        flight._closed = true;
                    }

                    // Landed before the result is published: a scrape that sees the result finished starts a fresh read.
                    collector.Landed(flight);
                    flight._result.TrySetFromTask(read);
                },
                (this, owner),
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);

        /// <summary>Joins the read unless it has finished or been abandoned; a finished read is stale for a new scrape.</summary>
        public bool TryJoin()
        {
            lock (_lock)
            {
                if (_closed)
                {
                    return false;
                }

                _waiters++;
                return true;
            }
        }

        public void Leave()
        {
            lock (_lock)
            {
                if (--_waiters > 0 || _closed)
                {
                    return;
                }

                // Nobody waits any more: no new scrape may join a read about to be cancelled.
                _closed = true;
            }

            _cancel.Cancel();
        }
    }
}
