using System.Diagnostics.Metrics;
using System.Globalization;
using OpenTelemetry.Metrics;
using Prom = Prometheus;

namespace Metrics.Benchmarks;

/// <summary>
/// Resident bytes per labelled series: the managed heap after a full collection, before and after creating
/// <see cref="CounterSeries"/> counter series and <see cref="HistogramSeries"/> histogram series (default buckets).
/// The label strings exist before the first reading, so only what each library keeps per series is counted.
/// </summary>
internal static class MemoryFootprint
{
    private const int CounterSeries = SeriesData.CounterSeries;
    private const int HistogramSeries = SeriesData.HistogramSeries;

    public static void Run(TextWriter output)
    {
        var rows = new List<(string Library, double Counter, double Histogram)>
        {
            ("prometheus-net 8.2.1", PerSeries(CounterSeries, PrometheusNetCounters), PerSeries(HistogramSeries, PrometheusNetHistograms)),
            ("Metrics (Memory)", PerSeries(CounterSeries, OurCounters), PerSeries(HistogramSeries, OurHistograms)),
            ("OpenTelemetry 1.20.1 *", PerSeries(CounterSeries, OpenTelemetryCounters), PerSeries(HistogramSeries, OpenTelemetryHistograms)),
        };

        var baseline = rows[0];
        output.WriteLine($"Resident memory per labelled series ({CounterSeries:N0} counter series, {HistogramSeries:N0} histogram series with default buckets)");
        output.WriteLine();
        output.WriteLine("| library | bytes per counter series | ratio | bytes per histogram series | ratio |");
        output.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var (library, counter, histogram) in rows)
        {
            output.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"| {library} | {counter:N0} | {counter / baseline.Counter:0.00} | {histogram:N0} | {histogram / baseline.Histogram:0.00} |"));
        }

        output.WriteLine();
        output.WriteLine("* OpenTelemetry preallocates its metric points up to the cardinality limit, set here to the series count.");
    }

    private static double PerSeries(int series, Func<object> create)
    {
        _ = SeriesData.Endpoints.Length;
        var warmup = create();
        GC.KeepAlive(warmup);
        warmup = null;

        var before = GC.GetTotalMemory(forceFullCollection: true);
        var keep = create();
        var after = GC.GetTotalMemory(forceFullCollection: true);
        GC.KeepAlive(keep);
        if (keep is IDisposable disposable)
        {
            disposable.Dispose();
        }

        return (after - before) / (double)series;
    }

    private static object PrometheusNetCounters()
    {
        var counter = Prom.Metrics.WithCustomRegistry(Peers.PrometheusNetRegistry()).CreateCounter("requests_total", "Requests.", ["endpoint", "method"]);
        for (var i = 0; i < CounterSeries; i++)
        {
            counter.WithLabels(SeriesData.Endpoints[i], "GET").Inc(1);
        }

        return counter;
    }

    private static object PrometheusNetHistograms()
    {
        var histogram = Prom.Metrics.WithCustomRegistry(Peers.PrometheusNetRegistry()).CreateHistogram("latency_seconds", "Latency.", ["endpoint"]);
        for (var i = 0; i < HistogramSeries; i++)
        {
            histogram.WithLabels(SeriesData.Endpoints[i]).Observe(0.1);
        }

        return histogram;
    }

    private static object OurCounters()
    {
        var counter = new Counter("requests_total", "Requests.", ["endpoint", "method"], registry: Peers.OurRegistry());
        for (var i = 0; i < CounterSeries; i++)
        {
            counter.Labels(SeriesData.Endpoints[i], "GET").Inc();
        }

        return counter;
    }

    private static object OurHistograms()
    {
        var histogram = new Histogram("latency_seconds", "Latency.", ["endpoint"], registry: Peers.OurRegistry());
        for (var i = 0; i < HistogramSeries; i++)
        {
            histogram.Labels(SeriesData.Endpoints[i]).Observe(0.1);
        }

        return histogram;
    }

    private static object OpenTelemetryCounters() => OpenTelemetry(CounterSeries, (meter, count) =>
    {
        var counter = meter.CreateCounter<long>("requests");
        for (var i = 0; i < count; i++)
        {
            counter.Add(1, new KeyValuePair<string, object?>("endpoint", SeriesData.Endpoints[i]), new KeyValuePair<string, object?>("method", "GET"));
        }
    });

    private static object OpenTelemetryHistograms() => OpenTelemetry(HistogramSeries, (meter, count) =>
    {
        var histogram = meter.CreateHistogram<double>("latency", unit: "s");
        for (var i = 0; i < count; i++)
        {
            histogram.Record(0.1, new KeyValuePair<string, object?>("endpoint", SeriesData.Endpoints[i]));
        }
    });

    private static OpenTelemetrySeries OpenTelemetry(int count, Action<Meter, int> record)
    {
        var name = "bench.memory." + Guid.NewGuid().ToString("N");
        var provider = Peers.OpenTelemetryProvider(name, cardinalityLimit: count + 1);
        var meter = new Meter(name);
        record(meter, count);
        return new OpenTelemetrySeries(provider, meter);
    }

    private sealed class OpenTelemetrySeries(MeterProvider provider, Meter meter) : IDisposable
    {
        public void Dispose()
        {
            meter.Dispose();
            provider.Dispose();
        }
    }
}
