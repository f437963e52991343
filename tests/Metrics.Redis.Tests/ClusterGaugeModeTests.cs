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

    /// <summary>One cluster for all modes. A generous node timeout: no test here fails a master over, and a loaded machine must not either.</summary>
    public sealed class Cluster : IDisposable
    {
        internal RedisCluster Nodes { get; } = RedisCluster.Start(nodeTimeoutMs: 15_000);

        public void Dispose() => Nodes.Dispose();
    }
}
