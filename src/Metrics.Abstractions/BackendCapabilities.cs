namespace Metrics;

/// <summary>Promises a backend makes beyond the basic contract; returned by <see cref="IMetricBackend{TSelf}.Capabilities"/>.</summary>
/// <remarks>The host never fakes a capability: what a backend does not declare, the host does not use or claim.</remarks>
[Flags]
public enum BackendCapabilities
{
    /// <summary>Values live in one process only, each created value on its own.</summary>
    None = 0,

    /// <summary>
    /// Values are shared across processes: every process and registry that creates the same metric, label values and
    /// bucket with an equal configuration reads and updates one value. The conformance suite then runs its multi-process
    /// checks, which use <see cref="IMetricBackend{TSelf}.FlushAsync"/> and <see cref="IMetricBackend{TSelf}.CollectAsync"/>.
    /// </summary>
    SharedAcrossProcesses = 1,

    /// <summary>
    /// Contract 1.1: updates are coalesced in the process and added to the store in one step per flush, so a fractional
    /// total may differ in its last bits from adding each update in turn (whole numbers stay exact).
    /// </summary>
    BatchesUpdates = 2,

    /// <summary>Contract 1.1: <see cref="IMetricBackend.ObserveHistogram"/> records a bucket and the sum together, atomically against a collection.</summary>
    AtomicHistogramObserve = 4,

    /// <summary>
    /// Contract 1.1: the shared store records each family's definition (<see cref="MetricDescriptor.Definition"/>), so
    /// processes that declare a metric differently never mix values or fail each other's scrapes.
    /// </summary>
    RecordsSchema = 8,

    /// <summary>
    /// Contract 1.1: the backend stores native histogram buckets (<see cref="HistogramBucket.IsNative"/> parts, created on
    /// first use, any number per series) and returns them from collection like any other part. Without it, a histogram
    /// configured as native keeps its classic buckets only.
    /// </summary>
    NativeHistogramBuckets = 16,

    /// <summary>
    /// Contract 1.1: every <see cref="GaugeAggregation"/> mode is honoured across processes, the live-only ones included
    /// (a dead process's contribution disappears). Without it, a shared backend may refuse a mode with a
    /// <see cref="NotSupportedException"/> when a value is created, and hosts find out by asking.
    /// </summary>
    AllGaugeAggregations = 32,

    /// <summary>
    /// Optional: the backend stores the latest exemplar per value (<see cref="IMetricBackend.RecordExemplar"/>) and returns
    /// it (<see cref="IMetricBackend.GetExemplar"/>, or <see cref="CollectedValue.Exemplar"/> from collection); a shared
    /// backend shows an exemplar recorded in one process in every process's collection. Without it the host drops
    /// exemplars for the backend (and says so once in the backend log).
    /// </summary>
    Exemplars = 64,

    /// <summary>
    /// Added after contract 1.1: <see cref="IMetricBackend{TSelf}.RemoveSeries"/> removes a series from the shared store, so it leaves
    /// every process's scrape, and a later update (in any process) brings it back from 0. Without it, removing a series
    /// only forgets this process's handle on it: a shared store keeps the values and scrapes still show them. A removal also
    /// removes the series' exemplars. (An in-process backend's removed series has its values set to 0 by the host through
    /// <see cref="IMetricBackend.Set"/>; one that stores exemplars forgets the value's exemplar there.)
    /// </summary>
    RemovesSeries = 256,

    /// <summary>
    /// Added after contract 1.1: <see cref="IMetricBackend{TSelf}.SeriesCount"/> tells how many series of a family the shared store
    /// holds, so a cardinality limit counts every process's series, not only this process's.
    /// </summary>
    CountsSeries = 512,
}
