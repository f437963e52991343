using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using Metrics.Extensions.Hosting;
using OpenTelemetry.Metrics;
using Prom = Prometheus;

namespace Metrics.Benchmarks;

/// <summary>
/// <c>Counter&lt;long&gt;.Add(1, tag, tag)</c> on an existing series, through each library's System.Diagnostics.Metrics
/// listener: our MeterBridge (into the Memory backend), the OpenTelemetry SDK, and prometheus-net's MeterAdapter. Each
/// library listens to its own meter only, so every call reaches exactly one listener.
/// </summary>
[MemoryDiagnoser]
public class BridgedCounterAdd
{
    private static readonly KeyValuePair<string, object?> Method = new("http.request.method", "GET");
    private static readonly KeyValuePair<string, object?> Status = new("http.response.status_code", (object)200);

    private readonly Meter _oursMeter = new("bench.bridge.ours");
    private readonly Meter _openTelemetryMeter = new("bench.bridge.otel");
    private readonly Meter _prometheusNetMeter = new("bench.bridge.promnet");
    private MeterBridge? _bridge;
    private MeterProvider? _provider;
    private IDisposable? _adapter;
    private Counter<long> _ours = null!;
    private Counter<long> _openTelemetry = null!;
    private Counter<long> _prometheusNet = null!;

    [GlobalSetup]
    public void Setup()
    {
        var options = new MeterBridgeOptions();
        options.IncludeMeters.Add(_oursMeter.Name);
        _bridge = new MeterBridge(Peers.OurRegistry(), options).Start();
        _provider = Peers.OpenTelemetryProvider(_openTelemetryMeter.Name);
        var registry = Peers.PrometheusNetRegistry();
        _adapter = Prom.MeterAdapter.StartListening(new Prom.MeterAdapterOptions
        {
            Registry = registry,
            MetricFactory = Prom.Metrics.WithCustomRegistry(registry),
            InstrumentFilterPredicate = instrument => instrument.Meter.Name == _prometheusNetMeter.Name,
        });
        _ours = _oursMeter.CreateCounter<long>("http.requests");
        _openTelemetry = _openTelemetryMeter.CreateCounter<long>("http.requests");
        _prometheusNet = _prometheusNetMeter.CreateCounter<long>("http.requests");

        // The series exists before timing starts: the benchmark measures recording on it, not creating it.
        PrometheusNetAdd();
        OursAdd();
        OpenTelemetryAdd();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _bridge?.Dispose();
        _provider?.Dispose();
        _adapter?.Dispose();
        _oursMeter.Dispose();
        _openTelemetryMeter.Dispose();
        _prometheusNetMeter.Dispose();
    }

    [Benchmark(Baseline = true, Description = "prometheus-net MeterAdapter")]
    public void PrometheusNetAdd() => _prometheusNet.Add(1, Method, Status);

    [Benchmark(Description = "Metrics MeterBridge (Memory)")]
    public void OursAdd() => _ours.Add(1, Method, Status);

    [Benchmark(Description = "OpenTelemetry SDK")]
    public void OpenTelemetryAdd() => _openTelemetry.Add(1, Method, Status);
}
