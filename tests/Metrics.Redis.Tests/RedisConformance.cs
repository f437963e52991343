using System.Collections.Concurrent;
using Metrics.Backends.Redis;
using Metrics.Conformance;

namespace Metrics.Redis.Tests;

/// <summary>
/// The conformance suite on the Redis backend, through the same xunit adapter a third party uses; the multi-process
/// checks start the conformance runner as real child processes that load Redis.dll from this test's output.
/// </summary>
public sealed class RedisConformance(SharedRedis redis, RedisConformance.Stores stores) : BackendConformanceTests<RedisBackend>, IClassFixture<RedisConformance.Stores>
{
    protected override BackendConfig CreateConfig() => stores.Track(new BackendConfig(new Dictionary<string, string?>
    {
        ["ConnectionString"] = redis.Server.ConnectionString,
        ["KeyPrefix"] = "conformance:" + Guid.NewGuid().ToString("N")[..12] + ":",
        // Batching adds the sum of the updates coalesced between two flushes to the stored value in one addition, which
        // can round differently from adding them one by one; the 300-step walk of DoubleSumsAreExact compares every step
        // with one-by-one arithmetic, so a timer flush in its middle could fail it. Every check flushes explicitly.
        ["FlushInterval"] = "10m",
        ["OperationTimeout"] = "10s",
    }));

    protected override IEnumerable<BackendConfig> InvalidConfigs => [new([new("FlushInterval", "soon")]), new([new("MaxPendingSeries", "lots")])];

    /// <summary>The configurations the checks created, whose flushers and connections are stopped after the last check.</summary>
    public sealed class Stores : IDisposable
    {
        private readonly ConcurrentQueue<BackendConfig> _configs = new();

        public BackendConfig Track(BackendConfig config)
        {
            _configs.Enqueue(config);
            return config;
        }

        public void Dispose()
        {
            while (_configs.TryDequeue(out var config))
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                RedisBackend.ShutdownAsync(config, timeout.Token).AsTask().GetAwaiter().GetResult();
            }
        }
    }
}
