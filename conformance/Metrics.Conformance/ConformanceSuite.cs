using System.Diagnostics;

namespace Metrics.Conformance;

/// <summary>The conformance checks every backend must pass, independent of any test framework.</summary>
/// <remarks>
/// Each check creates values through a <see cref="ConfiguredBackend"/> selected with a fresh configuration from the
/// <see cref="ConformanceTarget"/>, and throws <see cref="ConformanceException"/> naming what was expected, what was read
/// and the likely bug. Checks marked <see cref="ConformanceCheck.RequiresSharedBackend"/> start real child processes.
/// </remarks>
public static class ConformanceSuite
{
    /// <summary>Every check, in the order they run.</summary>
    public static IReadOnlyList<ConformanceCheck> Checks { get; } =
    [
        new("NewValueReadsZero", "A new value of every kind and part reads 0.", ValueChecks.NewValueReadsZero),
        new("IncDecSetGet", "Inc adds, Dec subtracts, Set replaces, Get reads.", ValueChecks.IncDecSetGet),
        new("DoubleSumsAreExact", "Sums follow double arithmetic exactly: ten Inc(0.1), 1e-300, 1e300, a walk over 40 orders of magnitude.", ValueChecks.DoubleSumsAreExact),
        new("SetRoundTripsSpecialValues", "Set round-trips 1e-300, 1e300, subnormals, -0 (sign bit), NaN and infinities.", ValueChecks.SetRoundTripsSpecialValues),
        new("ArithmeticFollowsIeee754", "Inc and Dec on gauges, counters and sums follow IEEE 754 for signed zeros, NaN and infinities (-0 + 0 = +0, Inf - Inf = NaN).", ArithmeticChecks.ArithmeticFollowsIeee754),
        new("ValueCellIsTheValueAndMovesOnlyWhenMoved", "A value cell's word is the value (Get reads what the host adds there); a value whose own bits are AtomicDouble.MovedCell is still that value, not a moved one.", ValueChecks.ValueCellIsTheValueAndMovesOnlyWhenMoved),
        new("LargeIntegersStayDoubles", "Integers beyond 2^53 round-trip and Inc on them follows double rounding.", ValueChecks.LargeIntegersStayDoubles),
        new("ConcurrentIncrementsAreExact", "Many threads incrementing one value lose nothing.", ValueChecks.ConcurrentIncrementsAreExact),
        new("ConcurrentIncAndDecAreExact", "Threads racing Inc and Dec on one value lose nothing.", ValueChecks.ConcurrentIncAndDecAreExact),
        new("SetIsLinearizableWithConcurrentInc", "A Set racing increments is never lost and never has earlier increments added on top of it.", ArithmeticChecks.SetIsLinearizableWithConcurrentInc),
        new("ReadYourWrites", "Get sees every update of this process that has returned.", ValueChecks.ReadYourWrites),
        new("ConcurrentFractionalSumsMatchSequentialAddition", "Threads adding 0.1 read exactly what the same additions in sequence give (backends that batch updates are exempt).", ValueChecks.ConcurrentFractionalSumsMatchSequentialAddition, excludes: BackendCapabilities.BatchesUpdates),
        new("InProcessValuesAreSeparate", "An in-process backend keeps two values created for the same series apart, as two registries expect.", IsolationChecks.InProcessValuesAreSeparate, excludes: BackendCapabilities.SharedAcrossProcesses),
        new("ShutdownThenInitializeGivesAWorkingStore", "After ShutdownAsync the same configuration initializes again and works; a shared store keeps what was flushed.", LifecycleChecks.ShutdownThenInitializeGivesAWorkingStore),
        new("ObserveHistogramAddsBucketAndSum", "ObserveHistogram adds 1 to the bucket and the value to the sum, and Collect sees both together.", LifecycleChecks.ObserveHistogramAddsBucketAndSum, requires: BackendCapabilities.AtomicHistogramObserve),
        new("DistinctMetricsDoNotShareValues", "Metrics whose names would collide if naively joined with labels or suffixes keep separate values.", IsolationChecks.DistinctMetricsDoNotShareValues),
        new("DistinctLabelSetsDoNotShareValues", "Label sets with separators, quotes, NULs, newlines, Unicode and empty strings keep separate values.", IsolationChecks.DistinctLabelSetsDoNotShareValues),
        new("DistinctBucketsDoNotShareValues", "Every bucket, sum and count of histogram and summary series keeps a separate value.", IsolationChecks.DistinctBucketsDoNotShareValues),
        new("DescriptorEdgeCasesAreAccepted", "Long names, many labels, long values, odd help texts and bucket layouts are accepted and kept apart.", IsolationChecks.DescriptorEdgeCasesAreAccepted),
        new("InitializeKeepsStoreForSameConfiguration", "Selecting the backend again with an equal configuration keeps the stored values.", IsolationChecks.InitializeKeepsStoreForSameConfiguration),
        new("StoresOfConfigurationsStayApart", "Values of a store started again after ShutdownAsync, and of another configuration, never share storage with earlier ones; shutting one configuration down leaves the others intact.", IsolationChecks.StoresOfConfigurationsStayApart),
        new("CollectAsyncHonoursCancellation", "CollectAsync returns what the blocking Collect returns, and a cancelled token ends it with OperationCanceledException, never with partial data or a hang.", CollectChecks.CollectAsyncHonoursCancellation),
        new("InvalidSettingsFailAtLoad", "Every invalid configuration the backend's author declares fails when the backend is selected, with an error naming the key.", SettingsChecks.InvalidSettingsFailAtLoad),
        new("HistogramExpositionIsConsistent", "While threads observe, every scrape has cumulative buckets and +Inf equal to _count; totals are exact.", ApiChecks.HistogramExpositionIsConsistent),
        new("MetricApiMatchesMemoryBackend", "Counters, gauges, histograms and summaries with labels give the same exposition (both formats) as on the Memory backend.", ApiChecks.MetricApiMatchesMemoryBackend),
        new("SameSeriesSharesOneValue", "Two values created for the same series share one stored value.", SharedChecks.SameSeriesSharesOneValue, sharedOnly: true),
        new("DistinctDefinitionsDoNotShareValues", "Values of one series whose family definitions differ (unit, exposed type such as info or a state set's states, aggregation) keep separate values.", IsolationChecks.DistinctDefinitionsDoNotShareValues, requires: BackendCapabilities.RecordsSchema, sharedOnly: true),
        new("DistinctConfigurationsDoNotShareValues", "The same series under two configurations keeps separate values.", IsolationChecks.DistinctConfigurationsDoNotShareValues, sharedOnly: true),
        new("CollectReturnsEveryStoredValue", "Collect returns every stored value with its exact label values, part and value, unflushed updates included.", SharedChecks.CollectReturnsEveryStoredValue, sharedOnly: true),
        new("OtherProcessesSeeFlushedValues", "A child process sees this process's flushed values through Get and Collect, and this process sees the child's.", SharedChecks.OtherProcessesSeeFlushedValues, sharedOnly: true),
        new("ExemplarsKeepTheLatest", "Each value keeps its latest exemplar by timestamp (labels, value, timestamp), per value; on a shared backend across processes.", ExemplarChecks.ExemplarsKeepTheLatest, requires: BackendCapabilities.Exemplars),
        new("SchemaConflictsNeverMixValues", "With RecordsSchema, values another process wrote under another definition of the same name (labels, type, buckets) stay apart and out of this process's collection, which does not fail.", CollectChecks.SchemaConflictsNeverMixValues, sharedOnly: true, requires: BackendCapabilities.RecordsSchema),
        new("ConcurrentProcessesLoseNothing", "Several child processes and this one updating the same series concurrently lose nothing.", SharedChecks.ConcurrentProcessesLoseNothing, sharedOnly: true),
        new("RemovedSeriesIsHiddenUntilUpdated", "RemoveSeries takes every part of a series (or every series of a family) out of Collect; an update through a value created before brings the series back from 0.", SeriesChecks.RemovedSeriesIsHiddenUntilUpdatedAndRestartsAtZero, requires: BackendCapabilities.RemovesSeries),
        new("RemovedSeriesLosesItsExemplar", "After RemoveSeries, a series updated again shows no exemplar recorded before the removal (by any process), and the next exemplar is kept whatever its timestamp.", SeriesChecks.RemovedSeriesLosesItsExemplar, requires: BackendCapabilities.RemovesSeries | BackendCapabilities.Exemplars),
        new("SeriesCountCountsLabelSets", "SeriesCount counts a family's distinct label sets, not parts, and leaves removed series out.", SeriesChecks.SeriesCountCountsLabelSetsOfEveryPart, requires: BackendCapabilities.CountsSeries),
    ];

    /// <summary>Finds a check by name.</summary>
    /// <param name="name">The check's name (ordinal, case-sensitive).</param>
    /// <returns>The check.</returns>
    /// <exception cref="ArgumentException">No check has that name.</exception>
    public static ConformanceCheck Find(string name) =>
        Checks.FirstOrDefault(c => string.Equals(c.Name, name, StringComparison.Ordinal))
        ?? throw new ArgumentException($"There is no conformance check named '{name}'. The checks are: {string.Join(", ", Checks.Select(c => c.Name))}.", nameof(name));

    /// <summary>Runs one check and reports its outcome instead of throwing.</summary>
    /// <param name="check">The check.</param>
    /// <param name="target">The backend under test.</param>
    /// <returns>The result.</returns>
    /// <remarks>A check that does not finish within <see cref="ConformanceOptions.CheckTimeout"/> is a failure naming where it hung.</remarks>
    public static ConformanceResult Run(ConformanceCheck check, ConformanceTarget target)
    {
        ArgumentNullException.ThrowIfNull(check);
        ArgumentNullException.ThrowIfNull(target);
        var watch = Stopwatch.StartNew();
        try
        {
            check.Run(target);
            return new ConformanceResult(check, null, watch.Elapsed);
        }
        catch (ConformanceException ex)
        {
            return new ConformanceResult(check, ex, watch.Elapsed);
        }
    }

    /// <summary>
    /// The child-process side of the multi-process checks: selects the backend with the configuration in
    /// <paramref name="jobFile"/>, prints what it reads, updates, flushes. The runner calls this in <c>--child</c> mode.
    /// </summary>
    /// <param name="target">The backend, loaded the same way as in the parent process.</param>
    /// <param name="jobFile">The job the parent wrote.</param>
    /// <param name="output">Where the readings go (the parent parses them).</param>
    /// <returns>The process exit code: 0 on success.</returns>
    public static int RunChild(ConformanceTarget target, string jobFile, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentException.ThrowIfNullOrEmpty(jobFile);
        ArgumentNullException.ThrowIfNull(output);
        return ChildProcess.Run(target, jobFile, output);
    }
}
