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
    /// <param name="instance">
    /// The Redis client name: distinct names are distinct configurations, so they get distinct stores with their own
    /// connection and unsent updates, as separate processes would.
    /// </param>
    /// <param name="extra">More settings.</param>
    protected BackendConfig Config(string connectionString, string instance = "main", params (string Key, string Value)[] extra)
    {
        var values = new Dictionary<string, string?>
        {
            ["ConnectionString"] = $"{connectionString},name={instance}",
            ["KeyPrefix"] = _prefix,
            ["FlushInterval"] = "100ms",
            ["OperationTimeout"] = "3s",
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

    /// <summary>
    /// The value stored in Redis for <paramref name="field"/> of the family whose slot directory is <paramref name="dataKey"/>
    /// (read through its slot, as Get does), or null when the field has no slot.
    /// </summary>
    protected static async Task<double?> StoredValueAsync(StackExchange.Redis.IDatabase db, string dataKey, byte[] field)
    {
        var reply = (StackExchange.Redis.RedisResult[])(await db.ScriptEvaluateAsync(
            Scripts.ReadValue, [dataKey, dataKey + ":no-marker", RedisFamily.ValuesKeyOf(dataKey)], [field]))!;
        var raw = (byte[])reply[0]!;
        return raw.Length == 8 ? System.Buffers.Binary.BinaryPrimitives.ReadDoubleLittleEndian(raw) : null;
    }

    protected static void FlushOrFail(BackendConfig config)
    {
        var (ok, error) = TryFlush(config, TimeSpan.FromSeconds(20));
        Assert.True(ok, $"flush failed: {error}");
    }

    /// <summary>
    /// Flushes once the backend can reach every node again (after a restart or a failover, which happens inside the
    /// client on its own schedule, with no signal to wait on): retries until <paramref name="timeout"/>.
    /// </summary>
    protected static void FlushUntilOk(BackendConfig config, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        using var tick = new ManualResetEventSlim();
        string? error;
        while ((error = TryFlush(config, TimeSpan.FromSeconds(5)).Error) is not null && DateTime.UtcNow < deadline)
        {
            tick.Wait(100);
        }

        Assert.True(error is null, $"no flush succeeded within {timeout}: {error}");
    }

    /// <summary>Collects, retrying until <paramref name="timeout"/> while the backend cannot read every node yet.</summary>
    protected static IReadOnlyList<CollectedValue>[] CollectUntilOk(BackendConfig config, IReadOnlyList<MetricDescriptor> families, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        using var tick = new ManualResetEventSlim();
        while (true)
        {
            try
            {
                return Collect(config, families);
            }
            catch (RedisBackendException) when (DateTime.UtcNow < deadline)
            {
                tick.Wait(100);
            }
        }
    }

    protected static (bool Ok, string? Error) TryFlush(BackendConfig config, TimeSpan timeout) =>
        RedisStore.Get(config).Flusher.TryFlushAsync(timeout, CancellationToken.None).GetAwaiter().GetResult();

    protected static IReadOnlyList<CollectedValue>[] Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) =>
        RedisBackend.CollectAsync(config, families, CancellationToken.None).AsTask().GetAwaiter().GetResult()!;

    /// <summary>Flushes and releases the store of <paramref name="config"/>; the next use starts a fresh one.</summary>
    protected static void Shutdown(BackendConfig config)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        RedisBackend.ShutdownAsync(config, timeout.Token).AsTask().GetAwaiter().GetResult();
    }

    protected static double Read(BackendConfig config, MetricDescriptor family, IReadOnlyList<string> labels, HistogramBucket? part = null)
    {
        var values = Collect(config, [family])[0];
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
                Shutdown(config);
            }
        }

        GC.SuppressFinalize(this);
    }
}

/// <summary>One server shared by the tests that do not stop it; each test isolates itself with its own key prefix.</summary>
public sealed class SharedRedis : IDisposable
{
    public SharedRedis() => LogCapture.Install();

    internal RedisServer Server { get; } = RedisServer.Start();

    public void Dispose() => Server.Dispose();
}
