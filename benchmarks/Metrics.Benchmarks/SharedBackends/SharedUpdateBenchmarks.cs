using BenchmarkDotNet.Attributes;
using Metrics.Tests;

namespace Metrics.Benchmarks.SharedBackends;

/// <summary>
/// One metric per backend, created through the public API in a registry on that backend. Each case sets up only
/// its own backend, since BenchmarkDotNet runs every case in its own process.
/// </summary>
public abstract class SharedUpdateBenchmark
{
    private RedisServer? _redis;
    private ConfiguredBackend? _redisBackend;
    private string? _storePath;

    [GlobalSetup(Target = "Memory")]
    public void SetupMemory() => Create(new MetricRegistry(backend: ConfiguredBackend.Memory));

    [GlobalSetup(Target = "Redis")]
    public void SetupRedis()
    {
        _redis = RedisServer.Start(durable: false);
        _redisBackend = SharedBackendSetup.Redis(_redis.ConnectionString, "bench:");
        Create(new MetricRegistry(backend: _redisBackend));
    }

    [GlobalSetup(Target = "SharedMemory")]
    public void SetupSharedMemory()
    {
        _storePath = SharedBackendSetup.TempStorePath();
        Create(new MetricRegistry(backend: SharedBackendSetup.SharedMemory(_storePath)));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        // Flushed while the server still runs, so the exit flush does not wait for an unreachable Redis.
        _redisBackend?.Flush();
        // Released before the store file is deleted: an open store recreates a deleted file at its next identity check.
        ConfiguredBackend.ShutdownAllAsync().Wait(TimeSpan.FromSeconds(30));
        _redis?.Dispose();
        if (_storePath is not null)
        {
            File.Delete(_storePath);
        }
    }

    protected abstract void Create(MetricRegistry registry);
}

/// <summary>Counter increment on the caller's thread: Memory against the shared backends (targets: Redis &lt;= 3x, SharedMemory &lt;= 2x, 0 B).</summary>
[MemoryDiagnoser]
public class SharedCounterInc : SharedUpdateBenchmark
{
    private Counter _counter = null!;

    [Benchmark(Baseline = true)]
    public void Memory() => _counter.Inc();

    [Benchmark]
    public void Redis() => _counter.Inc();

    [Benchmark]
    public void SharedMemory() => _counter.Inc();

    protected override void Create(MetricRegistry registry) => _counter = new Counter("requests_total", "Requests.", registry: registry);
}

/// <summary>Histogram observation with the default buckets (target: SharedMemory &lt;= 2x Memory, 0 B).</summary>
[MemoryDiagnoser]
public class SharedHistogramObserve : SharedUpdateBenchmark
{
    private Histogram _histogram = null!;
    private uint _next;

    [Benchmark(Baseline = true)]
    public void Memory() => _histogram.Observe(NextValue());

    [Benchmark]
    public void Redis() => _histogram.Observe(NextValue());

    [Benchmark]
    public void SharedMemory() => _histogram.Observe(NextValue());

    protected override void Create(MetricRegistry registry) => _histogram = new Histogram("latency_seconds", "Latency.", registry: registry);

    // Values in different buckets, as in the peer comparison, so the bucket search is not one predicted branch.
    // Unsigned, because a run makes more than int.MaxValue calls and a wrapped int gives a negative index.
    private double NextValue() => SeriesData.Observations[_next++ % (uint)SeriesData.Observations.Length];
}
