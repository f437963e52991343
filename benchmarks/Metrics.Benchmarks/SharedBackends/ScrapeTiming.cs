using System.Diagnostics;
using System.Globalization;
using Metrics.Tests;

namespace Metrics.Benchmarks.SharedBackends;

/// <summary>
/// Stopwatch modes for scrapes that BenchmarkDotNet would take too long over, or that a profiler attaches to:
/// <c>shared scrape-loop shm|redis|memory [--seconds N]</c> repeats the <see cref="SharedScrape11kSeries"/> scrape and
/// prints its mean, fastest and allocation; <c>shared scrape-1m [--series N]</c> scrapes a million Redis series.
/// </summary>
internal static class ScrapeTiming
{
    /// <summary>Repeats one of the 11,000-series scrapes for a number of seconds (default 10).</summary>
    public static int Loop(TextWriter output, string backend, double seconds, bool allocations = false)
    {
        var bench = new SharedScrape11kSeries();
        Func<Task> scrape;
        switch (backend)
        {
            case "shm":
                bench.SetupSharedMemory();
                scrape = bench.SharedMemory;
                break;
            case "redis":
                bench.SetupRedis();
                scrape = bench.Redis;
                break;
            case "memory":
                bench.SetupMemory();
                scrape = bench.Memory;
                break;
            default:
                output.WriteLine($"unknown backend '{backend}': expected shm, redis or memory");
                return 2;
        }

        try
        {
            using var sampler = allocations ? new AllocationSampler() : null;
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var count = 0;
            var fastest = double.MaxValue;
            var bytes = GC.GetAllocatedBytesForCurrentThread();
            var total = Stopwatch.StartNew();
            while (total.Elapsed.TotalSeconds < seconds)
            {
                var one = Stopwatch.StartNew();
                scrape().GetAwaiter().GetResult();
                fastest = Math.Min(fastest, one.Elapsed.TotalMilliseconds);
                count++;
            }

            var allocated = (GC.GetAllocatedBytesForCurrentThread() - bytes) / (double)count;
            var cpuMs = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMilliseconds / count;
            output.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"{backend}: {count} scrapes, mean {total.Elapsed.TotalMilliseconds / count:0.00} ms, fastest {fastest:0.00} ms, process CPU {cpuMs:0.00} ms per scrape, {allocated / 1024:0.0} KB allocated on the scraping thread per scrape"));
            sampler?.Report(output);
            return 0;
        }
        finally
        {
            bench.Cleanup();
        }
    }

    /// <summary>
    /// Creates <paramref name="series"/> counter series on Redis from this process (as an application with that many
    /// series does), flushes them, and times three scrapes of them, each checked to hold every series.
    /// </summary>
    public static int Redis1M(TextWriter output, int series)
    {
        using var redis = RedisServer.Start(durable: false);
        // A scrape of a million series is what is measured here, so it may take longer than the default OperationTimeout.
        var backend = SharedBackendSetup.Redis(redis.ConnectionString, "bench1m:", operationTimeout: "120s");
        // Every series is its own: the default cardinality limit would fold all but the first few thousand into overflow.
        var registry = new MetricRegistry(backend: backend) { CardinalityLimit = int.MaxValue };
        var counter = new Counter("large_requests_total", "Requests served.", ["shard", "series"], registry: registry);
        var create = Stopwatch.StartNew();
        for (var i = 0; i < series; i++)
        {
            counter.Labels((i % 100).ToString(CultureInfo.InvariantCulture), i.ToString(CultureInfo.InvariantCulture)).Inc(i + 1);
        }

        backend.Flush();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"// {series} series created and flushed in {create.Elapsed.TotalSeconds:0.0} s"));
        var expectedSum = (double)series * (series + 1) / 2;

        // The backend's part of a first scrape, alone: reading every value and decoding every field once. The scrapes
        // below then show Core's first rendering of the label sets (round 1) and steady scrapes (rounds 2 and 3).
        var collect = Stopwatch.StartNew();
        var collected = backend.Collect([counter.Family.Descriptor]);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"// first Collect alone (reads every value, decodes every field once): {collect.Elapsed.TotalSeconds:0.00} s, {collected?[0].Count ?? 0} values"));
        for (var round = 1; round <= 3; round++)
        {
            using var stream = new MemoryStream();
            var watch = Stopwatch.StartNew();
            registry.WriteAsync(stream, ExpositionFormat.PrometheusText).GetAwaiter().GetResult();
            var elapsed = watch.Elapsed.TotalSeconds;
            var text = System.Text.Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
            var (samples, sum) = SharedBackendSetup.SumSamples(text, "large_requests_total");
            if (samples != series || sum != expectedSum)
            {
                output.WriteLine($"scrape {round} is incomplete: {samples} series summing to {sum} (expected {series}, {expectedSum})");
                return 1;
            }

            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Redis scrape of {series} series, round {round}: {elapsed:0.00} s, {stream.Length / 1e6:0.0} MB of text"));
        }

        return 0;
    }

    /// <summary>Counts the runtime's allocation samples (one per ~100 KB) by type: where a scrape's allocations come from.</summary>
    private sealed class AllocationSampler : System.Diagnostics.Tracing.EventListener
    {
        private readonly Dictionary<string, int> _samples = [];

        public void Report(TextWriter output)
        {
            lock (_samples)
            {
                foreach (var (type, count) in _samples.OrderByDescending(kv => kv.Value).Take(15))
                {
                    output.WriteLine($"  {count,6} x ~100 KB  {type}");
                }
            }
        }

        protected override void OnEventSourceCreated(System.Diagnostics.Tracing.EventSource source)
        {
            if (source.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(source, System.Diagnostics.Tracing.EventLevel.Verbose, (System.Diagnostics.Tracing.EventKeywords)0x1);
            }
        }

        protected override void OnEventWritten(System.Diagnostics.Tracing.EventWrittenEventArgs e)
        {
            if (e.EventName?.StartsWith("GCAllocationTick", StringComparison.Ordinal) == true && e.PayloadNames?.IndexOf("TypeName") is >= 0 and var i)
            {
                var type = e.Payload![i] as string ?? "?";
                lock (_samples)
                {
                    _samples[type] = _samples.GetValueOrDefault(type) + 1;
                }
            }
        }
    }
}
