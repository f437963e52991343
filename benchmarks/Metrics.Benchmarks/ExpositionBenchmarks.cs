using System.Diagnostics.Metrics;
using System.Net;
using BenchmarkDotNet.Attributes;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Prom = Prometheus;

namespace Metrics.Benchmarks;

/// <summary>The text format a render or scrape benchmark asks for.</summary>
public enum Format
{
    Text,
    OpenMetrics,
}

/// <summary>Rendering 11,000 series (10,000 counter label sets, 1,000 histogram label sets) to a stream.</summary>
[MemoryDiagnoser]
public class Render11kSeries
{
    private Prom.CollectorRegistry _prometheusNet = null!;
    private MetricRegistry _ours = null!;
    private readonly MemoryStream _stream = new();

    [Params(Format.Text, Format.OpenMetrics)]
    public Format Format { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _prometheusNet = SeriesData.PrometheusNetScrapeRegistry();
        _ours = SeriesData.OurScrapeRegistry();

        // Grows the destination once, so that neither library pays for the stream's growth while timed.
        _stream.Capacity = 4 * 1024 * 1024;
    }

    [Benchmark(Baseline = true, Description = "prometheus-net")]
    public Task PrometheusNetRender()
    {
        _stream.Position = 0;
        return _prometheusNet.CollectAndExportAsTextAsync(
            _stream, Format == Format.OpenMetrics ? Prom.ExpositionFormat.OpenMetricsText : Prom.ExpositionFormat.PrometheusText);
    }

    [Benchmark(Description = "Metrics (Memory)")]
    public Task OursRender()
    {
        _stream.Position = 0;
        return _ours.WriteAsync(_stream, Format == Format.OpenMetrics ? ExpositionFormat.OpenMetrics : ExpositionFormat.PrometheusText);
    }
}

/// <summary>
/// The same 11,000 series scraped over HTTP on 127.0.0.1 from each library's standalone HttpListener server.
/// Ours is <see cref="Hosting.MetricServer"/>; prometheus-net's is its HttpListener <c>MetricServer</c>; OpenTelemetry's is
/// the Prometheus HttpListener exporter, with its response cache switched off so that every request collects and serializes.
/// </summary>
[MemoryDiagnoser]
public class HttpScrape11kSeries
{
    private Prom.IMetricServer _prometheusNetServer = null!;
    private Hosting.MetricServer _ourServer = null!;
    private MeterProvider _openTelemetryProvider = null!;
    private Meter _meter = null!;
    private HttpClient _client = null!;
    private Uri _prometheusNetUri = null!;
    private Uri _ourUri = null!;
    private Uri _openTelemetryUri = null!;

    [Params(Format.Text, Format.OpenMetrics)]
    public Format Format { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var port = Peers.FreeLoopbackPort();
        _prometheusNetServer = new Prom.MetricServer("127.0.0.1", port, "metrics/", SeriesData.PrometheusNetScrapeRegistry()).Start();
        _prometheusNetUri = new Uri($"http://127.0.0.1:{port}/metrics");

        _ourServer = new Hosting.MetricServer(port: 0, registry: SeriesData.OurScrapeRegistry()).Start();
        _ourUri = _ourServer.Url;

        port = Peers.FreeLoopbackPort();
        const string meterName = "bench.scrape";
        _openTelemetryProvider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(meterName)
            .AddView(_ => new MetricStreamConfiguration { CardinalityLimit = 2 * SeriesData.CounterSeries })
            .AddPrometheusHttpListener(options =>
            {
                options.Host = "127.0.0.1";
                options.Port = port;
                options.ScrapeResponseCacheDurationMilliseconds = 0;
            })
            .Build()!;
        _meter = new Meter(meterName);
        SeriesData.RecordOpenTelemetry(_meter);
        _openTelemetryUri = new Uri($"http://127.0.0.1:{port}/metrics");

        _client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AutomaticDecompression = DecompressionMethods.None });
        _client.DefaultRequestHeaders.Accept.ParseAdd(
            Format == Format.OpenMetrics ? "application/openmetrics-text; version=1.0.0" : "text/plain; version=0.0.4");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.Dispose();
        _prometheusNetServer.Dispose();
        _ourServer.Dispose();
        _meter.Dispose();
        _openTelemetryProvider.Dispose();
    }

    [Benchmark(Baseline = true, Description = "prometheus-net")]
    public Task<long> PrometheusNetScrape() => Scrape(_prometheusNetUri);

    [Benchmark(Description = "Metrics (Memory)")]
    public Task<long> OursScrape() => Scrape(_ourUri);

    [Benchmark(Description = "OpenTelemetry")]
    public Task<long> OpenTelemetryScrape() => Scrape(_openTelemetryUri);

    /// <summary>Fetches one scrape and returns its length, failing loudly on anything but 200 or an empty body.</summary>
    internal async Task<long> Scrape(Uri uri)
    {
        using var response = await _client.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        await using var body = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
        var length = 0L;
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            int read;
            while ((read = await body.ReadAsync(buffer).ConfigureAwait(false)) > 0)
            {
                length += read;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }

        return length > 0 ? length : throw new InvalidOperationException($"{uri} answered with an empty body.");
    }
}
