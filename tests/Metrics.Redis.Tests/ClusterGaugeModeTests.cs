using Metrics.Backends.Redis;
using Metrics.Tests;

namespace Metrics.Redis.Tests;

/// <summary>
/// The ten gauge modes (<see cref="GaugeModeScenarios"/>) on a three-master Redis Cluster with replicas: every script a
/// mode runs touches several keys (data, liveness and definitions hashes, markers), which must hash to one slot.
/// </summary>
public sealed class ClusterGaugeModeTests(ClusterGaugeModeTests.Cluster cluster) : GaugeModeScenarios, IClassFixture<ClusterGaugeModeTests.Cluster>
{
    protected override string Cs => cluster.Nodes.ConnectionString;

    [Fact]
    public void The_mode_gauges_spread_over_several_masters()
    {
        // Otherwise the scenarios would prove nothing about slots: all families would live on one node.
        var masters = Enum.GetValues<GaugeAggregation>().Select(m => cluster.Nodes.MasterOf("{" + WorkerShapes.ModeGauge(m).Name + "}").Port).Distinct().Count();
        Assert.True(masters > 1, $"the ten mode gauges all hash to one master ({masters})");
    }

    [Theory]
    [InlineData(GaugeAggregation.Sum)]
    [InlineData(GaugeAggregation.LiveMax)]
    public void A_scrape_on_the_cluster_finds_another_definition_of_the_name_and_serves_its_own_values(GaugeAggregation mode)
    {
        // Two declarations of one name (other label names: another definition id), so the scripts look up the other
        // definition's data key, which they build from the name's key prefix: it must share the {name} slot.
        var name = "cluster_conflict_" + mode.ToString().ToLowerInvariant();
        var mine = new MetricDescriptor(name, "Mine.", MetricType.Gauge, ["a"], gaugeAggregation: mode);
        var theirs = new MetricDescriptor(name, "Theirs.", MetricType.Gauge, ["b"], gaugeAggregation: mode);
        var writer = Config(Cs, "theirs");
        var reader = Config(Cs, "mine");
        new RedisBackend(writer, theirs.WithLabelValues(["x"]), null).Set(7);
        new RedisBackend(reader, mine.WithLabelValues(["y"]), null).Set(3);
        FlushOrFail(writer);
        FlushOrFail(reader);

        var before = RedisBackend.Statistics(reader).Single(s => s.Name == "metrics_backend_schema_conflicts_total").Value;
        var shown = Assert.Single(Collect(reader, [mine])[0]);
        Assert.Equal(["y"], shown.LabelValues);
        Assert.Equal(3, shown.Value);
        Assert.Equal(before + 1, RedisBackend.Statistics(reader).Single(s => s.Name == "metrics_backend_schema_conflicts_total").Value);
    }

    /// <summary>One cluster for all modes. A generous node timeout: no test here fails a master over, and a loaded machine must not either.</summary>
    public sealed class Cluster : IDisposable
    {
        internal RedisCluster Nodes { get; } = RedisCluster.Start(nodeTimeoutMs: 15_000);

        public void Dispose() => Nodes.Dispose();
    }
}
