namespace Metrics;

/// <summary>Promises a backend makes beyond the basic contract; returned by <see cref="IMetricBackend{TSelf}.Capabilities"/>.</summary>
[Flags]
public enum BackendCapabilities
{
    /// <summary>Values live in one process only.</summary>
    None = 0,

    /// <summary>
    /// Values are shared across processes: every process that creates the same metric, label values and bucket
    /// with the same configuration reads and updates one value. The conformance suite then runs its
    /// multi-process checks, which use <see cref="IMetricBackend{TSelf}.Flush"/> and
    /// <see cref="IMetricBackend{TSelf}.Collect"/>.
    /// </summary>
    SharedAcrossProcesses = 1,
}
