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
/// Ours is a minimal HttpListener serving <see cref="MetricRegistry.WriteAsync"/> (see <see cref="OurListenerServer"/>).
/// OpenTelemetry's response cache is switched off so that every request collects and serializes.
/// </summary>
[MemoryDiagnoser]
public class HttpScrape11kSeries
{
    private Prom.IMetricServer _prometheusNetServer = null!;
    private OurListenerServer _ourServer = null!;
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

        port = Peers.FreeLoopbackPort();
        _ourServer = new OurListenerServer(SeriesData.OurScrapeRegistry(), port);
        _ourUri = new Uri($"http://127.0.0.1:{port}/metrics");

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

/// <summary>
/// A minimal standalone server for our registry: an HttpListener on 127.0.0.1 answering every request with a scrape
/// in the negotiated format, one request at a time. It stands in for a standalone metric server until Core ships one.
/// </summary>
internal sealed class OurListenerServer : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly MetricRegistry _registry;
    private readonly MemoryStream _body = new();
    private readonly Task _loop;

    public OurListenerServer(MetricRegistry registry, int port)
    {
        _registry = registry;
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/metrics/");
        _listener.Start();
        _loop = Task.Run(ServeAsync);
    }

    public void Dispose()
    {
        _listener.Stop();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // Stopping the listener faults the pending GetContextAsync; that is the way out of the loop.
        }

        _listener.Close();
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception) when (!_listener.IsListening)
            {
                return;
            }

            var response = context.Response;
            try
            {
                var format = Exposition.Negotiate(context.Request.Headers["Accept"]);
                response.ContentType = Exposition.ContentType(format);

                // With a known length HttpListener sends the body as is, where a chunked response copies every write.
                // It still copies the first write into the buffer holding the headers, so that one is kept small.
                _body.SetLength(0);
                await _registry.WriteAsync(_body, format).ConfigureAwait(false);
                response.ContentLength64 = _body.Length;
                var body = _body.GetBuffer().AsMemory(0, (int)_body.Length);
                var first = Math.Min(body.Length, 4096);
                await response.OutputStream.WriteAsync(body[..first]).ConfigureAwait(false);
                await response.OutputStream.WriteAsync(body[first..]).ConfigureAwait(false);
            }
            catch (Exception)
            {
                response.StatusCode = 500;
            }
            finally
            {
                response.Close();
            }
        }
    }
}
