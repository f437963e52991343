using Metrics.Backends.Redis;
using Metrics.Tests;

[assembly: Xunit.AssemblyFixture(typeof(Metrics.Redis.Tests.SharedRedis))]

namespace Metrics.Redis.Tests;

/// <summary>Configurations made by one test, shut down when it ends so no flusher outlives it.</summary>
public abstract class RedisTestBase : IDisposable
{
    private readonly List<BackendConfig> _configs = [];
    private readonly string _prefix = "t" + Guid.NewGuid().ToString("N")[..12] + ":";

    /// <summary>A configuration for <paramref name="connectionString"/> under this test's key prefix.</summary>
    /// <param name="connectionString">Where Redis is.</param>
    /// <param name="instance">Distinct instances get distinct stores, as separate processes would.</param>
    /// <param name="extra">More settings.</param>
    protected BackendConfig Config(string connectionString, string instance = "main", params (string Key, string Value)[] extra)
    {
        var values = new Dictionary<string, string?>
        {
            ["ConnectionString"] = connectionString,
            ["KeyPrefix"] = _prefix,
            ["FlushInterval"] = "100ms",
            ["OperationTimeout"] = "3s",
            ["Instance"] = instance,
        };
        foreach (var (key, value) in extra)
        {
            values[key] = value;
        }

        var config = new BackendConfig(values);
        lock (_configs)
        {
            _configs.Add(config);
        }

        return config;
    }

    protected string Prefix => _prefix;

    protected static void FlushOrFail(BackendConfig config)
    {
        Assert.True(RedisStore.Get(config).TryFlush(TimeSpan.FromSeconds(20), out var error), $"flush failed: {error}");
    }

    protected static double Read(BackendConfig config, MetricDescriptor family, IReadOnlyList<string> labels, HistogramBucket? part = null)
    {
        var values = RedisBackend.Collect(config, [family])![0];
        var matches = values.Where(v => v.LabelValues.SequenceEqual(labels) && Nullable.Equals(v.Bucket, part)).ToList();
        Assert.True(matches.Count == 1, $"expected one value for {family.WithLabelValues(labels)} {part}, found {matches.Count}");
        return matches[0].Value;
    }

    public void Dispose()
    {
        lock (_configs)
        {
            foreach (var config in _configs)
            {
                RedisStore.Shutdown(config);
            }
        }

        GC.SuppressFinalize(this);
    }
}

/// <summary>One server shared by the tests that do not stop it; each test isolates itself with its own key prefix.</summary>
public sealed class SharedRedis : IDisposable
{
    internal RedisServer Server { get; } = RedisServer.Start();

    public void Dispose() => Server.Dispose();
}
