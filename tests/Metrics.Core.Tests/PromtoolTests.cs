namespace Metrics.Tests;

public class PromtoolTests
{
    // promtool check metrics parses the Prometheus text format only.
    [Fact]
    public void Promtool_accepts_an_exposition_with_hostile_labels_and_help()
    {
        var registry = new MetricRegistry("app");
        var requests = new Counter("http_requests_total", "Requests with \"quotes\", back\\slashes\nand a newline, ünïcode 😀.", ["path", "note"], registry: registry);
        requests.Labels("/a\"b", "line1\nline2").Inc();
        requests.Labels("C:\\dir\\", string.Empty).Inc(2);
        requests.Labels("日本語", "a,b=c}{").Inc(3);
        var gauge = new Gauge("temperature_celsius", "Help with trailing backslash \\", ["sensor"], registry: registry);
        gauge.Labels("x").Set(double.NaN);
        gauge.Labels("y").Set(double.NegativeInfinity);
        gauge.Labels("z").Set(-0.0);
        gauge.Labels("w").Set(1e-300);
        var latency = new Histogram("request_duration_seconds", "Latency.", ["route"], new Dictionary<string, string> { ["route"] = "/\n" }, registry);
        latency.Observe(0.2);
        latency.Labels("/x").Observe(100);
        var sizes = new Summary("response_size_bytes", "Sizes.", registry: registry);
        sizes.Observe(1e300);

        var text = registry.Render(ExpositionFormat.PrometheusText);
        var (exit, output) = Promtool.Check(text);
        Assert.True(exit == 0, $"promtool check metrics failed ({exit}):\n{output}\n--- exposition ---\n{text}");
    }
}
