using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using OpenTelemetry.Metrics;
using Prom = Prometheus;

namespace Metrics.Benchmarks;

/// <summary>
/// Two threads incrementing one unlabelled counter at once. Each invocation runs <see cref="OpsPerThread"/> increments
/// on the benchmark thread and as many on a second, long-lived thread; the reported time is wall-clock time per
/// increment over both threads (so perfect scaling on two cores halves the single-thread time).
/// </summary>
[MemoryDiagnoser]
public class TwoThreadsContending
{
    private const int OpsPerThread = 100_000;

    private Prom.Counter _prometheusNet = null!;
    private Counter _ours = null!;
    private Counter<long> _openTelemetry = null!;
    private MeterProvider? _provider;
    private Meter _meter = null!;
    private Thread _worker = null!;
    private readonly SemaphoreSlim _start = new(0);
    private readonly SemaphoreSlim _done = new(0);
    private Action _work = static () => { };
    private volatile bool _stop;

    [GlobalSetup]
    public void Setup()
    {
        _prometheusNet = Prom.Metrics.WithCustomRegistry(Peers.PrometheusNetRegistry()).CreateCounter("requests_total", "Requests.");
        _ours = new Counter("requests_total", "Requests.", registry: Peers.OurRegistry());
        _provider = Peers.OpenTelemetryProvider("bench.contention");
        _meter = new Meter("bench.contention");
        _openTelemetry = _meter.CreateCounter<long>("requests");
        _worker = new Thread(WorkerLoop) { IsBackground = true, Name = "second incrementer" };
        _worker.Start();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stop = true;
        _start.Release();
        _worker.Join();
        _meter.Dispose();
        _provider?.Dispose();
    }

    [Benchmark(Baseline = true, Description = "prometheus-net", OperationsPerInvoke = 2 * OpsPerThread)]
    public void PrometheusNetInc() => OnBothThreads(IncPrometheusNet);

    [Benchmark(Description = "Metrics (Memory)", OperationsPerInvoke = 2 * OpsPerThread)]
    public void OursInc() => OnBothThreads(IncOurs);

    [Benchmark(Description = "OpenTelemetry", OperationsPerInvoke = 2 * OpsPerThread)]
    public void OpenTelemetryAdd() => OnBothThreads(AddOpenTelemetry);

    private void IncPrometheusNet()
    {
        var counter = _prometheusNet;
        for (var i = 0; i < OpsPerThread; i++)
        {
            counter.Inc(1);
        }
    }

    private void IncOurs()
    {
        var counter = _ours;
        for (var i = 0; i < OpsPerThread; i++)
        {
            counter.Inc();
        }
    }

    private void AddOpenTelemetry()
    {
        var counter = _openTelemetry;
        for (var i = 0; i < OpsPerThread; i++)
        {
            counter.Add(1);
        }
    }

    private void OnBothThreads(Action work)
    {
        _work = work;
        _start.Release();
        work();
        _done.Wait();
    }

    private void WorkerLoop()
    {
        while (true)
        {
            _start.Wait();
            if (_stop)
            {
                return;
            }

            _work();
            _done.Release();
        }
    }
}
