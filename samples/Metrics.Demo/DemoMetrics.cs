using Metrics;

namespace Metrics.Demo;

/// <summary>The demo's metrics, the same in the server and in every worker process, recorded by a middleware for every request.</summary>
internal sealed class DemoMetrics(MetricRegistry registry)
{
    private static readonly Dictionary<string, string> Service = new() { ["service"] = "demo" };

    public Counter Requests { get; } = new("demo_requests_total", "Requests handled.", ["method", "route", "code"], registry: registry);

    public Gauge InProgress { get; } = new("demo_requests_in_progress", "Requests being handled now.", registry: registry);

    public Histogram Latency { get; } = new("demo_request_duration_seconds", "Request latency.", ["route", "service"],
        defaultLabels: Service,
        registry: registry,
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
        unit: "seconds");

    /// <summary>
    /// The same latencies as <see cref="Latency"/> as a native histogram: a Prometheus started with
    /// <c>--enable-feature=native-histograms</c> gets quantiles within 10% from about 100 buckets per series, created only
    /// where requests fall, with no bounds to choose. Native only (no classic buckets): the classic twin above already
    /// serves text-format scrapers, which see this one as a count and a sum.
    /// </summary>
    public Histogram LatencyNative { get; } = new("demo_request_latency_seconds", "Request latency (native histogram).", ["route", "service"],
        defaultLabels: Service,
        registry: registry,
        native: new NativeHistogramOptions { BucketFactor = 1.1 },
        unit: "seconds");

    public Summary ResponseSize { get; } = new("demo_response_size_bytes", "Response body sizes.", ["route"], registry: registry, unit: "bytes");

    /// <summary>The build, as an info metric: <c>demo_build_info{version="..."} 1</c>.</summary>
    public Info Build { get; } = new("demo_build", "The demo's build.", ["version"], registry: registry);

    /// <summary>
    /// The lifecycle state as an enum (a state set with one true state). With workers on a shared backend, the process
    /// that changed its state last wins (the default <see cref="GaugeAggregation.MostRecent"/>).
    /// </summary>
    public EnumMetric State { get; } = new("demo_service_state", "Lifecycle state; with workers, the latest change of any process.", ["starting", "running", "stopping"], registry: registry);

    public void Record(string method, string route, int code, double seconds, long bytes)
    {
        Requests.Labels(method, route, code.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
        // The request's trace id, when its trace is sampled (DemoTracing): Prometheus stores it beside the bucket, so a
        // slow bucket leads to the trace of a request that fell in it.
        Latency.Labels(("route", route)).Observe(seconds, DemoTracing.CurrentExemplar());
        LatencyNative.Labels(("route", route)).Observe(seconds);
        ResponseSize.Labels(route).Observe(bytes);
    }
}
