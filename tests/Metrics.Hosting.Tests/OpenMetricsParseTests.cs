using System.Text.Json;

namespace Metrics.Hosting.Tests;

/// <summary>
/// A real Prometheus parses the OpenMetrics exposition of info, state sets, enums and units, from metrics and from a
/// custom collector (a bucket exemplar included): its parser refuses a unit that is not the name's suffix and records each
/// family's type and unit.
/// </summary>
public sealed class OpenMetricsParseTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("metrics-prometheus-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task Prometheus_parses_info_state_sets_and_units_in_openmetrics()
    {
        var registry = new MetricRegistry();
        new Info("om_build", "Build.", ["version"], registry: registry).Set("1.2.3");
        new StateSet("om_flags", "Flags.", ["dark_mode", "beta"], registry: registry).Set("beta", true);
        new EnumMetric("om_state", "State.", ["starting", "running"], registry: registry).State("running");
        new Histogram("om_wait_seconds", "Waits.", buckets: [0.5], registry: registry, unit: "seconds").Observe(0.25);
        new Counter("om_sent_bytes_total", "Sent.", registry: registry, unit: "bytes").Inc(7);
        registry.Register(new Collector());

        // Without native histograms Prometheus asks for OpenMetrics first.
        await using var server = new MetricServer(0, registry: registry).Start();
        using var prometheus = PrometheusProcess.Start(_folder, server.Url, nativeHistograms: false);
        await prometheus.WaitForScrapesAsync(2, TimeSpan.FromSeconds(90));
        var up = await prometheus.QueryAsync("up");
        Assert.True(up is [1], $"the scrape failed: up = [{string.Join(", ", up)}]; {await LastErrorAsync(prometheus)}\n{registry.Render(ExpositionFormat.OpenMetrics)}");

        Assert.Equal(1, await prometheus.WaitForOneAsync("om_build_info{version=\"1.2.3\"}"));
        Assert.Equal(1, await prometheus.WaitForOneAsync("om_flags{om_flags=\"beta\"}"));
        Assert.Equal(0, await prometheus.WaitForOneAsync("om_flags{om_flags=\"dark_mode\"}"));
        Assert.Equal(1, await prometheus.WaitForOneAsync("om_state{om_state=\"running\"}"));
        Assert.Equal(7, await prometheus.WaitForOneAsync("om_sent_bytes_total"));
        Assert.Equal(1, await prometheus.WaitForOneAsync("om_wait_seconds_count"));
        Assert.Equal(1, await prometheus.WaitForOneAsync("collected_host_info{os=\"linux\"}"));
        Assert.Equal(3, await prometheus.WaitForOneAsync("collected_wait_seconds_bucket{le=\"+Inf\"}"));
        Assert.Equal(1, await prometheus.WaitForOneAsync("collected_mode{collected_mode=\"a\"}"));
        Assert.Equal(4, await prometheus.WaitForOneAsync("collected_sizes_count"));

        var metadata = await MetadataAsync(prometheus);
        Assert.Equal(("info", ""), metadata["om_build"]);
        Assert.Equal(("stateset", ""), metadata["om_flags"]);
        Assert.Equal(("stateset", ""), metadata["om_state"]);
        Assert.Equal(("histogram", "seconds"), metadata["om_wait_seconds"]);
        Assert.Equal(("counter", "bytes"), metadata["om_sent_bytes"]);
        Assert.Equal(("info", ""), metadata["collected_host"]);
        Assert.Equal(("stateset", ""), metadata["collected_mode"]);
        Assert.Equal(("histogram", "seconds"), metadata["collected_wait_seconds"]);
        Assert.Equal(("summary", ""), metadata["collected_sizes"]);
    }

    /// <summary>The type and unit Prometheus recorded per metric family of the target.</summary>
    private static async Task<Dictionary<string, (string Type, string Unit)>> MetadataAsync(PrometheusProcess prometheus)
    {
        var body = await prometheus.Http.GetStringAsync(new Uri("/api/v1/targets/metadata?match_target=" + Uri.EscapeDataString("{job=\"app\"}"), UriKind.Relative), TestContext.Current.CancellationToken);
        using var json = JsonDocument.Parse(body);
        return json.RootElement.GetProperty("data").EnumerateArray().ToDictionary(
            m => m.GetProperty("metric").GetString()!,
            m => (m.GetProperty("type").GetString()!, m.GetProperty("unit").GetString()!));
    }

    private static async Task<string> LastErrorAsync(PrometheusProcess prometheus) =>
        await prometheus.Http.GetStringAsync(new Uri("/api/v1/targets", UriKind.Relative), TestContext.Current.CancellationToken);

    private sealed class Collector : ICollector
    {
        public IReadOnlyList<string> MetricNames => ["collected_host_info", "collected_wait_seconds", "collected_mode", "collected_sizes"];

        public IEnumerable<MetricSnapshot> Collect()
        {
            yield return MetricSnapshot.Info("collected_host_info", "Host.", ["os"], [["linux"]]);
            // A bucket exemplar as a collector gives it: Prometheus' OpenMetrics parser must accept the line it is on.
            yield return MetricSnapshot.Histogram("collected_wait_seconds", "Waits.", [], [0.5], [new HistogramSample([], [1, 3], 7.5) { Exemplars = [new RecordedExemplar(Exemplar.Of("trace_id", "w1"), 0.25, 1_700_000_000), null] }], unit: "seconds");
            yield return MetricSnapshot.StateSet("collected_mode", "Mode.", [], [new StateSetSample([], new Dictionary<string, bool> { ["a"] = true, ["b"] = false })]);
            yield return MetricSnapshot.Summary("collected_sizes", "Sizes.", [], [new SummarySample([], 4, 12)]);
        }
    }
}
