using System.Diagnostics;
using System.Text;
using Metrics.Configuration;

namespace Metrics.Hosting.Tests;

/// <summary>Real child processes, each a generic host with AddMetrics on one shared store (SharedMemory or Redis).</summary>
public sealed class MultiProcessHostingTests : IDisposable
{
    private readonly string _store = Path.Combine(Path.GetTempPath(), $"metrics-hosting-{Guid.NewGuid():N}.shm");

    public void Dispose()
    {
        foreach (var file in Directory.EnumerateFiles(Path.GetDirectoryName(_store)!, Path.GetFileName(_store) + "*"))
        {
            File.Delete(file);
        }
    }

    private static string WorkerDll()
    {
        // bin/<Configuration>/net10.0 of this project mirrors the worker's.
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var repo = output.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
        var dll = Path.Combine(repo, "tests", "Metrics.Hosting.Worker", "bin", output.Parent.Name, output.Name, "Metrics.Hosting.Worker.dll");
        Assert.True(File.Exists(dll), $"The hosting worker was not built: {dll}");
        return dll;
    }

    private static string Plugins => Path.Combine(Path.GetDirectoryName(WorkerDll())!, "plugins");

    private Task<(int Exit, string Output)> RunWorkerAsync(string backend, params string[] args) =>
        RunWorkerAsync(backend, new Dictionary<string, string> { ["Metrics__BackendConfig__Path"] = _store }, args);

    private static async Task<(int Exit, string Output)> RunWorkerAsync(string backend, IReadOnlyDictionary<string, string> backendConfig, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet", [WorkerDll(), .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["Metrics__Backend"] = backend;
        start.Environment["Metrics__PluginsPath"] = Plugins;
        foreach (var (key, value) in backendConfig)
        {
            start.Environment[key] = value;
        }

        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        try
        {
            await process.WaitForExitAsync(TestContext.Current.CancellationToken);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        return (process.ExitCode, new StringBuilder().Append(await stdout).Append(await stderr).ToString());
    }

    [Fact]
    public async Task A_bridged_Counter_and_an_observable_counter_sum_exactly_over_three_hosted_processes()
    {
        const int PerProcess = 100_000;
        var runs = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => RunWorkerAsync("SharedMemory", "count", PerProcess.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        foreach (var (exit, output) in runs)
        {
            Assert.True(exit == 0 && output.Contains("stopped", StringComparison.Ordinal), $"A worker failed ({exit}):\n{output}");
        }

        // This process reads the store as the serving process of a deployment would: same definitions, same backend.
        var options = new MetricsOptions { Backend = "SharedMemory", PluginsPath = Plugins };
        options.BackendConfig["Path"] = _store;
        var backend = MetricsConfiguration.Load(options);
        await using var registry = new MetricRegistry(backend: backend);
        var requests = new Counter("worker_requests_total", "Requests the worker handled.", ["code", "route"], registry: registry);
        var observed = new Counter("worker_observed_total", "Items the worker observed.", registry: registry);
        var text = registry.Render();
        Assert.Contains("worker_requests_total{code=\"200\",route=\"/work\"} 300000\n", text, StringComparison.Ordinal);
        Assert.Contains("worker_observed_total 300000\n", text, StringComparison.Ordinal);
        Assert.Equal(0, requests.Labels("404", "/work").Value);
        Assert.NotNull(observed);
    }

    [Fact]
    public async Task A_bridged_Counter_and_an_observable_counter_sum_exactly_over_three_hosted_processes_on_Redis()
    {
        using var redis = Metrics.Tests.RedisServer.Start(durable: false);
        var prefix = $"hosting-{Guid.NewGuid():N}:";
        var config = RedisConfig(redis, prefix);
        const int PerProcess = 100_000;
        var runs = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => RunWorkerAsync("Redis", config, "count", PerProcess.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        foreach (var (exit, output) in runs)
        {
            Assert.True(exit == 0 && output.Contains("stopped", StringComparison.Ordinal), $"A worker failed ({exit}):\n{output}");
        }

        var text = await ReadRedisAsync(redis, prefix);
        Assert.Contains("worker_requests_total{code=\"200\",route=\"/work\"} 300000\n", text, StringComparison.Ordinal);
        Assert.Contains("worker_observed_total 300000\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stopping_the_host_right_after_10000_increments_leaves_exactly_10000_in_Redis()
    {
        using var redis = Metrics.Tests.RedisServer.Start(durable: false);
        var prefix = $"stop-{Guid.NewGuid():N}:";
        var config = RedisConfig(redis, prefix);

        // No flush on the interval before the host stops: only the host's stop can have written the increments.
        config["Metrics__BackendConfig__FlushInterval"] = "10m";
        var (exit, output) = await RunWorkerAsync("Redis", config, "count", "10000");
        Assert.True(exit == 0 && output.Contains("stopped", StringComparison.Ordinal), $"The worker failed ({exit}):\n{output}");

        Assert.Contains("worker_requests_total{code=\"200\",route=\"/work\"} 10000\n", await ReadRedisAsync(redis, prefix), StringComparison.Ordinal);
    }

    private static Dictionary<string, string> RedisConfig(Metrics.Tests.RedisServer redis, string prefix) => new()
    {
        ["Metrics__BackendConfig__ConnectionString"] = redis.ConnectionString,
        ["Metrics__BackendConfig__KeyPrefix"] = prefix,
    };

    /// <summary>Reads the store as the serving process of a deployment would: same definitions, same backend and settings.</summary>
    private static async Task<string> ReadRedisAsync(Metrics.Tests.RedisServer redis, string prefix)
    {
        var options = new MetricsOptions { Backend = "Redis", PluginsPath = Plugins };
        options.BackendConfig["ConnectionString"] = redis.ConnectionString;
        options.BackendConfig["KeyPrefix"] = prefix;
        var backend = MetricsConfiguration.Load(options);
        await using var registry = new MetricRegistry(backend: backend);
        _ = new Counter("worker_requests_total", "Requests the worker handled.", ["code", "route"], registry: registry);
        _ = new Counter("worker_observed_total", "Items the worker observed.", registry: registry);
        using var body = new MemoryStream();
        await registry.WriteAsync(body, cancellationToken: TestContext.Current.CancellationToken);
        return Encoding.UTF8.GetString(body.ToArray());
    }

    [Fact]
    public async Task A_hosted_process_with_a_bad_backend_name_exits_non_zero_with_the_message()
    {
        var (exit, output) = await RunWorkerAsync("NoSuchBackend", "start");
        Assert.NotEqual(0, exit);
        Assert.Contains("Unknown metrics backend 'NoSuchBackend' (Metrics:Backend)", output, StringComparison.Ordinal);
    }
}
