using System.Globalization;
using Metrics.Backends.Redis;
using Metrics.Tests;
using StackExchange.Redis;

namespace Metrics.Redis.Tests;

/// <summary>
/// The ten gauge aggregation modes across real processes: child processes write known values; the scrape of this process
/// shows the aggregate; each per-process mode tracks its writers by host, pid and start time; a killed writer leaves the
/// Live modes once its heartbeat deadline passes (2 s in the workers), a writer that exits gracefully leaves them at once,
/// and the other modes keep what dead writers wrote. Run on one server and on a Redis Cluster.
/// </summary>
public abstract class GaugeModeScenarios : RedisTestBase
{
    protected static readonly string WorkerDll = Path.Combine(AppContext.BaseDirectory, "Metrics.Redis.Worker.dll");

    /// <summary>Where Redis is (one server, or a cluster's seed nodes).</summary>
    protected abstract string Cs { get; }

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
            var owned = RedisFamily.ModeOf(family).Owned;
            if (owned)
            {
                ExpectWriters(reader, family, [a, b, c]);
            }

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

            if (owned)
            {
                // A scrape that finds C dead removes it from the liveness hash (LiveMax shows 9 with or without C, so
                // the value alone does not say C was found dead); A and B still beat.
                WaitUntilGone(reader, family, c);
                ExpectWriters(reader, family, [a, b]);
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

    protected static Dictionary<int, double> Single(double value) => new() { [0] = value };

    /// <summary>
    /// Polls the scrape until it shows <paramref name="expected"/> (pid to value; pid 0 for the one unlabelled series),
    /// failing with what it last showed after <paramref name="within"/> (zero: one scrape).
    /// </summary>
    protected static void Expect(BackendConfig reader, MetricDescriptor family, GaugeAggregation mode, Dictionary<int, double> expected, TimeSpan within)
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

    /// <summary>
    /// Checks that the liveness hash of <paramref name="family"/> holds exactly the writers <paramref name="pids"/>, each
    /// identified by this host's name, its pid and its start time (ms), and that each wrote its value under that id.
    /// </summary>
    private void ExpectWriters(BackendConfig reader, MetricDescriptor family, int[] pids)
    {
        using var connection = ConnectionMultiplexer.Connect(Cs);
        var db = connection.GetDatabase();
        var dataKey = RedisFamily.DataKey(RedisStore.Get(reader).Settings, family.Name, family.DefinitionId);
        var writers = db.HashKeys(RedisFamily.LiveKeyOf(dataKey)).Select(w => (string)w!).ToArray();
        var fields = db.HashKeys(dataKey).Select(f => (string)f!).ToArray();
        var host = new string([.. Environment.MachineName.Select(ch => ch == '|' || char.IsWhiteSpace(ch) || char.IsControl(ch) ? '_' : ch)]);
        Assert.True(writers.Length == pids.Length, $"expected the writers {string.Join(", ", pids)}, the liveness hash holds {string.Join(", ", writers)}");
        foreach (var pid in pids)
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            var started = new DateTimeOffset(process.StartTime.ToUniversalTime()).ToUnixTimeMilliseconds();
            var id = Assert.Single(writers, w => w.StartsWith($"{host}/{pid}/", StringComparison.Ordinal));
            var parts = id.Split('/');
            Assert.Equal(4, parts.Length);
            // .NET derives a start time from the boot time, which it computes from the uptime at each reading: two
            // readings of one process differ by a few milliseconds, two processes with one pid are seconds apart at least.
            var recorded = long.Parse(parts[2], CultureInfo.InvariantCulture);
            Assert.True(Math.Abs(recorded - started) < 1000, $"writer {id}: recorded start {recorded} ms, the process started at {started} ms");
            Assert.Contains(fields, f => f.StartsWith(id + "|", StringComparison.Ordinal));
        }
    }

    /// <summary>Scrapes until the liveness hash of <paramref name="family"/> no longer holds the writer <paramref name="pid"/>.</summary>
    private void WaitUntilGone(BackendConfig reader, MetricDescriptor family, int pid)
    {
        using var connection = ConnectionMultiplexer.Connect(Cs);
        var db = connection.GetDatabase();
        var liveKey = RedisFamily.LiveKeyOf(RedisFamily.DataKey(RedisStore.Get(reader).Settings, family.Name, family.DefinitionId));
        var marker = $"/{pid}/";
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        using var tick = new ManualResetEventSlim();
        while (db.HashKeys(liveKey).Any(w => ((string)w!).Contains(marker, StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the killed writer {pid} was still in the liveness hash after 20 s");
            Collect(reader, [family]);
            tick.Wait(50);
        }
    }

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
