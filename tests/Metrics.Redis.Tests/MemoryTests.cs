using Metrics.Backends.Redis;

namespace Metrics.Redis.Tests;

/// <summary>
/// What the Redis backend keeps in the process per series, against the Memory backend, through Core as an application
/// uses it. Runs alone: a heap reading must not see other tests' live objects come and go.
/// </summary>
[Collection(MemoryCollection.Name)]
public sealed class MemoryTests(SharedRedis redis) : RedisTestBase
{
    private const int Series = 50_000;

    [Fact]
    public async Task Per_series_state_stays_within_twice_the_Memory_backend_heap()
    {
        var endpoints = Enumerable.Range(0, Series).Select(i => "/api/v1/items/" + i).ToArray();
        var memory = HeapGrowth(ConfiguredBackend.Memory, endpoints);

        // No timer flush while creating, so no batch is alive at the reading; the explicit flush then checks that the
        // values the cells hold (without their fields) reach Redis.
        var config = Config(redis.Server.ConnectionString, extra: ("FlushInterval", "1h"));
        var backend = ConfiguredBackend.Create<RedisBackend>(config);
        var onRedis = HeapGrowth(backend, endpoints);
        await backend.FlushAsync(TestContext.Current.CancellationToken);
        var stored = Collect(config, [new MetricDescriptor("memory_requests_total", "Requests.", MetricType.Counter, ["endpoint", "method"])])[0];

        Assert.Equal(Series + 1, stored.Count); // with the warm-up series
        Assert.All(stored, v => Assert.Equal(1, v.Value));
        Assert.True(onRedis <= 2 * memory, $"the Redis backend keeps {onRedis / Series} bytes per series, the Memory backend {memory / Series}: over 2x");
    }

    private static long HeapGrowth(ConfiguredBackend backend, string[] endpoints)
    {
        var registry = new MetricRegistry(backend: backend) { CardinalityLimit = int.MaxValue };
        var counter = new Counter("memory_requests_total", "Requests.", ["endpoint", "method"], registry: registry);
        counter.Labels("/", "GET").Inc();
        var before = GC.GetTotalMemory(forceFullCollection: true);
        foreach (var endpoint in endpoints)
        {
            counter.Labels(endpoint, "GET").Inc();
        }

        var after = GC.GetTotalMemory(forceFullCollection: true);
        GC.KeepAlive(counter);
        GC.KeepAlive(registry);
        return after - before;
    }
}

/// <summary>Tests that read the heap, run with no other test alongside.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MemoryCollection
{
    public const string Name = "heap readings";
}
