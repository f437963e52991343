using System.Net;

namespace Metrics.Hosting.Tests;

public sealed class RegistryErgonomicsTests
{
    [Fact]
    public void Creating_a_metric_again_with_the_same_definition_shares_its_series()
    {
        var registry = new MetricRegistry(backend: ConfiguredBackend.Memory);
        var first = new Counter("jobs_total", "Jobs.", ["queue"], registry: registry);
        var second = new Counter("jobs_total", "Jobs.", ["queue"], registry: registry);
        first.Labels("a").Inc(2);
        second.Labels("a").Inc(3);
        Assert.Equal(5, second.Labels("a").Value);

        var plain = new Gauge("depth", "Depth.", registry: registry);
        new Gauge("depth", "Depth.", registry: registry).Set(7);
        Assert.Equal(7, plain.Value);

        var h1 = new Histogram("latency_seconds", "Latency.", buckets: [0.1, 1], registry: registry);
        new Histogram("latency_seconds", "Latency.", buckets: [0.1, 1], registry: registry).Observe(0.5);
        Assert.Contains("latency_seconds_count 1\n", registry.Render(), StringComparison.Ordinal);
        Assert.NotNull(h1);
        var s1 = new Summary("size_bytes", "Sizes.", registry: registry);
        new Summary("size_bytes", "Sizes.", registry: registry).Observe(4);
        Assert.Equal(4, s1.Sum);
        Assert.Single(registry.MetricNames, n => n == "jobs_total");
    }

    [Fact]
    public void Creating_a_metric_again_with_another_definition_throws_naming_the_difference()
    {
        var registry = new MetricRegistry(backend: ConfiguredBackend.Memory);
        _ = new Counter("jobs_total", "Jobs.", ["queue"], registry: registry);
        var labels = Assert.Throws<ArgumentException>(() => new Counter("jobs_total", "Jobs.", ["queue", "kind"], registry: registry));
        Assert.Contains("labels [queue] vs [queue, kind]", labels.Message, StringComparison.Ordinal);
        var help = Assert.Throws<ArgumentException>(() => new Counter("jobs_total", "Other help.", ["queue"], registry: registry));
        Assert.Contains("help \"Jobs.\" vs \"Other help.\"", help.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new Gauge("jobs_total", "Jobs.", ["queue"], registry: registry));
        _ = new Histogram("h_seconds", "H.", buckets: [1, 2], registry: registry);
        var buckets = Assert.Throws<ArgumentException>(() => new Histogram("h_seconds", "H.", buckets: [1, 3], registry: registry));
        Assert.Contains("buckets", buckets.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MetricServer_serves_two_registries_in_one_response_and_refuses_a_name_in_both()
    {
        var ct = TestContext.Current.CancellationToken;
        var app = new MetricRegistry(backend: ConfiguredBackend.Memory);
        var library = new MetricRegistry(prefix: "lib", backend: ConfiguredBackend.Memory);
        new Counter("app_requests_total", "Requests.", registry: app).Inc();
        new Gauge("pool_size", "Pool size.", registry: library).Set(4);
        await using (var server = new Hosting.MetricServer(0, "127.0.0.1", "/metrics", [app, library]).Start())
        {
            using var client = new HttpClient();
            var body = await client.GetStringAsync(server.Url, ct);
            Assert.Contains("app_requests_total 1\n", body, StringComparison.Ordinal);
            Assert.Contains("lib_pool_size 4\n", body, StringComparison.Ordinal);
            var (exit, output) = Metrics.Tests.Promtool.Check(body);
            Assert.True(exit == 0, output);

            using var openMetrics = new HttpRequestMessage(HttpMethod.Get, server.Url);
            openMetrics.Headers.Add("Accept", "application/openmetrics-text; version=1.0.0");
            var om = await (await client.SendAsync(openMetrics, ct)).Content.ReadAsStringAsync(ct);
            Assert.Equal(1, om.Split("# EOF").Length - 1);
        }

        var other = new MetricRegistry(backend: ConfiguredBackend.Memory);
        new Counter("app_requests_total", "Requests elsewhere.", registry: other).Inc();
        await using (var server = new Hosting.MetricServer(0, "127.0.0.1", "/metrics", [app, other]).Start())
        {
            using var client = new HttpClient();
            var response = await client.GetAsync(server.Url, ct);
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            var reason = await response.Content.ReadAsStringAsync(ct);
            Assert.Contains("The metric name 'app_requests_total' is in two of the registries served together (registry #1 and registry #2)", reason, StringComparison.Ordinal);
        }
    }
}
