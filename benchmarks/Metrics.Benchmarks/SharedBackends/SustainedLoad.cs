using System.Diagnostics;
using System.Globalization;
using System.Text;
using Metrics.Tests;

namespace Metrics.Benchmarks.SharedBackends;

/// <summary>
/// Redis under sustained load: N processes increment counters as fast as they can for a while. Reports the updates
/// absorbed (checked against the totals Redis holds afterwards) and the commands Redis processed, then runs
/// redis-benchmark against the same server as the ceiling.
/// </summary>
internal static class SustainedLoad
{
    private sealed record Scenario(int Processes, int Families, int SeriesPerFamily, int RatePerProcess);

    public static int Run(TextWriter output, bool ci, double seconds)
    {
        Scenario[] scenarios = ci
            ? [new(1, 1, 100, 0), new(2, 1, 100, 1000)]
            :
            [
                new(1, 1, 100, 0),
                new(2, 1, 100, 0),
                new(4, 1, 100, 0),
                new(4, 1, 100, 1000),
                new(4, 1, 10, 0),
                new(4, 1, 1000, 0),
                new(4, 10, 100, 0),
            ];

        using var redis = RedisServer.Start(durable: false);
        output.WriteLine($"redis-server {redis.Info("server").GetValueOrDefault("redis_version")} on 127.0.0.1:{redis.Port}, persistence off; FlushInterval 1s (default); {seconds:0.#} s per row");
        output.WriteLine();
        output.WriteLine("| processes | families x series | rate per process | updates/s absorbed | Redis commands/s (total) | of which EVALSHA/s | Redis input KB/s | dropped |");
        output.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
        var index = 0;
        foreach (var scenario in scenarios)
        {
            output.WriteLine(RunScenario(redis, scenario, $"load{index++}:", seconds));
            output.Flush();
        }

        output.WriteLine();
        output.WriteLine("Ceiling: redis-benchmark against the same server");
        output.WriteLine();
        output.WriteLine(RedisBenchmark(redis, ci ? 2000 : 200000));
        return 0;
    }

    private static string RunScenario(RedisServer redis, Scenario scenario, string prefix, double seconds)
    {
        var workers = Enumerable.Range(0, scenario.Processes)
            .Select(_ => SharedBackendSetup.StartWorker(
                "load", redis.ConnectionString, prefix,
                scenario.Families.ToString(CultureInfo.InvariantCulture), scenario.SeriesPerFamily.ToString(CultureInfo.InvariantCulture),
                seconds.ToString(CultureInfo.InvariantCulture), scenario.RatePerProcess.ToString(CultureInfo.InvariantCulture)))
            .ToArray();
        try
        {
            // Each worker has created and flushed its series when it says "ready", so that is not in the window.
            foreach (var worker in workers)
            {
                worker.WaitForLine("ready");
            }

            var commandsBefore = redis.Stat("total_commands_processed");
            var inputBefore = redis.Stat("total_net_input_bytes");
            var callsBefore = redis.CommandCalls();
            var window = Stopwatch.StartNew();
            foreach (var worker in workers)
            {
                worker.WriteLine("go");
            }

            Thread.Sleep(TimeSpan.FromSeconds(seconds));
            var commands = redis.Stat("total_commands_processed") - commandsBefore;
            var input = redis.Stat("total_net_input_bytes") - inputBefore;
            var calls = RedisServer.Delta(callsBefore, redis.CommandCalls());
            var elapsed = window.Elapsed.TotalSeconds;

            long updates = 0;
            double rate = 0;
            long dropped = 0;
            foreach (var worker in workers)
            {
                var done = worker.WaitForSuccess(TimeSpan.FromSeconds(seconds + 60)).Split('\n').Single(l => l.StartsWith("done ", StringComparison.Ordinal)).Split(' ');
                var count = long.Parse(done[1], CultureInfo.InvariantCulture);
                updates += count;
                rate += count / double.Parse(done[2], CultureInfo.InvariantCulture);
                dropped += long.Parse(done[3], CultureInfo.InvariantCulture);
            }

            var stored = StoredTotal(redis, prefix, scenario.Families);
            if (stored != updates)
            {
                throw new InvalidOperationException($"Redis holds {stored} for {prefix}*, but the workers made {updates} updates.");
            }

            // Each flush is one EVALSHA per family; the HGET/HSET/SET/PEXPIRE its script runs count in the total too.
            var scripts = calls.GetValueOrDefault("evalsha") + calls.GetValueOrDefault("eval");
            var rateText = scenario.RatePerProcess == 0 ? "unlimited" : scenario.RatePerProcess.ToString("N0", CultureInfo.InvariantCulture) + "/s";
            return string.Create(
                CultureInfo.InvariantCulture,
                $"| {scenario.Processes} | {scenario.Families} x {scenario.SeriesPerFamily} | {rateText} | {rate:N0} | {commands / elapsed:N0} | {scripts / elapsed:N1} | {input / 1024.0 / elapsed:N1} | {dropped} |");
        }
        finally
        {
            foreach (var worker in workers)
            {
                worker.Dispose();
            }
        }
    }

    /// <summary>The sum of every series the scenario wrote, read back through a scrape on the Redis backend.</summary>
    private static long StoredTotal(RedisServer redis, string prefix, int families)
    {
        var registry = new MetricRegistry(backend: SharedBackendSetup.Redis(redis.ConnectionString, prefix)) { CardinalityLimit = int.MaxValue };
        for (var f = 0; f < families; f++)
        {
            _ = new Counter($"load_{f}_total", "Load test updates.", ["series"], registry: registry);
        }

        var text = SharedBackendSetup.ScrapeTextAsync(registry).GetAwaiter().GetResult();
        var total = 0.0;
        for (var f = 0; f < families; f++)
        {
            total += SharedBackendSetup.SumSamples(text, $"load_{f}_total").Sum;
        }

        return (long)total;
    }

    private static string RedisBenchmark(RedisServer redis, int requests)
    {
        var executable = RedisServer.FindExecutable("redis-benchmark");
        if (executable is null)
        {
            return "redis-benchmark was not found on PATH (Debian/Ubuntu ship it in redis-tools, installed with redis-server): no ceiling measured.";
        }

        using var process = ChildProcess.Start(
            executable,
            ["-h", "127.0.0.1", "-p", redis.Port.ToString(CultureInfo.InvariantCulture), "-t", "incr,hset", "-q", "-n", requests.ToString(CultureInfo.InvariantCulture)]);
        process.CloseInput();
        process.WaitForSuccess();
        var text = new StringBuilder();
        text.Append("`redis-benchmark -h 127.0.0.1 -p ").Append(redis.Port).Append(" -t incr,hset -q -n ").Append(requests).AppendLine("`:").AppendLine();
        // -q rewrites a progress line with carriage returns, which end lines too; only the final figures say "requests per second".
        foreach (var line in (process.Stdout + "\n" + process.Stderr).Split('\n'))
        {
            if (line.Contains("requests per second", StringComparison.Ordinal))
            {
                text.Append("    ").AppendLine(line.Trim());
            }
        }

        return text.ToString().TrimEnd();
    }
}
