using System.Buffers.Binary;
using System.Globalization;
using Metrics.Backends.Redis;
using Metrics.Tests;
using StackExchange.Redis;

namespace Metrics.Redis.Tests;

/// <summary>The ten gauge aggregation modes on one redis-server (the scenarios in <see cref="GaugeModeScenarios"/>), and their edge cases.</summary>
public sealed class GaugeModeTests(SharedRedis redis) : GaugeModeScenarios
{
    protected override string Cs => redis.Server.ConnectionString;

    [Fact]
    public void Get_and_a_scrape_include_this_process_unflushed_own_value()
    {
        var family = WorkerShapes.ModeGauge(GaugeAggregation.LiveSum);
        var one = Config(Cs, "one", ("FlushInterval", "1h"));
        var two = Config(Cs, "two", ("FlushInterval", "1h"));
        var first = new RedisBackend(one, family, null);
        first.Set(3);
        FlushOrFail(one);
        var second = new RedisBackend(two, family, null);
        second.Inc(4);

        Assert.Equal(7, second.Get());
        Assert.Equal(7, Assert.Single(Collect(two, [family])[0]).Value);
        Assert.Equal(3, Assert.Single(Collect(Config(Cs, "reader"), [family])[0]).Value);
        Assert.Equal(7, first.Get() + 4);
    }

    [Theory]
    [InlineData(GaugeAggregation.Max, 0.0)]
    [InlineData(GaugeAggregation.Min, -0.0)]
    public void Max_and_Min_follow_Math_Max_and_Min_on_signed_zero_and_NaN(GaugeAggregation mode, double zero)
    {
        var family = WorkerShapes.ModeGauge(mode);
        var writers = new[] { Config(Cs, "neg"), Config(Cs, "pos") };
        new RedisBackend(writers[0], family, null).Set(-0.0);
        new RedisBackend(writers[1], family, null).Set(0.0);
        foreach (var writer in writers)
        {
            FlushOrFail(writer);
        }

        var reader = Config(Cs, "reader");
        Assert.Equal(BitConverter.DoubleToInt64Bits(zero), BitConverter.DoubleToInt64Bits(Assert.Single(Collect(reader, [family])[0]).Value));

        var nan = Config(Cs, "nan");
        new RedisBackend(nan, family, null).Set(double.NaN);
        FlushOrFail(nan);
        Assert.True(double.IsNaN(Assert.Single(Collect(reader, [family])[0]).Value));
    }

    [Fact]
    public void A_writer_found_dead_sends_its_values_again()
    {
        var family = WorkerShapes.ModeGauge(GaugeAggregation.LiveMax);
        var writer = Config(Cs, "writer", ("HeartbeatInterval", "100ms"), ("HeartbeatTimeout", "1s"));
        var gauge = new RedisBackend(writer, family, null);
        gauge.Set(42);
        FlushOrFail(writer);

        // As a scrape does with a writer whose deadline passed (a long pause, a partition): its entry and fields are gone.
        // The fields go first: a heartbeat between the two deletes still finds the writer alive, and the next one finds it
        // dead, so the restore below cannot be undone by a delete that lands after it.
        using var connection = ConnectionMultiplexer.Connect(Cs);
        var db = connection.GetDatabase();
        Assert.True(db.KeyDelete(gauge.Family.Key));
        Assert.True(db.HashDelete(gauge.Family.LiveKey, gauge.Family.WriterId));
        var reader = Config(Cs, "reader");

        // Its next heartbeat finds it was dead, and the next flush restores every value it holds.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        using var tick = new ManualResetEventSlim();
        while (Collect(reader, [family])[0].Count == 0 && DateTime.UtcNow < deadline)
        {
            tick.Wait(50, TestContext.Current.CancellationToken);
        }

        Assert.Equal(42, Assert.Single(Collect(reader, [family])[0]).Value);
    }

    [Fact]
    public void Updates_of_a_per_process_gauge_allocate_nothing()
    {
        var writer = Config(Cs, extra: ("FlushInterval", "1h"));
        var gauge = new RedisBackend(writer, WorkerShapes.ModeGauge(GaugeAggregation.LiveSum), null);
        gauge.Inc(1);
        FlushOrFail(writer);
        gauge.Inc(1);

        var i = 0;
        Allocations.AssertNone("per-process gauge Inc, Dec and Set", () =>
        {
            gauge.Inc(1);
            gauge.Dec(0.5);
            gauge.Set(i++);
        });
    }

    [Fact]
    public void A_heartbeat_timeout_within_one_interval_is_refused_naming_the_key()
    {
        var config = new BackendConfig(new Dictionary<string, string?> { ["HeartbeatInterval"] = "5s", ["HeartbeatTimeout"] = "5s" });
        var error = Assert.Throws<BackendConfigException>(() => RedisSettings.Read(config));
        Assert.Contains("HeartbeatTimeout", error.Message, StringComparison.Ordinal);
    }
}
