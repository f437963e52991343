using System.IO.Compression;
using System.Text;

namespace Metrics.Tests;

public class ExpositionTests
{
    private static MetricRegistry FixedRegistry()
    {
        var registry = new MetricRegistry();
        var requests = new Counter("http_requests_total", "Requests served.", ["method", "code"], registry: registry);
        requests.Labels("GET", "200").Inc(3);
        requests.Labels("POST", "500").Inc();
        var temperature = new Gauge("room_temperature_celsius", "Temperature with \"quotes\", a \\ and a\nnewline.", registry: registry);
        temperature.Set(-1.5);
        var latency = new Histogram("request_seconds", "Latency.", ["path"], new Dictionary<string, string> { ["path"] = "/" }, registry, [0.1, 1, 5]);
        latency.Observe(0.05);
        latency.Observe(0.5);
        latency.Observe(100);
        var size = new Summary("response_bytes", "Response sizes.", registry: registry);
        size.Observe(10);
        size.Observe(32.5);
        _ = new Counter("never_used_total", "No series yet.", ["x"], registry: registry);
        return registry;
    }

    [Fact]
    public void Prometheus_text_is_exact()
    {
        var text = FixedRegistry().Render(ExpositionFormat.PrometheusText);
        const string expected = """
            # HELP http_requests_total Requests served.
            # TYPE http_requests_total counter
            http_requests_total{method="GET",code="200"} 3
            http_requests_total{method="POST",code="500"} 1
            # HELP room_temperature_celsius Temperature with "quotes", a \\ and a\nnewline.
            # TYPE room_temperature_celsius gauge
            room_temperature_celsius -1.5
            # HELP request_seconds Latency.
            # TYPE request_seconds histogram
            request_seconds_bucket{path="/",le="0.1"} 1
            request_seconds_bucket{path="/",le="1"} 2
            request_seconds_bucket{path="/",le="5"} 2
            request_seconds_bucket{path="/",le="+Inf"} 3
            request_seconds_sum{path="/"} 100.55
            request_seconds_count{path="/"} 3
            # HELP response_bytes Response sizes.
            # TYPE response_bytes summary
            response_bytes_sum 42.5
            response_bytes_count 2

            """;
        Assert.Equal(expected.ReplaceLineEndings("\n"), text);
    }

    [Fact]
    public void OpenMetrics_is_exact_apart_from_created_timestamps()
    {
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        var text = FixedRegistry().Render(ExpositionFormat.OpenMetrics);
        var after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

        // _created carries the series' creation time: check its range, then compare the rest exactly.
        var lines = text.Split('\n');
        var created = lines.Where(l => l.Contains("_created", StringComparison.Ordinal)).ToList();
        Assert.Equal(4, created.Count);
        foreach (var line in created)
        {
            var printed = line[(line.LastIndexOf(' ') + 1)..];
            var value = double.Parse(printed, System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(value, before - 0.001, after + 0.001);

            // The fast formatter must print what the general round-trip formatter prints.
            Assert.Equal(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture), printed);
        }

        var rest = string.Join('\n', lines.Select(l => l.Contains("_created", StringComparison.Ordinal) ? l[..l.LastIndexOf(' ')] + " T" : l));
        const string expected = """
            # HELP http_requests Requests served.
            # TYPE http_requests counter
            http_requests_total{method="GET",code="200"} 3
            http_requests_created{method="GET",code="200"} T
            http_requests_total{method="POST",code="500"} 1
            http_requests_created{method="POST",code="500"} T
            # HELP room_temperature_celsius Temperature with \"quotes\", a \\ and a\nnewline.
            # TYPE room_temperature_celsius gauge
            room_temperature_celsius -1.5
            # HELP request_seconds Latency.
            # TYPE request_seconds histogram
            request_seconds_bucket{path="/",le="0.1"} 1
            request_seconds_bucket{path="/",le="1.0"} 2
            request_seconds_bucket{path="/",le="5.0"} 2
            request_seconds_bucket{path="/",le="+Inf"} 3
            request_seconds_sum{path="/"} 100.55
            request_seconds_count{path="/"} 3
            request_seconds_created{path="/"} T
            # HELP response_bytes Response sizes.
            # TYPE response_bytes summary
            response_bytes_sum 42.5
            response_bytes_count 2
            response_bytes_created T
            # EOF

            """;
        Assert.Equal(expected.ReplaceLineEndings("\n"), rest);
    }

    [Theory]
    [InlineData(0.1, "0.1")]
    [InlineData(1e-300, "1e-300")]
    [InlineData(1e300, "1e+300")]
    [InlineData(123456789012345678.0, "1.2345678901234568e+17")]
    [InlineData(double.PositiveInfinity, "+Inf")]
    [InlineData(double.NegativeInfinity, "-Inf")]
    [InlineData(double.NaN, "NaN")]
    [InlineData(-0.0, "-0")]
    [InlineData(42.0, "42")]
    public void Values_are_formatted_to_round_trip(double value, string expected)
    {
        var registry = new MetricRegistry();
        new Gauge("g", "g", registry: registry).Set(value);
        var line = registry.Render().Split('\n')[2];
        Assert.Equal($"g {expected}", line);
        if (double.IsFinite(value))
        {
            Assert.Equal(value, double.Parse(expected, System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    [Fact]
    public void Hostile_label_values_are_escaped()
    {
        var registry = new MetricRegistry();
        var c = new Counter("c_total", "c", ["v"], registry: registry);
        c.Labels("a\"b\\c\nd").Inc();
        c.Labels(string.Empty).Inc();
        c.Labels("ünï€😀").Inc();
        var text = registry.Render();
        Assert.Contains("c_total{v=\"a\\\"b\\\\c\\nd\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("c_total{v=\"\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("c_total{v=\"ünï€😀\"} 1\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Escapes_at_the_edges_of_values_and_beside_multibyte_text_render_exactly()
    {
        var registry = new MetricRegistry();
        var c = new Counter("e_total", "e", ["a", "b"], registry: registry);
        c.Labels("\\", "\"😀\n").Inc();
        c.Labels("x\n\ny", "é\\").Inc();
        var text = registry.Render();
        Assert.Contains("e_total{a=\"\\\\\",b=\"\\\"😀\\n\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("e_total{a=\"x\\n\\ny\",b=\"é\\\\\"} 1\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_scrape_starts_in_a_buffer_that_holds_the_last_one_of_its_format()
    {
        var registry = new MetricRegistry { CardinalityLimit = 100_000 };
        var counter = new Counter("sized_total", "Sized.", ["id"], registry: registry);
        for (var i = 0; i < 20_000; i++)
        {
            counter.Labels(i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
        }

        Assert.Equal(0, registry.RenderedBytes(ExpositionFormat.OpenMetrics));
        var text = registry.Render();
        var bytes = Encoding.UTF8.GetByteCount(text);
        Assert.Equal(bytes, registry.RenderedBytes(ExpositionFormat.PrometheusText));
        Assert.Equal(0, registry.RenderedBytes(ExpositionFormat.OpenMetrics));

        // Larger than the default start (64 KB): the next text scrape begins with room for all of it and a little growth.
        Assert.True(bytes > 64 * 1024, $"{bytes} bytes");
        using var next = new ExpositionBuffer(ExpositionWriter.SizeHint([(registry, new CollectedScrape([], null))], ExpositionFormat.PrometheusText));
        Assert.True(next.Capacity >= bytes + (bytes / 8), $"{next.Capacity} bytes for a scrape of {bytes}");
    }

    [Fact]
    public void Prefix_is_prepended_to_every_name()
    {
        var registry = new MetricRegistry("myapp");
        new Counter("jobs_total", "Jobs.", registry: registry).Inc();
        Assert.Contains("myapp_jobs_total 1\n", registry.Render(), StringComparison.Ordinal);
        Assert.Contains("# TYPE myapp_jobs counter\n", registry.Render(ExpositionFormat.OpenMetrics), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, ExpositionFormat.PrometheusText)]
    [InlineData("", ExpositionFormat.PrometheusText)]
    [InlineData("text/plain", ExpositionFormat.PrometheusText)]
    [InlineData("*/*", ExpositionFormat.PrometheusText)]
    [InlineData("application/openmetrics-text", ExpositionFormat.OpenMetrics)]
    [InlineData("application/openmetrics-text; version=1.0.0; charset=utf-8", ExpositionFormat.OpenMetrics)]
    [InlineData("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", ExpositionFormat.OpenMetrics)]
    [InlineData("application/openmetrics-text; version=2.0.0", ExpositionFormat.PrometheusText)]
    [InlineData("application/openmetrics-text;q=0.2, text/plain;q=0.9", ExpositionFormat.PrometheusText)]
    [InlineData("application/openmetrics-text;q=0", ExpositionFormat.PrometheusText)]
    [InlineData("application/openmetrics-text;version=0.0.1", ExpositionFormat.OpenMetrics)]
    [InlineData("application/openmetrics-text;q=NaN, text/plain;q=0.1", ExpositionFormat.PrometheusText)]
    public void Accept_header_chooses_the_format(string? accept, ExpositionFormat expected) =>
        Assert.Equal(expected, Exposition.Negotiate(accept));

    [Theory]
    [InlineData(null, false)]
    [InlineData("identity", false)]
    [InlineData("gzip", true)]
    [InlineData("deflate, gzip;q=0.5", true)]
    [InlineData("gzip;q=0", false)]
    [InlineData("*", true)]
    [InlineData("gzip;q=0, *", false)]
    [InlineData("x-gzip", true)]
    public void Accept_encoding_chooses_gzip(string? header, bool expected) =>
        Assert.Equal(expected, Exposition.AcceptsGzip(header));

    [Fact]
    public void Content_types_name_the_version()
    {
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", Exposition.ContentType(ExpositionFormat.PrometheusText));
        Assert.Equal("application/openmetrics-text; version=1.0.0; charset=utf-8", Exposition.ContentType(ExpositionFormat.OpenMetrics));
    }

    [Fact]
    public async Task WriteAsync_writes_utf8_to_any_stream_including_gzip()
    {
        var registry = FixedRegistry();
        using var compressed = new MemoryStream();
        await using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        {
            await registry.WriteAsync(gzip, ExpositionFormat.OpenMetrics, TestContext.Current.CancellationToken);
        }

        compressed.Position = 0;
        using var reader = new StreamReader(new GZipStream(compressed, CompressionMode.Decompress), Encoding.UTF8);
        var text = await reader.ReadToEndAsync(TestContext.Current.CancellationToken);
        Assert.EndsWith("# EOF\n", text, StringComparison.Ordinal);
        Assert.Contains("http_requests_total{method=\"GET\",code=\"200\"} 3", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Custom_collector_samples_are_exposed()
    {
        var registry = new MetricRegistry();
        registry.Register(new QueueCollector());
        var text = registry.Render();
        Assert.Contains("# TYPE queue_length gauge\nqueue_length{queue=\"a\"} 7\nqueue_length{queue=\"b\"} 0\n", text, StringComparison.Ordinal);
        Assert.Contains("processed_total 12\n", text, StringComparison.Ordinal);
        Assert.Contains("processed_total 12\n", registry.Render(ExpositionFormat.OpenMetrics), StringComparison.Ordinal);
        Assert.Contains("# TYPE processed counter\n", registry.Render(ExpositionFormat.OpenMetrics), StringComparison.Ordinal);
    }

    private sealed class QueueCollector : ICollector
    {
        public IReadOnlyList<string> MetricNames => ["queue_length", "processed_total"];

        public IEnumerable<MetricSnapshot> Collect()
        {
            yield return new MetricSnapshot("queue_length", "Items waiting.", MetricType.Gauge, ["queue"], [new Sample(["a"], 7), new Sample(["b"], 0)]);
            yield return MetricSnapshot.Counter("processed_total", "Items processed.", 12);
        }
    }
}
