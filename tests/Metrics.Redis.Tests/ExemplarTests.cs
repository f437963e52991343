using Metrics.Backends.Redis;
using Metrics.Tests;
using StackExchange.Redis;

namespace Metrics.Redis.Tests;

public sealed class ExemplarTests(SharedRedis redis) : RedisTestBase
{
    private static readonly string WorkerDll = Path.Combine(AppContext.BaseDirectory, "Metrics.Redis.Worker.dll");

    private string Cs => redis.Server.ConnectionString;

    [Fact]
    public void Exemplar_recorded_in_one_process_is_collected_in_another_and_the_latest_by_timestamp_wins()
    {
        foreach (var (trace, time) in new[] { ("first", "1700000100"), ("latest", "1700000300"), ("older", "1700000200") })
        {
            var (exit, output) = ChildProcess.RunDotnet(WorkerDll, "exemplar", Cs, Prefix, trace, time);
            Assert.True(exit == 0, output);
        }

        var collected = Collect(Config(Cs, "reader"), [WorkerShapes.Counter, WorkerShapes.Histogram]);
        var counter = Assert.Single(collected[0]);
        Assert.Equal(3, counter.Value);
        var exemplar = Assert.IsType<RecordedExemplar>(counter.Exemplar);
        Assert.Equal(Exemplar.Of("trace_id", "latest"), exemplar.Labels);
        Assert.Equal(1_700_000_300, exemplar.TimestampUnixSeconds);
        Assert.Equal(1, exemplar.Value);

        var bucket = Assert.Single(collected[1], v => v.Bucket == HistogramBucket.ForUpperBound(1));
        Assert.Equal(3, bucket.Value);
        Assert.Equal("latest", bucket.Exemplar!.Value.Labels[0].Value);
        Assert.Equal(0.5, bucket.Exemplar!.Value.Value);
        Assert.Null(Assert.Single(collected[1], v => v.Bucket == HistogramBucket.Sum).Exemplar);
    }

    [Fact]
    public void Unflushed_exemplar_shows_in_this_process_and_reaches_others_with_the_flush()
    {
        var writer = Config(Cs, "writer", ("FlushInterval", "1h"));
        var family = WorkerShapes.Counter;
        var value = new RedisBackend(writer, family.WithLabelValues(["x", "y"]), null);
        value.Inc(1);
        value.RecordExemplar(new RecordedExemplar(Exemplar.Of("trace_id", "mine", "span_id", "s"), 1, 1_700_000_000.5));

        Assert.Equal("mine", Assert.Single(Collect(writer, [family])[0]).Exemplar!.Value.Labels[0].Value);
        var reader = Config(Cs, "reader");
        // Nothing reached Redis yet, the value included.
        Assert.Empty(Collect(reader, [family])[0]);

        FlushOrFail(writer);
        var seen = Assert.Single(Collect(reader, [family])[0]).Exemplar!.Value;
        Assert.Equal(Exemplar.Of("trace_id", "mine", "span_id", "s"), seen.Labels);
        Assert.Equal(1_700_000_000.5, seen.TimestampUnixSeconds);
    }

    [Fact]
    public void Exemplar_hash_carries_the_family_hash_tag_and_expiry()
    {
        var writer = Config(Cs, "writer", ("KeyExpiry", "1h"));
        var family = WorkerShapes.Histogram;
        var series = family.WithLabelValues(["tag"]);
        var bucket = new RedisBackend(writer, series, HistogramBucket.ForUpperBound(0.1));
        new RedisBackend(writer, series, HistogramBucket.Sum).ObserveHistogram(bucket, 0.05);
        bucket.RecordExemplar(new RecordedExemplar(Exemplar.Of("trace_id", "t"), 0.05, 1));
        FlushOrFail(writer);

        using var connection = ConnectionMultiplexer.Connect(Cs);
        var server = connection.GetServer(connection.GetEndPoints()[0]);
        var key = Assert.Single(server.Keys(pattern: Prefix + "*:ex"));
        Assert.Contains("{", key.ToString(), StringComparison.Ordinal);
        var ttl = connection.GetDatabase().KeyTimeToLive(key);
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromMinutes(59), TimeSpan.FromHours(1));
        Assert.True(RedisBackend.Capabilities.HasFlag(BackendCapabilities.Exemplars));
    }
}
