using System.Globalization;
using Metrics.Backends.Redis;
using Metrics.Backends.SharedMemory;
using Metrics.Tests;

namespace Metrics.Benchmarks.SharedBackends;

/// <summary>Selects the shared backends the way an application does, on a private Redis server or store file.</summary>
internal static class SharedBackendSetup
{
    /// <summary>Set by the benchmark host so child processes (BenchmarkDotNet's and ours) can start workers from the host's build.</summary>
    public const string HostAssemblyVariable = "METRICS_BENCHMARKS_HOST";

    public static ConfiguredBackend Redis(string connectionString, string keyPrefix, string? flushInterval = null, string? operationTimeout = null)
    {
        var values = new Dictionary<string, string?>
        {
            ["ConnectionString"] = connectionString,
            ["KeyPrefix"] = keyPrefix,
        };
        if (flushInterval is not null)
        {
            values["FlushInterval"] = flushInterval;
        }

        if (operationTimeout is not null)
        {
            values["OperationTimeout"] = operationTimeout;
        }

        return ConfiguredBackend.Create<RedisBackend>(new BackendConfig(values), "Redis");
    }

    public static ConfiguredBackend SharedMemory(string path) =>
        ConfiguredBackend.Create<SharedMemoryBackend>(new BackendConfig(new Dictionary<string, string?> { ["Path"] = path }), "SharedMemory");

    /// <summary>A store path nobody else uses: on tmpfs where there is one, as in production.</summary>
    public static string TempStorePath() =>
        Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), "metrics-bench-" + Guid.NewGuid().ToString("N") + ".store");

    /// <summary>Starts this program as a worker (<c>shared worker ...</c>).</summary>
    public static ChildProcess StartWorker(params string[] args)
    {
        var assembly = Environment.GetEnvironmentVariable(HostAssemblyVariable) is { Length: > 0 } host && File.Exists(host)
            ? host
            : typeof(SharedBackendSetup).Assembly.Location;
        if (!File.Exists(Path.ChangeExtension(assembly, ".runtimeconfig.json")))
        {
            throw new InvalidOperationException(
                $"Cannot start a worker process from {assembly}: it has no runtimeconfig.json next to it. Run these benchmarks with 'Metrics.Benchmarks shared bench', which tells child processes where the host build is.");
        }

        return ChildProcess.StartDotnet(assembly, ["shared", "worker", .. args]);
    }

    /// <summary>Sums the samples of <paramref name="sampleName"/> (exact name, before any label block) in a text scrape.</summary>
    public static (int Samples, double Sum) SumSamples(string scrape, string sampleName)
    {
        var samples = 0;
        var sum = 0.0;
        foreach (var line in scrape.Split('\n'))
        {
            if (line.Length > sampleName.Length && line.StartsWith(sampleName, StringComparison.Ordinal) && line[sampleName.Length] is '{' or ' ')
            {
                samples++;
                sum += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return (samples, sum);
    }

    public static async Task<string> ScrapeTextAsync(MetricRegistry registry)
    {
        using var stream = new MemoryStream();
        await registry.WriteAsync(stream, ExpositionFormat.PrometheusText).ConfigureAwait(false);
        return System.Text.Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
    }
}
