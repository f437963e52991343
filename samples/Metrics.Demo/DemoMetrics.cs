using Metrics;

namespace Metrics.Demo;

/// <summary>The demo's four metrics, the same in the server and in every worker process, recorded by a middleware for every request.</summary>
internal sealed class DemoMetrics(MetricRegistry registry)
{
    public Counter Requests { get; } = new("demo_requests_total", "Requests handled.", ["method", "route", "code"], registry: registry);

    public Gauge InProgress { get; } = new("demo_requests_in_progress", "Requests being handled now.", registry: registry);

    public Histogram Latency { get; } = new("demo_request_duration_seconds", "Request latency.", ["route", "service"],
        defaultLabels: new Dictionary<string, string> { ["service"] = "demo" },
        registry: registry,
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]);

    public Summary ResponseSize { get; } = new("demo_response_size_bytes", "Response body sizes.", ["route"], registry: registry);

    public void Record(string method, string route, int code, double seconds, long bytes)
    {
        Requests.Labels(method, route, code.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
        Latency.Labels(("route", route)).Observe(seconds);
        ResponseSize.Labels(route).Observe(bytes);
    }
}
