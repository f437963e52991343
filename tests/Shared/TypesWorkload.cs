namespace Metrics.Tests;

/// <summary>
/// The info, enum and unit gauge that the multi-process tests declare alike in the test process and in every worker,
/// as processes of one application do.
/// </summary>
internal sealed class TypesWorkload(MetricRegistry registry)
{
    public static readonly string[] States = ["starting", "running", "stopping"];

    public Info Build { get; } = new("types_build", "Build of the process.", ["version"], registry: registry);

    public EnumMetric State { get; } = new("types_service_state", "Lifecycle state; the process that changed it last wins.", States, registry: registry);

    public Gauge Queue { get; } = new("types_queue_bytes", "Bytes queued, summed over processes.", registry: registry, unit: "bytes");
}
