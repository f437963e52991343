using BenchmarkDotNet.Attributes;
using Prom = Prometheus;

namespace Metrics.Benchmarks;

/// <summary>
/// Creating new labelled series: each invocation makes a fresh counter family and <see cref="Series"/> new label sets
/// in it, each incremented once. Time and bytes are per series (the family's own creation is spread over them).
/// </summary>
[MemoryDiagnoser]
public class NewLabelledSeries
{
    private const int Series = 1_000;

    [GlobalSetup]
    public void Setup() => _ = SeriesData.Endpoints.Length;

    [Benchmark(Baseline = true, Description = "prometheus-net", OperationsPerInvoke = Series)]
    public object PrometheusNetCreate()
    {
        var counter = Prom.Metrics.WithCustomRegistry(Peers.PrometheusNetRegistry()).CreateCounter("requests_total", "Requests.", ["endpoint", "method"]);
        for (var i = 0; i < Series; i++)
        {
            counter.WithLabels(SeriesData.Endpoints[i], "GET").Inc(1);
        }

        return counter;
    }

    [Benchmark(Description = "Metrics (Memory)", OperationsPerInvoke = Series)]
    public object OursCreate()
    {
        var counter = new Counter("requests_total", "Requests.", ["endpoint", "method"], registry: Peers.OurRegistry());
        for (var i = 0; i < Series; i++)
        {
            counter.Labels(SeriesData.Endpoints[i], "GET").Inc();
        }

        return counter;
    }
}
