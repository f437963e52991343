using System.Buffers.Binary;
using System.Globalization;
using Metrics.Backends.Redis;
using Metrics.Tests;
using StackExchange.Redis;

namespace Metrics.Redis.Tests;

/// <summary>
/// The ten gauge aggregation modes: real child processes write known values; the scrape of this process shows the
/// aggregate; a killed writer leaves the Live modes once its heartbeat deadline passes (2 s in the workers), a writer that
/// exits gracefully leaves them at once, and the other modes keep what dead writers wrote.
/// </summary>
public sealed class GaugeModeTests(SharedRedis redis) : RedisTestBase
{
    private static readonly string WorkerDll = Path.Combine(AppContext.BaseDirectory, "Metrics.Redis.Worker.dll");

    private string Cs => redis.Server.ConnectionString;

    public static TheoryData<GaugeAggregation> Modes() => [.. Enum.GetValues<GaugeAggregation>()];

    [Theory]
    [MemberData(nameof(Modes))]
    public void Processes_aggregate_and_the_live_modes_drop_dead_ones(GaugeAggregation mode)
    {
        var reader = Config(Cs, "reader");
        var family = WorkerShapes.ModeGauge(mode);
        var perProcess = mode is GaugeAggregation.PerProcess or GaugeAggregation.LivePerProcess;
        var adds = mode is GaugeAggregation.Sum or GaugeAggregation.LiveSum || perProcess;

        // A increments by 5 (from 0), B and C add or set 9 and -2; started one after another, so C writes last.
        string[] ops = adds ? ["+5", "+9", "+-2"] : ["+5", "9", "-2"];
        var children = new List<ChildProcess>();
        try
        {
            foreach (var op in ops)
            {
                var child = ChildProcess.StartDotnet(WorkerDll, ["gauge", Cs, Prefix, mode.ToString(), op]);
                children.Add(child);
                child.WaitForLine("ready");
            }

            var (a, b, c) = (children[0].Pid, children[1].Pid, children[2].Pid);
            var all = new Dictionary<int, double> { [a] = 5, [b] = 9, [c] = -2 };
            Expect(reader, family, mode, perProcess ? all : Single(mode switch
            {
                GaugeAggregation.Sum or GaugeAggregation.LiveSum => 12,
                GaugeAggregation.Max or GaugeAggregation.LiveMax => 9,
                _ => -2, // Min, LiveMin, MostRecent, LiveMostRecent
            }), TimeSpan.Zero);

            // SIGKILL: no shutdown runs, so only the heartbeat deadline tells the others that C is gone.
            children[2].Kill();
            var afterKill = mode switch
            {
                GaugeAggregation.LiveSum => Single(14),
                GaugeAggregation.LiveMax => Single(9),
                GaugeAggregation.LiveMin => Single(5),
                GaugeAggregation.LiveMostRecent => Single(9),
                GaugeAggregation.LivePerProcess => new Dictionary<int, double> { [a] = 5, [b] = 9 },
                _ => null,
            };
            if (afterKill is not null)
            {
                Expect(reader, family, mode, afterKill, TimeSpan.FromSeconds(20));
            }
            else
            {
                if (mode is GaugeAggregation.Max or GaugeAggregation.Min)
                {
                    // Wait until a scrape found C dead and folded its value into the archive, then check it still counts.
                    WaitUntilFolded(reader, family, c);
                }

                Expect(reader, family, mode, perProcess ? all : Single(mode switch
                {
                    GaugeAggregation.Sum => 12,
                    GaugeAggregation.Max => 9,
                    _ => -2,
                }), TimeSpan.Zero);
            }

            // A graceful exit retires B from the liveness hash: the Live modes drop it without waiting for the timeout.
            children[1].WriteLine("exit");
            children[1].WaitForLine("retired");
            Assert.Equal(0, children[1].WaitForExit());
            var afterExit = mode switch
            {
                GaugeAggregation.LiveSum or GaugeAggregation.LiveMax or GaugeAggregation.LiveMin or GaugeAggregation.LiveMostRecent => Single(5),
                GaugeAggregation.LivePerProcess => new Dictionary<int, double> { [a] = 5 },
                GaugeAggregation.Sum => Single(12),
                GaugeAggregation.Max => Single(9),
                GaugeAggregation.PerProcess => all,
                _ => Single(-2),
            };
            Expect(reader, family, mode, afterExit, TimeSpan.Zero);
        }
        finally
        {
            foreach (var child in children)
            {
                child.Dispose();
            }
        }
    }

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
        using var connection = ConnectionMultiplexer.Connect(Cs);
        var db = connection.GetDatabase();
        Assert.True(db.HashDelete(gauge.Family.LiveKey, gauge.Family.WriterId));
        db.KeyDelete(gauge.Family.Key);
        var reader = Config(Cs, "reader");
        Assert.Empty(Collect(reader, [family])[0]);

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

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            gauge.Inc(1);
            gauge.Dec(0.5);
            gauge.Set(i);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void A_heartbeat_timeout_within_one_interval_is_refused_naming_the_key()
    {
        var config = new BackendConfig(new Dictionary<string, string?> { ["HeartbeatInterval"] = "5s", ["HeartbeatTimeout"] = "5s" });
        var error = Assert.Throws<BackendConfigException>(() => RedisSettings.Read(config));
        Assert.Contains("HeartbeatTimeout", error.Message, StringComparison.Ordinal);
    }

    private static Dictionary<int, double> Single(double value) => new() { [0] = value };

    /// <summary>
    /// Polls the scrape until it shows <paramref name="expected"/> (pid to value; pid 0 for the one unlabelled series),
    /// failing with what it last showed after <paramref name="within"/> (zero: one scrape).
    /// </summary>
    private static void Expect(BackendConfig reader, MetricDescriptor family, GaugeAggregation mode, Dictionary<int, double> expected, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        using var tick = new ManualResetEventSlim();
        while (true)
        {
            var shown = Collect(reader, [family])[0]
                .ToDictionary(v => v.LabelValues.Count == 0 ? 0 : int.Parse(v.LabelValues[0], CultureInfo.InvariantCulture), v => v.Value);
            if (shown.Count == expected.Count && expected.All(e => shown.TryGetValue(e.Key, out var v) && v.Equals(e.Value)))
            {
                return;
            }

            if (DateTime.UtcNow >= deadline)
            {
                Assert.Fail($"{mode}: expected {Show(expected)}, the scrape shows {Show(shown)}");
            }

            tick.Wait(50);
        }
    }

    private static string Show(Dictionary<int, double> values) =>
        "{" + string.Join(", ", values.OrderBy(v => v.Key).Select(v => $"{v.Key}: {v.Value.ToString("R", CultureInfo.InvariantCulture)}")) + "}";

    /// <summary>Scrapes until no field of the data hash belongs to the process <paramref name="pid"/> any more.</summary>
    private void WaitUntilFolded(BackendConfig reader, MetricDescriptor family, int pid)
    {
        using var connection = ConnectionMultiplexer.Connect(Cs);
        var db = connection.GetDatabase();
        var key = RedisFamily.DataKey(RedisStore.Get(reader).Settings, family.Name, family.DefinitionId);
        var marker = $"/{pid}/";
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        using var tick = new ManualResetEventSlim();
        while (db.HashKeys(key).Any(f => ((string)f!).Contains(marker, StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the fields of the killed writer {pid} were not folded within 20 s");
            Collect(reader, [family]);
            tick.Wait(50);
        }

        Assert.Contains(db.HashKeys(key), f => ((string)f!).StartsWith('|'));
    }
}
