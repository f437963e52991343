using System.Globalization;
using Metrics.Configuration;
using Metrics.Hosting.Worker;
using Metrics.Tests;

namespace Metrics.Hosting.Tests;

/// <summary>
/// A million seeded log-normal latencies observed into a native histogram (in this process on Memory, or by four real
/// worker processes on SharedMemory or Redis), scraped over protobuf by a real Prometheus with native histograms:
/// PromQL's count and sum are exact and its 0.99 quantile is within the schema's bucket width of the true one.
/// </summary>
public sealed class NativeHistogramAccuracyTests : IDisposable
{
    private const int Workers = 4;

    private readonly string _folder = Directory.CreateTempSubdirectory("metrics-native-accuracy-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task Memory_in_process()
    {
        await using var registry = new MetricRegistry();
        NativeAccuracy.ObservePart(NativeAccuracy.Create(registry), NativeAccuracy.Generate(), part: 0, parts: 1);
        await AssertPrometheusAgreesAsync(registry, () => "(in process)");
    }

    [Fact]
    public async Task SharedMemory_four_processes()
    {
        var backendConfig = new Dictionary<string, string> { ["Path"] = Path.Combine(_folder, "native.store") };
        var workers = RunWorkers("SharedMemory", backendConfig);
        await using var registry = new MetricRegistry(backend: Load("SharedMemory", backendConfig));
        await AssertPrometheusAgreesAsync(registry, () => workers);
    }

    [Fact]
    public async Task Redis_four_processes()
    {
        using var redis = RedisServer.Start(durable: false);
        var backendConfig = new Dictionary<string, string>
        {
            ["ConnectionString"] = redis.ConnectionString,
            ["KeyPrefix"] = $"native-{Guid.NewGuid():N}:",
        };
        var workers = RunWorkers("Redis", backendConfig);
        await using var registry = new MetricRegistry(backend: Load("Redis", backendConfig));
        await AssertPrometheusAgreesAsync(registry, () => $"{workers}\nredis:\n{redis.Log}");
    }

    /// <summary>
    /// Serves <paramref name="registry"/> (with the workload's histogram declared on it, as the serving process of a
    /// deployment declares its metrics) to a real Prometheus and checks its answers against the samples themselves.
    /// </summary>
    private async Task AssertPrometheusAgreesAsync(MetricRegistry registry, Func<string> diagnostics)
    {
        _ = NativeAccuracy.Create(registry);
        var samples = NativeAccuracy.Generate();
        var sum = samples.Sum();
        Assert.True(sum < Math.Pow(2, 33), "The samples' total must stay below 2^33 s for every partial sum to be exact.");
        var sorted = samples.Order().ToArray();

        // Prometheus looks for the bucket holding the sample of rank q × count (1-based): the nearest-rank quantile.
        var trueP99 = sorted[(int)Math.Ceiling(0.99 * sorted.Length) - 1];

        await using var server = new MetricServer(0, registry: registry).Start();
        using var prometheus = PrometheusProcess.Start(_folder, server.Url, nativeHistograms: true);

        // histogram_count of the bare name only has a value when the native histogram arrived, which takes protobuf.
        var count = await prometheus.WaitForOneAsync($"histogram_count({NativeAccuracy.Name})", diagnostics);
        var at = DateTimeOffset.UtcNow;
        Assert.Equal(NativeAccuracy.Samples, count);
        Assert.Equal(sum, Single(await prometheus.QueryAsync($"histogram_sum({NativeAccuracy.Name})", at)));

        // The estimate lies in the bucket that holds the true quantile; a schema-3 bucket spans a factor of 2^(1/8).
        var width = Math.Pow(2, Math.Pow(2, -NativeAccuracy.Schema));
        var p99 = Single(await prometheus.QueryAsync($"histogram_quantile(0.99, {NativeAccuracy.Name})", at));
        TestContext.Current.TestOutputHelper?.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"count {count}, sum {sum:R}, p99 {p99:R} (true {trueP99:R}, ratio {p99 / trueP99:F4}, allowed {1 / width:F4}..{width:F4})"));
        Assert.True(p99 >= trueP99 / width && p99 <= trueP99 * width,
            string.Create(CultureInfo.InvariantCulture, $"p99 {p99} is not within a factor {width:F4} of the true {trueP99}."));
    }

    private static double Single(double[] values)
    {
        Assert.Single(values);
        return values[0];
    }

    /// <summary>Runs the workers, each observing a quarter of the samples through its own host, to their end.</summary>
    private static string RunWorkers(string backend, IReadOnlyDictionary<string, string> backendConfig)
    {
        var environment = new Dictionary<string, string?>
        {
            ["Metrics__Backend"] = backend,
            ["Metrics__PluginsPath"] = Plugins,
            ["DOTNET_ENVIRONMENT"] = "Production",
        };
        foreach (var (key, value) in backendConfig)
        {
            environment["Metrics__BackendConfig__" + key] = value;
        }

        var workers = Enumerable.Range(0, Workers)
            .Select(part => ChildProcess.StartDotnet(WorkerDll(), ["native", part.ToString(CultureInfo.InvariantCulture), Workers.ToString(CultureInfo.InvariantCulture)], environment))
            .ToArray();
        try
        {
            // Stopping the host flushes the backend before "stopped": the values are in the store once it is printed.
            foreach (var worker in workers)
            {
                Assert.Contains("stopped", worker.WaitForSuccess(), StringComparison.Ordinal);
            }

            return string.Join('\n', workers.Select(w => w.Output));
        }
        finally
        {
            foreach (var worker in workers)
            {
                worker.Dispose();
            }
        }
    }

    private static ConfiguredBackend Load(string backend, IReadOnlyDictionary<string, string> backendConfig)
    {
        var options = new MetricsOptions { Backend = backend, PluginsPath = Plugins };
        foreach (var (key, value) in backendConfig)
        {
            options.BackendConfig[key] = value;
        }

        return MetricsConfiguration.Load(options);
    }

    private static string WorkerDll()
    {
        // bin/<Configuration>/net10.0 of this project mirrors the worker's.
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var repo = output.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
        return Path.Combine(repo, "tests", "Metrics.Hosting.Worker", "bin", output.Parent.Name, output.Name, "Metrics.Hosting.Worker.dll");
    }

    private static string Plugins => Path.Combine(Path.GetDirectoryName(WorkerDll())!, "plugins");
}
