using System.Globalization;

namespace Metrics.Tests;

/// <summary>
/// A Redis Cluster of real redis-server processes on free 127.0.0.1 ports: three masters with one replica each, created
/// with <c>redis-cli --cluster create</c>. Disposing stops every node and deletes their directories.
/// </summary>
internal sealed class RedisCluster : IDisposable
{
    private readonly List<RedisServer> _nodes = [];

    private RedisCluster()
    {
    }

    /// <summary>Every node, masters first as created (a failover changes which is which).</summary>
    public IReadOnlyList<RedisServer> Nodes => _nodes;

    /// <summary>The initial masters' endpoints, for a client's connection string; the client discovers the rest.</summary>
    public string ConnectionString => string.Join(",", _nodes.Take(3).Select(n => $"127.0.0.1:{n.Port}"));

    /// <summary>Starts six nodes and joins them into a cluster whose 16384 slots are all covered.</summary>
    /// <param name="nodeTimeoutMs">How long a master may be unreachable before its replica takes over.</param>
    public static RedisCluster Start(int nodeTimeoutMs = 1000)
    {
        var cluster = new RedisCluster();
        try
        {
            for (var i = 0; i < 6; i++)
            {
                cluster._nodes.Add(RedisServer.Start(durable: false, extraArgs:
                [
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", nodeTimeoutMs.ToString(CultureInfo.InvariantCulture),
                    // A replica may take over however long ago it last heard from its master: an idle test cluster
                    // pings rarely, and the default validity check would then refuse the failover.
                    "--cluster-replica-validity-factor", "0",
                ]));
            }

            var cli = RedisServer.FindExecutable("redis-cli")
                ?? throw new InvalidOperationException("redis-cli was not found on PATH; it comes with redis-server ('apt-get install -y redis-server').");
            List<string> args = ["--cluster", "create"];
            args.AddRange(cluster._nodes.Select(n => $"127.0.0.1:{n.Port}"));
            args.AddRange(["--cluster-replicas", "1", "--cluster-yes"]);
            using var create = ChildProcess.Start(cli, args);
            create.WaitForSuccess(TimeSpan.FromSeconds(60));
            cluster.WaitUntilHealthy(TimeSpan.FromSeconds(30));
            return cluster;
        }
        catch
        {
            cluster.Dispose();
            throw;
        }
    }

    /// <summary>The node serving <paramref name="key"/>'s slot as master now, found by asking a live node.</summary>
    public RedisServer MasterOf(string key) => TryMasterOf(key) ?? throw new InvalidOperationException($"no master serves the slot of '{key}'");

    /// <summary>As <see cref="MasterOf"/>, or null while no healthy master serves the slot (during a failover).</summary>
    public RedisServer? TryMasterOf(string key)
    {
        var live = _nodes.First(n => n.IsRunning);
        var slot = long.Parse(live.Command("CLUSTER", "KEYSLOT", key), CultureInfo.InvariantCulture);
        foreach (var line in live.Command("CLUSTER", "NODES").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            // <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges...>
            var fields = line.Split(' ');
            if (!fields[2].Contains("master", StringComparison.Ordinal) || fields[2].Contains("fail", StringComparison.Ordinal))
            {
                continue;
            }

            foreach (var range in fields.Skip(8))
            {
                var bounds = range.Split('-');
                var low = long.Parse(bounds[0], CultureInfo.InvariantCulture);
                var high = bounds.Length > 1 ? long.Parse(bounds[1], CultureInfo.InvariantCulture) : low;
                if (slot >= low && slot <= high)
                {
                    var port = int.Parse(fields[1].Split('@')[0].Split(':')[1], CultureInfo.InvariantCulture);
                    return _nodes.Single(n => n.Port == port);
                }
            }
        }

        return null;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds, or throws after <paramref name="timeout"/>.</summary>
    public void WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        using var tick = new ManualResetEventSlim();
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the cluster did not reach the expected state within {timeout}");
            }

            tick.Wait(50);
        }
    }

    /// <summary>Polls a live node until <c>CLUSTER INFO</c> reports <c>cluster_state:ok</c>, as after a replica took over.</summary>
    public void WaitUntilHealthy(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        using var tick = new ManualResetEventSlim();
        while (true)
        {
            var states = _nodes.Where(n => n.IsRunning).Select(n => n.Command("CLUSTER", "INFO")).ToList();
            if (states.All(s => s.Contains("cluster_state:ok", StringComparison.Ordinal)))
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the cluster did not become healthy within {timeout}: {states.FirstOrDefault()}");
            }

            tick.Wait(50);
        }
    }

    public void Dispose()
    {
        foreach (var node in _nodes)
        {
            node.Dispose();
        }
    }
}
