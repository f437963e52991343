namespace Metrics.Conformance.Tests;

/// <summary>A suite that passes a broken backend is a broken suite: each broken backend must fail, with a message naming its bug.</summary>
public class BrokenBackendTests : IDisposable
{
    private readonly System.Collections.Concurrent.ConcurrentBag<string> _directories = [];

    // One directory for every configuration, for the test of a backend whose configurations are not isolated.
    private readonly string _sharedDirectory = Path.Combine(Path.GetTempPath(), "metrics-file-backend", Guid.NewGuid().ToString("N"));

    // Smaller than the defaults: the bugs show at this size already, and the whole suite runs once per broken backend.
    private static readonly ConformanceOptions Quick = new() { IncrementsPerThread = 20_000, ChildIncrements = 2_000, ChildProcesses = 2 };

    [Fact]
    public void Non_atomic_increment_fails_the_concurrency_checks()
    {
        var failures = Failures(ConformanceTarget.ForType<NonAtomicIncBackend>(options: Quick));
        Assert.Contains("ConcurrentIncrementsAreExact", failures.Keys);
        Assert.Contains("ConcurrentIncAndDecAreExact", failures.Keys);
        Assert.Contains("increments were lost", failures["ConcurrentIncrementsAreExact"]);
        Assert.Contains("Inc is not atomic", failures["ConcurrentIncrementsAreExact"]);
        Assert.Contains("atomic", failures["ConcurrentIncAndDecAreExact"]);
        // Single-threaded behaviour is right, so nothing else may fail (the histogram check observes on two threads).
        Assert.Subset(new HashSet<string> { "ConcurrentIncrementsAreExact", "ConcurrentIncAndDecAreExact", "ConcurrentFractionalSumsMatchSequentialAddition", "SetIsLinearizableWithConcurrentInc", "HistogramExpositionIsConsistent" }, failures.Keys.ToHashSet());
    }

    [Fact]
    public void Exemplar_kept_by_write_order_fails_only_the_exemplar_check()
    {
        var failures = Failures(ConformanceTarget.ForType<LastWrittenExemplarBackend>(options: Quick));
        var message = Assert.Single(failures).Value;
        Assert.Equal("ExemplarsKeepTheLatest", Assert.Single(failures).Key);
        Assert.Contains("expected trace_id=\"latest\"", message);
        Assert.Contains("latest by timestamp must win", message);
    }

    [Fact]
    public void Dec_that_adds_fails_with_a_message_naming_Dec()
    {
        var failures = Failures(ConformanceTarget.ForType<DecAddsBackend>(options: Quick));
        Assert.Contains("Dec added its amount instead of subtracting it", failures["IncDecSetGet"]);
        Assert.Contains("Dec adding its amount", failures["ConcurrentIncAndDecAreExact"]);
        Assert.Contains("MetricApiMatchesMemoryBackend", failures.Keys);
        Assert.DoesNotContain("NewValueReadsZero", failures.Keys);
        Assert.DoesNotContain("ConcurrentIncrementsAreExact", failures.Keys);
    }

    [Fact]
    public void Float_storage_fails_the_precision_checks()
    {
        var failures = Failures(ConformanceTarget.ForType<FloatBackend>(options: Quick));
        Assert.Contains("single-precision (float)", failures["DoubleSumsAreExact"]);
        Assert.Contains("stored as a float", failures["SetRoundTripsSpecialValues"]);
        Assert.Contains("LargeIntegersStayDoubles", failures.Keys);
        Assert.Contains("MetricApiMatchesMemoryBackend", failures.Keys);
        Assert.DoesNotContain("ConcurrentIncrementsAreExact", failures.Keys);
    }

    [Fact]
    public void Buckets_sharing_one_value_fail_the_bucket_check()
    {
        var failures = Failures(ConformanceTarget.ForType<SharedBucketsBackend>(options: Quick));
        var message = failures["DistinctBucketsDoNotShareValues"];
        Assert.Contains("share one stored value", message);
        Assert.Contains("bucket le=-1", message);
        Assert.Contains("key it by the HistogramBucket", message);
        Assert.Contains("HistogramExpositionIsConsistent", failures.Keys);
        Assert.DoesNotContain("DistinctLabelSetsDoNotShareValues", failures.Keys);
    }

    [Fact]
    public void Label_values_joined_with_a_separator_fail_the_label_check()
    {
        var failures = Failures(ConformanceTarget.ForType<JoinedLabelsBackend>(options: Quick));
        var message = failures["DistinctLabelSetsDoNotShareValues"];
        Assert.Contains("""["a,b", "c"]""", message);
        Assert.Contains("""["a", "b,c"]""", message);
        Assert.Contains("share one stored value", message);
        Assert.Contains("joined with a separator without escaping", message);
        // Its store is keyed by series in one process, so it also fails the in-process separation rules.
        Assert.Equal(["DistinctLabelSetsDoNotShareValues", "InProcessValuesAreSeparate", "MetricApiMatchesMemoryBackend", "ShutdownThenInitializeGivesAWorkingStore"], failures.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Ignored_Initialize_fails_every_check_naming_Initialize()
    {
        var target = ConformanceTarget.ForType<InitializeIgnoredBackend>(options: Quick);
        var failures = Failures(target);
        // Every check that selects the backend fails; the settings check has nothing to select without declared settings.
        Assert.Equal(target.ApplicableChecks.Select(c => c.Name).Where(n => n != "InvalidSettingsFailAtLoad").Order(StringComparer.Ordinal), failures.Keys.Order(StringComparer.Ordinal));
        Assert.All(failures.Values, message => Assert.Contains("Initialize", message));
        Assert.Contains("state that Initialize should have prepared", failures["NewValueReadsZero"]);
    }

    [Fact]
    public void Initialize_run_again_on_value_creation_fails_the_Initialize_check()
    {
        var failures = Failures(ConformanceTarget.ForType<InitializeTwiceBackend>(options: Quick));
        var message = failures["InitializeKeepsStoreForSameConfiguration"];
        Assert.Contains("expected 5, read 0", message);
        Assert.Contains("The store was reset", message);
        Assert.Contains("Initialize runs once per type and configuration", message);
    }

    [Fact]
    public void Stale_cached_Get_fails_read_your_writes()
    {
        var failures = Failures(ConformanceTarget.ForType<StaleGetBackend>(options: Quick));
        var message = failures["ReadYourWrites"];
        Assert.Contains("After Inc(1) number 1 returned, Get() read 0, expected 1", message);
        Assert.Contains("stale value", message);
        Assert.Contains("stale", failures["IncDecSetGet"]);
        Assert.Contains("stale", failures["SetRoundTripsSpecialValues"]);
    }

    [Fact]
    public void Backend_claiming_to_share_values_but_keeping_them_in_process_fails_the_multi_process_checks()
    {
        var target = ConformanceTarget.ForType<ProcessLocalSharedBackend>(UniqueConfig, Quick).WithInvalidConfigs([new([new("Store", "")])]);
        var failures = Failures(target);
        Assert.Equal(["ConcurrentProcessesLoseNothing", "OtherProcessesSeeFlushedValues"], failures.Keys.Order(StringComparer.Ordinal));
        Assert.Contains("A child process that selected the backend with the same configuration read a labelled counter through Get as 0, expected 1000", failures["OtherProcessesSeeFlushedValues"]);
        Assert.Contains("Values are not shared across processes", failures["OtherProcessesSeeFlushedValues"]);
        Assert.Contains("Updates were lost across processes", failures["ConcurrentProcessesLoseNothing"]);
    }

    [Fact]
    public void Shared_backend_whose_configurations_are_not_isolated_is_told_to_fix_CreateConfig()
    {
        var failures = Failures(ConformanceTarget.ForType<FileBackend>(() => new BackendConfig([new("Directory", _sharedDirectory)]), Quick));
        Assert.Contains("CreateConfig returned equal configurations", failures["DistinctConfigurationsDoNotShareValues"]);
    }

    [Fact]
    public void A_store_keying_by_a_definition_without_unit_and_exposed_type_fails_the_definition_check_only()
    {
        var failures = Failures(FileTarget<UnitBlindBackend>());
        Assert.Equal(["DistinctDefinitionsDoNotShareValues"], failures.Keys);
        var message = failures["DistinctDefinitionsDoNotShareValues"];
        Assert.Contains("with unit seconds", message);
        Assert.Contains("exposed as info", message);
        Assert.Contains("share one stored value", message);
        Assert.Contains("MetricDescriptor.DefinitionId", message);
        Assert.DoesNotContain("with aggregation MostRecent read", message);
    }

    [Fact]
    public void Striped_fractional_sums_fail_the_sequential_addition_check_only()
    {
        var failures = Failures(ConformanceTarget.ForType<StripedSumsBackend>(options: Quick));
        Assert.Contains("rounds differently from sequential addition", failures["ConcurrentFractionalSumsMatchSequentialAddition"]);
        Assert.Equal(["ConcurrentFractionalSumsMatchSequentialAddition"], failures.Keys);
    }

    [Fact]
    public void An_in_process_backend_keying_values_by_series_fails_the_separation_check()
    {
        var failures = Failures(ConformanceTarget.ForType<KeyedInProcessBackend>(options: Quick));
        Assert.Contains("must not key values by series", failures["InProcessValuesAreSeparate"]);
    }

    [Fact]
    public void A_backend_whose_ObserveHistogram_keeps_counting_its_first_bucket_fails_the_observe_check()
    {
        // The histogram checks that go through the metrics API catch it too; this one names the call that is wrong.
        var failures = Failures(ConformanceTarget.ForType<FirstBucketObserveBackend>(options: Quick));
        Assert.Contains("ObserveHistogramAddsBucketAndSum", failures.Keys);
        Assert.Contains("ObserveHistogram must add 1 to the bucket it is given", failures["ObserveHistogramAddsBucketAndSum"]);
    }

    [Fact]
    public void A_backend_dead_after_shutdown_fails_the_lifecycle_check()
    {
        var failures = Failures(ConformanceTarget.ForType<ShutdownForeverBackend>(options: Quick));
        Assert.Contains("was shut down", failures["ShutdownThenInitializeGivesAWorkingStore"]);
        Assert.DoesNotContain("NewValueReadsZero", failures.Keys);
    }

    [Fact]
    public void Settings_read_with_a_silent_fallback_fail_the_settings_check_only()
    {
        var target = ConformanceTarget.ForType<UnvalidatedSettingsBackend>(() => new BackendConfig([new("Capacity", "10")]), Quick)
            .WithInvalidConfigs([new([new("Capacity", "lots")])]);
        var failures = Failures(target);
        Assert.Equal(["InvalidSettingsFailAtLoad"], failures.Keys);
        Assert.Contains("succeeded", failures["InvalidSettingsFailAtLoad"]);
        Assert.Contains("does not validate Capacity", failures["InvalidSettingsFailAtLoad"]);
    }

    [Fact]
    public void A_settings_error_that_does_not_name_the_key_fails_the_settings_check_only()
    {
        var target = ConformanceTarget.ForType<UnnamedSettingErrorBackend>(() => new BackendConfig([new("Capacity", "10")]), Quick)
            .WithInvalidConfigs([new([new("Capacity", "lots")])]);
        var failures = Failures(target);
        Assert.Equal(["InvalidSettingsFailAtLoad"], failures.Keys);
        Assert.Contains("does not name the wrong key (Capacity)", failures["InvalidSettingsFailAtLoad"]);
    }

    [Fact]
    public void A_backend_with_settings_but_no_declared_invalid_configuration_is_told_to_declare_one()
    {
        var failures = Failures(ConformanceTarget.ForType<UnvalidatedSettingsBackend>(() => new BackendConfig([new("Capacity", "10")]), Quick));
        Assert.Equal(["InvalidSettingsFailAtLoad"], failures.Keys);
        Assert.Contains("declares no invalid configuration", failures["InvalidSettingsFailAtLoad"]);
    }

    [Fact]
    public void Skipping_zero_increments_fails_the_IEEE_check_only()
    {
        var failures = Failures(ConformanceTarget.ForType<SkipZeroIncBackend>(options: Quick));
        Assert.Equal(["ArithmeticFollowsIeee754"], failures.Keys);
        Assert.Contains("Set(-0 (negative zero)) then Inc(0) on a gauge: expected 0 (IEEE 754 double arithmetic), read -0 (negative zero)", failures["ArithmeticFollowsIeee754"]);
        Assert.Contains("skipped for a zero amount", failures["ArithmeticFollowsIeee754"]);
    }

    [Fact]
    public void A_Set_that_skips_the_lock_of_Inc_fails_the_linearizability_check_only()
    {
        var failures = Failures(ConformanceTarget.ForType<UnlockedSetBackend>(options: Quick));
        Assert.Equal(["SetIsLinearizableWithConcurrentInc"], failures.Keys);
        Assert.Contains("Set was lost", failures["SetIsLinearizableWithConcurrentInc"]);
    }

    [Fact]
    public void A_hanging_collection_is_a_named_failure_and_the_run_goes_on()
    {
        var target = ConformanceTarget.ForType<HangingCollectBackend>(options: Quick with { CheckTimeout = TimeSpan.FromSeconds(3) });
        var failures = Failures(target);
        // Only the checks that scrape collect; every later check still ran and passed.
        Assert.Equal(["CollectAsyncHonoursCancellation", "HistogramExpositionIsConsistent", "MetricApiMatchesMemoryBackend"], failures.Keys.Order(StringComparer.Ordinal));
        Assert.All(failures.Values, message => Assert.Contains("did not finish within 3 s; it hung during", message));
    }

    [Fact]
    public void A_removal_that_keeps_the_values_fails_the_removal_check_only()
    {
        var failures = Failures(FileTarget<RemoveKeepsValuesBackend>());
        Assert.Equal(["RemovedSeriesIsHiddenUntilUpdated"], failures.Keys);
        Assert.Contains("expected 2", failures["RemovedSeriesIsHiddenUntilUpdated"]);
        Assert.Contains("comes back from 0", failures["RemovedSeriesIsHiddenUntilUpdated"]);
    }

    [Fact]
    public void Exemplars_kept_by_a_removal_fail_the_removed_exemplar_check_only()
    {
        var failures = Failures(FileTarget<RemoveKeepsExemplarsBackend>());
        Assert.Equal(["RemovedSeriesLosesItsExemplar"], failures.Keys);
        Assert.Contains("recorded before the removal", failures["RemovedSeriesLosesItsExemplar"]);
        Assert.Contains("delete (or reset) each value's stored exemplar", failures["RemovedSeriesLosesItsExemplar"]);
    }

    [Fact]
    public void A_series_count_of_parts_fails_the_count_check_only()
    {
        var failures = Failures(FileTarget<PartCountingBackend>());
        Assert.Equal(["SeriesCountCountsLabelSets"], failures.Keys);
        Assert.Contains("returned 12, expected 3", failures["SeriesCountCountsLabelSets"]);
    }

    [Fact]
    public void Slots_handed_out_again_after_shutdown_fail_the_store_isolation_check_only()
    {
        var failures = Failures(ConformanceTarget.ForType<RecycledSlotsBackend>(options: Quick));
        Assert.Equal(["StoresOfConfigurationsStayApart"], failures.Keys);
        var message = failures["StoresOfConfigurationsStayApart"];
        Assert.Contains("created after ShutdownAsync and a new Initialize, read 1 instead of 0", message);
        Assert.Contains("the old and the new store share storage", message);
        Assert.Contains("never reuse storage that live values may still update", message);
    }

    [Fact]
    public void A_cancelled_collection_returning_partial_lists_fails_the_async_collect_check_only()
    {
        var failures = Failures(FileTarget<PartialOnCancelCollectBackend>());
        Assert.Equal(["CollectAsyncHonoursCancellation"], failures.Keys);
        Assert.Contains("CollectAsync with a token cancelled before the call returned 2 lists holding 0 values instead of throwing OperationCanceledException", failures["CollectAsyncHonoursCancellation"]);
        Assert.Contains("never return what was read so far", failures["CollectAsyncHonoursCancellation"]);
    }

    [Fact]
    public void A_backend_declaring_RecordsSchema_but_mixing_definitions_fails_the_schema_check_only()
    {
        var failures = Failures(FileTarget<DefinitionBlindBackend>());

        // Blind to every definition, it also mixes the definitions that differ only in unit or exposed type.
        Assert.Equal(["DistinctDefinitionsDoNotShareValues", "SchemaConflictsNeverMixValues"], failures.Keys.Order(StringComparer.Ordinal));
        var message = failures["SchemaConflictsNeverMixValues"];
        Assert.Contains("after another process wrote the same name declared as a gauge, read through Get: expected 7, read 8", message);
        Assert.Contains("Key stored values by the family's definition too", message);
    }

    [Fact]
    public void The_schema_check_applies_only_to_backends_recording_definitions()
    {
        Assert.DoesNotContain("SchemaConflictsNeverMixValues", FileTarget<FileBackend>().ApplicableChecks.Select(c => c.Name));
        Assert.Contains("SchemaConflictsNeverMixValues", FileTarget<DefinitionBlindBackend>().ApplicableChecks.Select(c => c.Name));
    }

    /// <summary>Deletes the store directories the FileBackend-based targets created.</summary>
    public void Dispose()
    {
        foreach (var directory in _directories.Append(_sharedDirectory).Where(Directory.Exists))
        {
            Directory.Delete(directory, recursive: true);
        }

        GC.SuppressFinalize(this);
    }

    // FileBackend and the broken backends built on it: a fresh directory per configuration, few locked file writes.
    private ConformanceTarget FileTarget<TBackend>()
        where TBackend : IMetricBackend<TBackend> =>
        ConformanceTarget.ForType<TBackend>(
                () =>
                {
                    var directory = Path.Combine(Path.GetTempPath(), "metrics-file-backend", Guid.NewGuid().ToString("N"));
                    _directories.Add(directory);
                    return new BackendConfig([new("Directory", directory)]);
                },
                new ConformanceOptions { IncrementsPerThread = 2_000, ChildProcesses = 2, ChildIncrements = 300 })
            .WithInvalidConfigs([new([new("Directory", "")])]);

    [Fact]
    public void A_backend_that_takes_a_value_s_own_marker_bits_for_a_move_fails_only_the_value_cell_check()
    {
        var failures = Failures(ConformanceTarget.ForType<MarkerTakenForMoveBackend>(options: Quick));
        Assert.Equal(["ValueCellIsTheValueAndMovesOnlyWhenMoved"], failures.Keys);
        Assert.Contains("must treat them as a value (NaN + 1 = NaN), not restart somewhere else", failures["ValueCellIsTheValueAndMovesOnlyWhenMoved"]);
    }

    private static BackendConfig UniqueConfig() => new([new("Store", Guid.NewGuid().ToString("N"))]);

    private static Dictionary<string, string> Failures(ConformanceTarget target)
    {
        var results = target.RunAll();
        Assert.Equal(target.ApplicableChecks.Count, results.Count);
        return results.Where(r => !r.Passed).ToDictionary(r => r.Check.Name, r => r.Failure!.Message);
    }
}
