using System.Diagnostics;
using System.Globalization;
using Metrics.Benchmarks.SharedBackends;
using Metrics.Tests;

namespace Metrics.Benchmarks;

/// <summary>
/// Bytes per labelled counter series on each backend (Memory, SharedMemory, Redis): the managed heap after a full
/// collection and the process's resident set (RSS), before and after creating the series and sending them to the store.
/// Each backend and series count runs in a fresh child process, so one run's heap growth and retained pages never show
/// in another's RSS. Redis runs against a real redis-server on a free loopback port, started and stopped here.
/// </summary>
/// <remarks>
/// The target (issue 12): the Redis backend keeps at most 2x the Memory backend's heap bytes per series in the process.
/// The label strings exist before the first reading, so only what the library and backend keep per series is counted.
/// </remarks>
internal static class BackendMemory
{
    public const string ChildMode = "--memory-backend";

    private static readonly string[] Backends = ["Memory", "SharedMemory", "Redis"];

    /// <summary>Prints one table per series count, each backend measured in its own child process.</summary>
    public static int Run(TextWriter output, IReadOnlyList<int> seriesCounts)
    {
        var failed = 0;
        foreach (var series in seriesCounts)
        {
            output.WriteLine();
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Per-series state in the process by backend ({series:N0} distinct labelled counter series, each incremented once and flushed)"));
            output.WriteLine();
            output.WriteLine("| backend | heap bytes per series | heap / Memory | RSS bytes per series | RSS / Memory | RSS bytes per series, free memory returned | ratio / Memory | heap growth | RSS growth |");
            output.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            double? memoryHeap = null;
            double? memoryRss = null;
            double? memoryTrimmed = null;
            foreach (var backend in Backends)
            {
                var (ok, heap, rss, trimmed, error) = Measure(backend, series);
                if (!ok)
                {
                    failed = 1;
                    output.WriteLine($"| {backend} | failed: {error} | | | | | | | |");
                    continue;
                }

                memoryHeap ??= backend == "Memory" ? heap : null;
                memoryRss ??= backend == "Memory" ? rss : null;
                memoryTrimmed ??= backend == "Memory" ? trimmed : null;
                output.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"| {backend} | {heap / series:N0} | {Ratio(heap, memoryHeap)} | {rss / series:N0} | {Ratio(rss, memoryRss)} | {trimmed / series:N0} | {Ratio(trimmed, memoryTrimmed)} | {heap / 1e6:N0} MB | {rss / 1e6:N0} MB |"));
            }
        }

        output.WriteLine();
        output.WriteLine("Target: Redis heap bytes per series <= 2x Memory. RSS is read after a full compacting collection: it includes the free memory the runtime");
        output.WriteLine("keeps from earlier garbage (a flush's batches, a dictionary's old arrays) and, for SharedMemory, the store's mapped pages.");
        output.WriteLine("'Free memory returned' is RSS after an aggressive collection (GCCollectionMode.Aggressive), which gives that free memory back.");
        return failed;
    }

    /// <summary>The child: creates <paramref name="series"/> series on <paramref name="backend"/> and prints the growth.</summary>
    public static int RunChild(string backend, int series)
    {
        using var redis = backend == "Redis" ? RedisServer.Start(durable: false) : null;
        var storePath = backend == "SharedMemory" ? SharedBackendSetup.TempStorePath() : null;
        try
        {
            var configured = backend switch
            {
                "Memory" => ConfiguredBackend.Memory,
                "SharedMemory" => SharedBackendSetup.SharedMemory(storePath!),
                // A flush of a million fresh series takes several rounds; OperationTimeout bounds the whole Flush. Only the
                // explicit flushes run, so no timer round is sending a batch at a reading.
                "Redis" => ConfiguredBackend.Create<Metrics.Backends.Redis.RedisBackend>(
                    new BackendConfig(new Dictionary<string, string?>
                    {
                        ["ConnectionString"] = redis!.ConnectionString,
                        ["KeyPrefix"] = "memory:",
                        ["OperationTimeout"] = "120s",
                        ["FlushInterval"] = "1h",
                    }),
                    "Redis"),
                _ => throw new ArgumentException($"Unknown backend '{backend}'; use Memory, SharedMemory or Redis.", nameof(backend)),
            };

            var endpoints = new string[series];
            for (var i = 0; i < series; i++)
            {
                endpoints[i] = "/api/v1/items/" + i.ToString(CultureInfo.InvariantCulture);
            }

            var registry = new MetricRegistry(backend: configured) { CardinalityLimit = int.MaxValue };
            var counter = new Counter("requests_total", "Requests.", ["endpoint", "method"], registry: registry);

            // One series first, so the store, connection and flusher exist before the first reading.
            new Counter("warmup_total", "Warm-up.", ["endpoint"], registry: registry).Labels("/").Inc();
            configured.Flush();

            var (heapBefore, rssBefore) = Reading();
            var trimmedBefore = Trimmed();
            for (var i = 0; i < series; i++)
            {
                counter.Labels(endpoints[i], "GET").Inc();
            }

            configured.Flush();
            var (heapAfter, rssAfter) = Reading();
            var trimmedAfter = Trimmed();

            // A shared store must hold every value: otherwise the reading measured a backend that kept them pending.
            // Memory has no store to read (Collect answers null: the values live in the registry).
            var collected = configured.Collect([new MetricDescriptor("requests_total", "Requests.", MetricType.Counter, ["endpoint", "method"])]);
            var stored = collected is null ? series : collected[0].Count;
            if (stored != series)
            {
                Console.Error.WriteLine($"{backend}: the store holds {stored} series of requests_total, expected {series}.");
                return 1;
            }

            GC.KeepAlive(counter);
            GC.KeepAlive(endpoints);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"memory: {heapAfter - heapBefore} {rssAfter - rssBefore} {trimmedAfter - trimmedBefore}"));
            configured.ShutdownAsync().AsTask().GetAwaiter().GetResult();
            return 0;
        }
        finally
        {
            if (storePath is not null)
            {
                File.Delete(storePath);
            }
        }
    }

    private static (long Heap, long Rss) Reading()
    {
        // Read until the heap stops shrinking: when Flush returns, the continuation that finished its round may still
        // hold the batch it sent for a moment (28 MB at 100,000 series, in about one run of four), which is not state
        // the process keeps per series.
        var heap = long.MaxValue;
        while (true)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            var reading = GC.GetTotalMemory(forceFullCollection: true);
            if (reading >= heap - (heap / 100))
            {
                heap = Math.Min(heap, reading);
                break;
            }

            heap = reading;
        }
        using var self = Process.GetCurrentProcess();
        return (heap, self.WorkingSet64);
    }

    /// <summary>RSS after an aggressive collection, which returns the runtime's free memory to the system.</summary>
    private static long Trimmed()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        using var self = Process.GetCurrentProcess();
        return self.WorkingSet64;
    }

    private static (bool Ok, double Heap, double Rss, double Trimmed, string? Error) Measure(string backend, int series)
    {
        var assembly = typeof(BackendMemory).Assembly.Location;
        using var child = ChildProcess.StartDotnet(assembly, [ChildMode, backend, series.ToString(CultureInfo.InvariantCulture)]);
        child.CloseInput();
        var exitCode = child.WaitForExit(TimeSpan.FromMinutes(15));
        var line = child.Stdout.Split('\n').FirstOrDefault(l => l.StartsWith("memory: ", StringComparison.Ordinal));
        if (exitCode != 0 || line is null)
        {
            return (false, 0, 0, 0, $"exit code {exitCode}: {child.Stderr.Trim().ReplaceLineEndings(" ")}");
        }

        var parts = line["memory: ".Length..].Trim().Split(' ');
        return (true, double.Parse(parts[0], CultureInfo.InvariantCulture), double.Parse(parts[1], CultureInfo.InvariantCulture), double.Parse(parts[2], CultureInfo.InvariantCulture), null);
    }

    private static string Ratio(double value, double? baseline) =>
        baseline is > 0 ? (value / baseline.Value).ToString("0.00", CultureInfo.InvariantCulture) : "-";
}
