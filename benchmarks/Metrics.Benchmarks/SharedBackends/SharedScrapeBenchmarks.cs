using System.Globalization;
using BenchmarkDotNet.Attributes;
using Metrics.Tests;

namespace Metrics.Benchmarks.SharedBackends;

/// <summary>
/// A scrape (<see cref="MetricRegistry.WriteAsync"/>, Prometheus text) of 11,000 series: one counter family with
/// 10,000 label sets and one histogram with 1,000. For the shared backends the series are created and updated by
/// 4 worker processes; the scraping process only declares the two families and reads every series through Collect.
/// </summary>
[MemoryDiagnoser]
public class SharedScrape11kSeries
{
    public const int Writers = 4;

    private readonly MemoryStream _stream = new();
    private MetricRegistry _registry = null!;
    private RedisServer? _redis;
    private string? _storePath;
    private Dictionary<string, long>? _commandsBefore;
    private long _scrapes;

    [GlobalSetup(Target = nameof(Memory))]
    public void SetupMemory()
    {
        _registry = SeriesData.OurScrapeRegistry();
        Prepare(expectedWriters: 1);
    }

    [GlobalSetup(Target = nameof(SharedMemory))]
    public void SetupSharedMemory()
    {
        _storePath = SharedBackendSetup.TempStorePath();
        RunWriters("shm", _storePath);
        var backend = SharedBackendSetup.SharedMemory(_storePath);
        _registry = new MetricRegistry(backend: backend) { CardinalityLimit = int.MaxValue };
        SharedWorker.DeclareScrapeFamilies(_registry);
        Prepare(Writers);
        ReportCollectShare(backend);
    }

    [GlobalSetup(Target = nameof(Redis))]
    public void SetupRedis()
    {
        _redis = RedisServer.Start(durable: false);
        RunWriters("redis", _redis.ConnectionString, "bench:");
        var backend = SharedBackendSetup.Redis(_redis.ConnectionString, "bench:");
        _registry = new MetricRegistry(backend: backend) { CardinalityLimit = int.MaxValue };
        SharedWorker.DeclareScrapeFamilies(_registry);
        Prepare(Writers);
        ReportCollectShare(backend);

        // Commands one scrape sends, counted by the server over a fixed number of scrapes.
        const int scrapes = 20;
        var before = _redis.CommandCalls();
        var micros = CommandMicros(_redis);
        for (var i = 0; i < scrapes; i++)
        {
            Scrape().GetAwaiter().GetResult();
        }

        Console.WriteLine("// Redis commands per scrape (INFO commandstats, 20 scrapes): " + PerScrape(RedisServer.Delta(before, _redis.CommandCalls()), scrapes));
        Console.WriteLine("// Redis server time per scrape, microseconds (INFO commandstats usec): " + PerScrape(RedisServer.Delta(micros, CommandMicros(_redis)), scrapes));
        _commandsBefore = _redis.CommandCalls();
        _scrapes = 0;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        var delta = _redis is null ? null : RedisServer.Delta(_commandsBefore!, _redis.CommandCalls());

        // Released while Redis still runs and before the store file is deleted: an open store recreates a deleted file
        // at its next identity check.
        ConfiguredBackend.ShutdownAllAsync().Wait(TimeSpan.FromSeconds(30));
        if (_redis is not null)
        {
            Console.WriteLine($"// Redis commands per scrape over the whole run ({_scrapes} scrapes): {PerScrape(delta!, _scrapes)}");
            _redis.Dispose();
        }

        if (_storePath is not null)
        {
            File.Delete(_storePath);
        }
    }

    [Benchmark(Baseline = true)]
    public Task Memory() => Scrape();

    [Benchmark]
    public Task SharedMemory() => Scrape();

    [Benchmark]
    public Task Redis()
    {
        _scrapes++;
        return Scrape();
    }

    // Server time per command (usec= of INFO commandstats): what a scrape costs Redis itself, beside the client's decoding.
    private static Dictionary<string, long> CommandMicros(RedisServer redis) =>
        redis.Info("commandstats").ToDictionary(
            kv => kv.Key.Replace("cmdstat_", string.Empty, StringComparison.Ordinal),
            kv => long.Parse(kv.Value.Split(',')[1]["usec=".Length..], CultureInfo.InvariantCulture),
            StringComparer.Ordinal);

    // INFO is the measurement's own command.
    private static string PerScrape(Dictionary<string, long> delta, long scrapes) =>
        string.Join(", ", delta.Where(kv => kv.Value != 0 && kv.Key != "info").OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {(double)kv.Value / Math.Max(1, scrapes):0.##}")));

    private static void RunWriters(params string[] backend)
    {
        var workers = Enumerable.Range(0, Writers).Select(_ => SharedBackendSetup.StartWorker(["series", .. backend])).ToArray();
        foreach (var worker in workers)
        {
            using (worker)
            {
                worker.WaitForSuccess(TimeSpan.FromMinutes(5));
            }
        }
    }

    /// <summary>Prints how much of a scrape the backend's Collect takes, the rest being rendering in Core.</summary>
    private void ReportCollectShare(ConfiguredBackend backend)
    {
        MetricDescriptor[] families =
        [
            new("http_requests_total", "Requests served.", MetricType.Counter, ["endpoint", "method"]),
            new("http_request_duration_seconds", "Request latency.", MetricType.Histogram, ["endpoint"]),
        ];
        const int rounds = 10;
        var collect = Time(() => backend.Collect(families));
        var scrape = Time(() => Scrape().GetAwaiter().GetResult());
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"// {backend.Name}: Collect {collect.Ms:0.0} ms, {collect.Bytes / 1024.0:0} KB; whole scrape {scrape.Ms:0.0} ms, {scrape.Bytes / 1024.0:0} KB (mean of {rounds}, bytes allocated on the scraping thread)"));

        static (double Ms, double Bytes) Time(Action action)
        {
            action();
            var bytes = GC.GetAllocatedBytesForCurrentThread();
            var watch = System.Diagnostics.Stopwatch.StartNew();
            for (var i = 0; i < rounds; i++)
            {
                action();
            }

            return (watch.Elapsed.TotalMilliseconds / rounds, (GC.GetAllocatedBytesForCurrentThread() - bytes) / (double)rounds);
        }
    }

    private Task Scrape()
    {
        _stream.Position = 0;
        return _registry.WriteAsync(_stream, ExpositionFormat.PrometheusText);
    }

    /// <summary>Grows the stream once and checks that the scrape holds every series with every writer's updates.</summary>
    private void Prepare(int expectedWriters)
    {
        _stream.Capacity = 4 * 1024 * 1024;
        var text = SharedBackendSetup.ScrapeTextAsync(_registry).GetAwaiter().GetResult();
        var counters = SharedBackendSetup.SumSamples(text, "http_requests_total");
        var counts = SharedBackendSetup.SumSamples(text, "http_request_duration_seconds_count");
        var expectedSum = expectedWriters * (double)SeriesData.CounterSeries * (SeriesData.CounterSeries + 1) / 2;
        var expectedCount = expectedWriters * (double)SeriesData.HistogramSeries * SeriesData.Observations.Length;
        if (counters.Samples != SeriesData.CounterSeries || counters.Sum != expectedSum
            || counts.Samples != SeriesData.HistogramSeries || counts.Sum != expectedCount)
        {
            throw new InvalidOperationException(
                $"The scrape is incomplete: {counters.Samples} counter series summing to {counters.Sum} (expected {SeriesData.CounterSeries}, {expectedSum}), " +
                $"{counts.Samples} histogram series counting {counts.Sum} (expected {SeriesData.HistogramSeries}, {expectedCount}).");
        }

        Console.WriteLine($"// scrape verified: {counters.Samples + counts.Samples} series, {text.Length} bytes, {expectedWriters} writer process(es)");
    }
}
