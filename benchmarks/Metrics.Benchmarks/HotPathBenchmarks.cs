using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using OpenTelemetry.Metrics;
using Prom = Prometheus;

namespace Metrics.Benchmarks;

/// <summary>Shared setup of the single-threaded update benchmarks: one registry or provider per library.</summary>
public abstract class HotPathBenchmark
{
    private MeterProvider? _provider;

    protected Prom.IMetricFactory PrometheusNet { get; private set; } = null!;

    protected MetricRegistry Registry { get; private set; } = null!;

    protected Meter Meter { get; private set; } = null!;

    [GlobalSetup]
    public void GlobalSetup()
    {
        PrometheusNet = Prom.Metrics.WithCustomRegistry(Peers.PrometheusNetRegistry());
        Registry = Peers.OurRegistry();
        var meterName = "bench." + GetType().Name;
        _provider = Peers.OpenTelemetryProvider(meterName);
        Meter = new Meter(meterName);
        Setup();
    }

    [GlobalCleanup]
    public void GlobalCleanup()
    {
        Meter.Dispose();
        _provider?.Dispose();
    }

    protected abstract void Setup();
}

[MemoryDiagnoser]
public class CounterInc : HotPathBenchmark
{
    private Prom.Counter _prometheusNet = null!;
    private Counter _ours = null!;
    private Counter<long> _openTelemetry = null!;

    [Benchmark(Baseline = true, Description = "prometheus-net")]
    public void PrometheusNetInc() => _prometheusNet.Inc(1);

    [Benchmark(Description = "Metrics (Memory)")]
    public void OursInc() => _ours.Inc();

    [Benchmark(Description = "OpenTelemetry")]
    public void OpenTelemetryAdd() => _openTelemetry.Add(1);

    protected override void Setup()
    {
        _prometheusNet = PrometheusNet.CreateCounter("requests_total", "Requests.");
        _ours = new Counter("requests_total", "Requests.", registry: Registry);
        _openTelemetry = Meter.CreateCounter<long>("requests");
    }
}

[MemoryDiagnoser]
public class CachedChildInc : HotPathBenchmark
{
    private Prom.Counter.Child _prometheusNet = null!;
    private Counter _ours = null!;

    [Benchmark(Baseline = true, Description = "prometheus-net")]
    public void PrometheusNetInc() => _prometheusNet.Inc(1);

    [Benchmark(Description = "Metrics (Memory)")]
    public void OursInc() => _ours.Inc();

    protected override void Setup()
    {
        _prometheusNet = PrometheusNet.CreateCounter("requests_total", "Requests.", ["method", "status"]).WithLabels("GET", "200");
        _ours = new Counter("requests_total", "Requests.", ["method", "status"], registry: Registry).Labels("GET", "200");
    }
}

[MemoryDiagnoser]
public class LabelLookupInc : HotPathBenchmark
{
    private Prom.Counter _prometheusNet = null!;
    private Counter _ours = null!;
    private Counter<long> _openTelemetry = null!;

    [Benchmark(Baseline = true, Description = "prometheus-net")]
    public void PrometheusNetInc() => _prometheusNet.WithLabels("GET", "200").Inc(1);

    [Benchmark(Description = "Metrics (Memory)")]
    public void OursInc() => _ours.Labels("GET", "200").Inc();

    [Benchmark(Description = "OpenTelemetry")]
    public void OpenTelemetryAdd() =>
        _openTelemetry.Add(1, new KeyValuePair<string, object?>("method", "GET"), new KeyValuePair<string, object?>("status", "200"));

    protected override void Setup()
    {
        _prometheusNet = PrometheusNet.CreateCounter("requests_total", "Requests.", ["method", "status"]);
        _ours = new Counter("requests_total", "Requests.", ["method", "status"], registry: Registry);
        _openTelemetry = Meter.CreateCounter<long>("requests");

        // The series exists before timing starts: the benchmark measures finding it, not creating it.
        PrometheusNetInc();
        OursInc();
        OpenTelemetryAdd();
    }
}

[MemoryDiagnoser]
public class GaugeSet : HotPathBenchmark
{
    private Prom.Gauge _prometheusNet = null!;
    private Gauge _ours = null!;
    private Gauge<double> _openTelemetry = null!;
    private double _value;

    [Benchmark(Baseline = true, Description = "prometheus-net")]
    public void PrometheusNetSet() => _prometheusNet.Set(_value++);

    [Benchmark(Description = "Metrics (Memory)")]
    public void OursSet() => _ours.Set(_value++);

    [Benchmark(Description = "OpenTelemetry")]
    public void OpenTelemetryRecord() => _openTelemetry.Record(_value++);

    protected override void Setup()
    {
        _prometheusNet = PrometheusNet.CreateGauge("queue_length", "Queue length.");
        _ours = new Gauge("queue_length", "Queue length.", registry: Registry);
        _openTelemetry = Meter.CreateGauge<double>("queue_length");
    }
}

[MemoryDiagnoser]
public class HistogramObserve : HotPathBenchmark
{
    private Prom.Histogram _prometheusNet = null!;
    private Histogram _ours = null!;
    private Histogram<double> _openTelemetry = null!;
    private uint _next; // unsigned: a long run makes more than int.MaxValue calls

    [Benchmark(Baseline = true, Description = "prometheus-net")]
    public void PrometheusNetObserve() => _prometheusNet.Observe(NextValue());

    [Benchmark(Description = "Metrics (Memory)")]
    public void OursObserve() => _ours.Observe(NextValue());

    [Benchmark(Description = "OpenTelemetry")]
    public void OpenTelemetryRecord() => _openTelemetry.Record(NextValue());

    protected override void Setup()
    {
        _prometheusNet = PrometheusNet.CreateHistogram("latency_seconds", "Latency.");
        _ours = new Histogram("latency_seconds", "Latency.", registry: Registry);
        _openTelemetry = Meter.CreateHistogram<double>("latency", unit: "s");
    }

    // Cycles through values that land in different buckets, so the bucket search is not one predicted branch.
    private double NextValue() => SeriesData.Observations[(int)(_next++ % (uint)SeriesData.Observations.Length)];
}

[MemoryDiagnoser]
public class SummaryObserve : HotPathBenchmark
{
    private Prom.Summary _prometheusNet = null!;
    private Summary _ours = null!;
    private uint _next; // unsigned: a long run makes more than int.MaxValue calls

    [Benchmark(Baseline = true, Description = "prometheus-net")]
    public void PrometheusNetObserve() => _prometheusNet.Observe(NextValue());

    [Benchmark(Description = "Metrics (Memory)")]
    public void OursObserve() => _ours.Observe(NextValue());

    protected override void Setup()
    {
        _prometheusNet = PrometheusNet.CreateSummary("request_size_bytes", "Request size.");
        _ours = new Summary("request_size_bytes", "Request size.", registry: Registry);
    }

    private double NextValue() => SeriesData.Observations[(int)(_next++ % (uint)SeriesData.Observations.Length)];
}

/// <summary>
/// Histogram observe with an explicit exemplar, both libraries used as their documentation advises: prometheus-net with a
/// cached label pair and a one-use <c>Exemplar.From</c> per observation (its exemplars are consumed), ours with a cached
/// <see cref="Exemplar"/>. The "built per call" rows make the exemplar from a trace id each time, as code tagging each
/// request with its own trace does.
/// </summary>
[MemoryDiagnoser]
public class HistogramObserveExemplar : HotPathBenchmark
{
    private const string TraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    private Prom.Histogram _prometheusNet = null!;
    private Prom.Exemplar.LabelPair _pair;
    private Prom.Exemplar.LabelKey _key;
    private Histogram _ours = null!;
    private Exemplar _exemplar;
    private uint _next;

    [Benchmark(Baseline = true, Description = "prometheus-net, cached pair")]
    public void PrometheusNetObserve() => _prometheusNet.Observe(NextValue(), Prom.Exemplar.From(_pair));

    [Benchmark(Description = "Metrics (Memory), cached exemplar")]
    public void OursObserve() => _ours.Observe(NextValue(), _exemplar);

    [Benchmark(Description = "prometheus-net, built per call")]
    public void PrometheusNetObserveBuilt() => _prometheusNet.Observe(NextValue(), Prom.Exemplar.From(_key.WithValue(TraceId)));

    [Benchmark(Description = "Metrics (Memory), built per call")]
    public void OursObserveBuilt() => _ours.Observe(NextValue(), Exemplar.Of("trace_id", TraceId));

    protected override void Setup()
    {
        _prometheusNet = PrometheusNet.CreateHistogram("latency_seconds", "Latency.");
        _key = Prom.Exemplar.Key("trace_id");
        _pair = _key.WithValue(TraceId);
        _ours = new Histogram("latency_seconds", "Latency.", registry: Registry);
        _exemplar = Exemplar.Of("trace_id", TraceId);
    }

    private double NextValue() => SeriesData.Observations[(int)(_next++ % (uint)SeriesData.Observations.Length)];
}
