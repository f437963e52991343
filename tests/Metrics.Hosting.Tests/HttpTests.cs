using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using Metrics.AspNetCore;
using Metrics.Tests;
using Metrics.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace Metrics.Hosting.Tests;

public sealed class HttpTests
{
    private static readonly HttpClient Client = new(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None }) { Timeout = TimeSpan.FromSeconds(30) };

    private static MetricRegistry SampleRegistry(ConfiguredBackend? backend = null)
    {
        var registry = new MetricRegistry("app", backend ?? ConfiguredBackend.Memory);
        var requests = new Counter("requests_total", "Requests with \"quotes\" and a \\ backslash.", ["path"], registry: registry);
        requests.Labels("/a\"b\nc").Inc(3);
        new Gauge("in_progress", "In progress.", registry: registry).Set(2);
        new Histogram("latency_seconds", "Latency.", ["route"], new Dictionary<string, string> { ["route"] = "/" }, registry).Observe(0.2);
        new Summary("size_bytes", "Sizes.", registry: registry).Observe(512);
        return registry;
    }

    private static async Task<(HttpResponseMessage Response, string Body)> GetAsync(Uri url, bool openMetrics, bool gzip)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.TryAddWithoutValidation("Accept", openMetrics ? "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5" : "text/plain;version=0.0.4");
        if (gzip)
        {
            request.Headers.TryAddWithoutValidation("Accept-Encoding", "gzip");
        }

        var response = await Client.SendAsync(request, TestContext.Current.CancellationToken);
        var bytes = await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken);
        if (response.Content.Headers.ContentEncoding.Contains("gzip"))
        {
            using var decompressed = new MemoryStream();
            await using (var unzip = new GZipStream(new MemoryStream(bytes), CompressionMode.Decompress))
            {
                await unzip.CopyToAsync(decompressed, TestContext.Current.CancellationToken);
            }

            bytes = decompressed.ToArray();
        }

        return (response, System.Text.Encoding.UTF8.GetString(bytes));
    }

    private static async Task CheckScrapesAsync(Uri url)
    {
        foreach (var openMetrics in new[] { false, true })
        {
            foreach (var gzip in new[] { false, true })
            {
                var (response, body) = await GetAsync(url, openMetrics, gzip);
                var what = $"{(openMetrics ? "OpenMetrics" : "text")}, gzip={gzip}";
                Assert.True(response.StatusCode == HttpStatusCode.OK, $"{what}: {response.StatusCode} {body}");
                Assert.Equal(Exposition.ContentType(openMetrics ? ExpositionFormat.OpenMetrics : ExpositionFormat.PrometheusText), response.Content.Headers.ContentType!.ToString().Replace(" ", string.Empty, StringComparison.Ordinal).Replace(";", "; ", StringComparison.Ordinal));
                Assert.Equal(gzip ? ["gzip"] : [], response.Content.Headers.ContentEncoding);
                Assert.Equal(["Accept", "Accept-Encoding"], response.Headers.Vary);
                Assert.Contains("app_requests_total{path=\"/a\\\"b\\nc\"} 3", body, StringComparison.Ordinal);
                if (openMetrics)
                {
                    Assert.EndsWith("# EOF\n", body, StringComparison.Ordinal);
                }
                else
                {
                    var (exit, output) = Promtool.Check(body);
                    Assert.True(exit == 0, $"{what}: promtool check metrics failed ({exit}):\n{output}\n{body}");
                }
            }
        }
    }

    [Fact]
    public async Task The_standalone_server_negotiates_format_and_gzip_and_passes_promtool()
    {
        await using var server = new MetricServer(0, registry: SampleRegistry()).Start();
        Assert.Equal("127.0.0.1", server.Url.Host);
        await CheckScrapesAsync(server.Url);
    }

    [Fact]
    public async Task The_standalone_server_answers_404_405_and_head()
    {
        await using var server = new MetricServer(0, path: "/custom", registry: SampleRegistry()).Start();
        var notFound = await Client.GetAsync(new Uri(server.Url, "/metrics"), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NotFound, notFound.StatusCode);
        var post = await Client.PostAsync(server.Url, new StringContent(string.Empty), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
        using var head = await Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, server.Url), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.True(head.Content.Headers.ContentLength > 0);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task The_standalone_server_stops_and_frees_its_port()
    {
        var server = new MetricServer(0, registry: SampleRegistry()).Start();
        var port = server.Port;
        await server.StopAsync();
        using var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        Assert.Equal(port, ((IPEndPoint)listener.LocalEndpoint).Port);
    }

    [Fact]
    public async Task A_scrape_of_11000_series_is_complete_and_repeatable_over_one_connection()
    {
        var registry = new MetricRegistry(backend: ConfiguredBackend.Memory);
        var counter = new Counter("many_total", "Many series.", ["a", "b"], registry: registry) { CardinalityLimit = 11_000 };
        for (var i = 0; i < 11_000; i++)
        {
            counter.Labels((i % 100).ToString(System.Globalization.CultureInfo.InvariantCulture), i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc(i);
        }

        await using var server = new MetricServer(0, registry: registry).Start();
        // How fast it is belongs to the benchmarks (ExpositionBenchmarks); here, that the pooled buffer returned after the
        // first response never corrupts the second.
        var (_, first) = await GetAsync(server.Url, openMetrics: false, gzip: false);
        var (response, body) = await GetAsync(server.Url, openMetrics: false, gzip: false);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(11_002, body.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Equal(first, body);
        Assert.Contains("many_total{a=\"99\",b=\"10999\"} 10999\n", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failing_backend_gives_a_500_with_a_reason_on_both_servers()
    {
        var registry = new MetricRegistry(backend: ConfiguredBackend.Create<FailingBackend>());
        new Counter("broken_total", "Reads fail.", registry: registry).Inc();

        await using var server = new MetricServer(0, registry: registry).Start();
        await using var app = await StartAspNetCoreAsync(registry);
        foreach (var url in new[] { server.Url, new Uri(app.Urls.Single() + "/metrics") })
        {
            var (response, body) = await GetAsync(url, openMetrics: false, gzip: true);
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            Assert.Equal("text/plain", response.Content.Headers.ContentType!.MediaType);
            Assert.Empty(response.Content.Headers.ContentEncoding);
            Assert.Equal("Collecting metrics failed: InvalidOperationException: the store is unreachable\n", body);
        }
    }

    [Fact]
    public async Task MapMetrics_on_kestrel_negotiates_format_and_gzip_and_passes_promtool()
    {
        await using var app = await StartAspNetCoreAsync(SampleRegistry());
        var url = new Uri(app.Urls.Single() + "/metrics");
        Assert.Equal("127.0.0.1", url.Host);
        await CheckScrapesAsync(url);
    }

    private static async Task<WebApplication> StartAspNetCoreAsync(MetricRegistry registry)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.MapMetrics("/metrics", registry);
        await app.StartAsync(TestContext.Current.CancellationToken);
        return app;
    }

    public sealed class FailingBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<FailingBackend>
    {
        public BackendConfig Config => config;

        public MetricDescriptor Metric => metric;

        public HistogramBucket? Bucket => histogramBucket;

        public static void Initialize(BackendConfig config)
        {
        }

        public void Inc(double value)
        {
        }

        public void Dec(double value)
        {
        }

        public void Set(double value)
        {
        }

        public double Get() => throw new InvalidOperationException("the store is unreachable");
    }
}
