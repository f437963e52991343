using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Prom = Prometheus;

namespace Metrics.Benchmarks;

/// <summary>Sets up the peer libraries the same way in every benchmark.</summary>
internal static class Peers
{
    private static readonly Lock SuppressLock = new();
    private static bool _suppressed;

    /// <summary>
    /// A fresh prometheus-net registry. The default metrics are suppressed first: they would otherwise start a
    /// MeterAdapter that listens to every System.Diagnostics.Metrics instrument, the OpenTelemetry ones included.
    /// </summary>
    public static Prom.CollectorRegistry PrometheusNetRegistry()
    {
        lock (SuppressLock)
        {
            if (!_suppressed)
            {
                Prom.Metrics.SuppressDefaultMetrics();
                _suppressed = true;
            }
        }

        return Prom.Metrics.NewCustomRegistry();
    }

    /// <summary>A fresh registry of ours on the Memory backend.</summary>
    // No cardinality limit: the peers have none, and the footprint and scrape benchmarks hold 10,000 series per family.
    public static MetricRegistry OurRegistry() => new(backend: ConfiguredBackend.Memory) { CardinalityLimit = int.MaxValue };

    /// <summary>
    /// A real MeterProvider listening to <paramref name="meterName"/>, with a periodic reader whose exporter
    /// discards what it gets: measurements are aggregated exactly as in production, and nothing is exported while
    /// the benchmark runs.
    /// </summary>
    public static MeterProvider OpenTelemetryProvider(string meterName, int cardinalityLimit = 2000) =>
        Sdk.CreateMeterProviderBuilder()
            .AddMeter(meterName)
            .AddView(_ => new MetricStreamConfiguration { CardinalityLimit = cardinalityLimit })
            .AddReader(new PeriodicExportingMetricReader(new NullExporter(), exportIntervalMilliseconds: 3_600_000))
            .Build()!;

    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago.</summary>
    public static int FreeLoopbackPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private sealed class NullExporter : BaseExporter<OpenTelemetry.Metrics.Metric>
    {
        public override ExportResult Export(in Batch<OpenTelemetry.Metrics.Metric> batch) => ExportResult.Success;
    }
}

/// <summary>Label values shared by the benchmarks that use many series, made once so no benchmark times string building.</summary>
internal static class SeriesData
{
    public const int CounterSeries = 10_000;
    public const int HistogramSeries = 1_000;

    public static readonly string[] Endpoints = Enumerable.Range(0, CounterSeries).Select(i => $"/api/v1/items/{i}").ToArray();

    public static readonly double[] Observations = [0.003, 0.02, 0.07, 0.3, 1.2, 4, 12];

    /// <summary>The <c>method</c> label's value for series <paramref name="i"/>.</summary>
    public static string Method(int i) => (i % 4) switch
    {
        0 => "GET",
        1 => "POST",
        2 => "PUT",
        _ => "DELETE",
    };

    /// <summary>Fills one counter family with 10,000 label sets and one histogram with 1,000, in our library.</summary>
    public static MetricRegistry OurScrapeRegistry()
    {
        var registry = Peers.OurRegistry();
        var counter = new Counter("http_requests_total", "Requests served.", ["endpoint", "method"], registry: registry);
        var histogram = new Histogram("http_request_duration_seconds", "Request latency.", ["endpoint"], registry: registry);
        for (var i = 0; i < CounterSeries; i++)
        {
            counter.Labels(Endpoints[i], Method(i)).Inc(i + 1);
        }

        for (var i = 0; i < HistogramSeries; i++)
        {
            var child = histogram.Labels(Endpoints[i]);
            foreach (var value in Observations)
            {
                child.Observe(value * (1 + (i % 7)));
            }
        }

        return registry;
    }

    /// <summary>The same series in prometheus-net.</summary>
    public static Prom.CollectorRegistry PrometheusNetScrapeRegistry()
    {
        var registry = Peers.PrometheusNetRegistry();
        var factory = Prom.Metrics.WithCustomRegistry(registry);
        var counter = factory.CreateCounter("http_requests_total", "Requests served.", ["endpoint", "method"]);
        var histogram = factory.CreateHistogram("http_request_duration_seconds", "Request latency.", ["endpoint"]);
        for (var i = 0; i < CounterSeries; i++)
        {
            counter.WithLabels(Endpoints[i], Method(i)).Inc(i + 1);
        }

        for (var i = 0; i < HistogramSeries; i++)
        {
            var child = histogram.WithLabels(Endpoints[i]);
            foreach (var value in Observations)
            {
                child.Observe(value * (1 + (i % 7)));
            }
        }

        return registry;
    }

    /// <summary>The same series as OpenTelemetry instruments on <paramref name="meter"/>.</summary>
    public static void RecordOpenTelemetry(Meter meter)
    {
        var counter = meter.CreateCounter<long>("http_requests", description: "Requests served.");
        var histogram = meter.CreateHistogram<double>("http_request_duration", unit: "s", description: "Request latency.");
        for (var i = 0; i < CounterSeries; i++)
        {
            counter.Add(i + 1, new KeyValuePair<string, object?>("endpoint", Endpoints[i]), new KeyValuePair<string, object?>("method", Method(i)));
        }

        for (var i = 0; i < HistogramSeries; i++)
        {
            foreach (var value in Observations)
            {
                histogram.Record(value * (1 + (i % 7)), new KeyValuePair<string, object?>("endpoint", Endpoints[i]));
            }
        }
    }
}
