using Metrics.Backends.SharedMemory;

namespace Metrics.SharedMemory.Tests;

/// <summary>A fresh store file per test, shut down and deleted afterwards, and the families the worker writes.</summary>
internal sealed class Store : IDisposable
{
    public static readonly MetricDescriptor Counter = new("shm_requests_total", "Requests.", MetricType.Counter, ["method", "path"]);
    public static readonly MetricDescriptor Histogram = new("shm_latency_seconds", "Latency.", MetricType.Histogram, ["method"], buckets: [0.5, double.PositiveInfinity]);
    public static readonly MetricDescriptor Summary = new("shm_size_bytes", "Sizes.", MetricType.Summary, ["method"]);

    public Store(IDictionary<string, string?>? settings = null, string? filePath = null)
    {
        var directory = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        FilePath = filePath ?? Path.Combine(directory, $"metrics-test-{Guid.NewGuid():N}.store");
        var values = new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>()) { ["Path"] = FilePath };
        Config = new BackendConfig(values);
    }

    public string FilePath { get; }

    /// <summary>The store at <paramref name="filePath"/>, made by someone else; deleted afterwards all the same.</summary>
    public static Store At(string filePath) => new(null, filePath);

    public BackendConfig Config { get; }

    /// <summary>The store as this process has mapped it (opens it on first use).</summary>
    public SharedMemoryStore Mapped => SharedMemoryStore.For(Config);

    public static MetricDescriptor Gauge(GaugeAggregation mode) =>
        mode is GaugeAggregation.PerProcess or GaugeAggregation.LivePerProcess
            ? new($"shm_gauge_{mode.ToString().ToLowerInvariant()}", "A gauge.", MetricType.Gauge, ["pid"], gaugeAggregation: mode)
            : new($"shm_gauge_{mode.ToString().ToLowerInvariant()}", "A gauge.", MetricType.Gauge, gaugeAggregation: mode);

    public SharedMemoryBackend Create(MetricDescriptor metric, HistogramBucket? bucket = null) => new(Config, metric, bucket);

    public IReadOnlyList<CollectedValue> Collect(MetricDescriptor family) => CollectAll(family)[0];

    // The store is memory, so the collection completes synchronously.
    public IReadOnlyList<CollectedValue>[] CollectAll(params MetricDescriptor[] families)
    {
        var collected = SharedMemoryBackend.CollectAsync(Config, families, CancellationToken.None);
        Assert.True(collected.IsCompletedSuccessfully);
        return collected.Result!;
    }

    public double Single(MetricDescriptor family, HistogramBucket? bucket = null) =>
        Assert.Single(Collect(family), v => v.Bucket == bucket).Value;

    /// <summary>Releases the store as the host does: this process's slot is freed and the next use opens it afresh.</summary>
    public void Shutdown()
    {
        // SharedMemory's shutdown completes synchronously.
        var done = SharedMemoryBackend.ShutdownAsync(Config, CancellationToken.None);
        Assert.True(done.IsCompletedSuccessfully);
    }

    /// <summary>Releases the store (so the stores of many tests do not pile up in this process), then deletes its file.</summary>
    public void Dispose()
    {
        Shutdown();
        File.Delete(FilePath);
    }
}
