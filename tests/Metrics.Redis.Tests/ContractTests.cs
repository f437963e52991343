using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Metrics.Backends.Redis;
using Metrics.Hosting;
using Metrics.Tests;
using StackExchange.Redis;

namespace Metrics.Redis.Tests;

/// <summary>Contract 1.1 on Redis: lifecycle, async scrapes through Core, atomic histogram observation, schema conflicts.</summary>
public sealed class ContractTests(SharedRedis redis) : RedisTestBase
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private string Cs => redis.Server.ConnectionString;

    [Fact]
    public async Task SchemaConflict_WithARealChildProcess_ScrapeStaysWhole_ConflictIsCounted_AndEndsWhenItsKeysExpire()
    {
        var config = Config(Cs, extra: [("KeyExpiry", "2s"), ("FlushInterval", "100ms")]);
        await using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
        var histogram = new Histogram(WorkerShapes.ConflictName, "Declared with the test's buckets.", registry: registry, buckets: [0.3, 1]);
        var counter = new Counter("schema_requests_total", "Another family, which the conflict must not touch.", ["route"], registry: registry);
        for (var i = 0; i < 3; i++)
        {
            histogram.Observe(0.25);
        }

        histogram.Observe(0.5);
        histogram.Observe(0.5);
        counter.Labels("a").Inc(5);
        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);

        using var connection = await ConnectionMultiplexer.ConnectAsync(Cs + ",allowAdmin=true");
        var db = connection.GetDatabase();
        RedisKey childKey = $"{Prefix}{{{WorkerShapes.ConflictName}}}:{WorkerShapes.ConflictChild.DefinitionId}";

        // Redis announces each expired key: the test waits for that announcement, not for time.
        await db.ExecuteAsync("CONFIG", "SET", "notify-keyspace-events", "Ex");
        var expired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await connection.GetSubscriber().SubscribeAsync(RedisChannel.Literal("__keyevent@0__:expired"), (_, key) =>
        {
            if (key == (string)childKey!)
            {
                expired.TrySetResult();
            }
        });
        using (var child = Metrics.Tests.ChildProcess.StartDotnet(Path.Combine(AppContext.BaseDirectory, "Metrics.Redis.Worker.dll"), ["conflict", Cs, Prefix, "2s"]))
        {
            child.WaitForLine("ready", Deadline);
            Assert.True(await db.KeyExistsAsync(childKey), $"the child's values are not under {childKey}:\n{child.Output}");

            // The child writes again before each scrape, so its keys cannot expire (2 s) while this process is slow.
            child.WriteLine("observe");
            child.WaitForLine("observed", Deadline);
            var first = await ScrapeAsync(registry);
            AssertOwnValuesExact(first);
            var conflicts = Statistic(first, "metrics_backend_schema_conflicts_total");
            Assert.True(conflicts >= 1, $"no conflict counted:\n{first}");

            // One per family per collect: only the histogram conflicts.
            child.WriteLine("observe");
            child.WaitForLine("observed", Deadline);
            var second = await ScrapeAsync(registry);
            AssertOwnValuesExact(second);
            Assert.Equal(conflicts + 1, Statistic(second, "metrics_backend_schema_conflicts_total"));

            child.WriteLine("stop");
            child.CloseInput();
            Assert.Equal(0, child.WaitForExit(Deadline));
        }

        if (await db.KeyExistsAsync(childKey))
        {
            await expired.Task.WaitAsync(Deadline, TestContext.Current.CancellationToken);
        }

        Assert.False(await db.KeyExistsAsync(childKey), $"{childKey} is still there after Redis announced its expiry");

        // The first scrape after the expiry may still have raced it; from the next one on nothing is counted.
        var settled = Statistic(await ScrapeAsync(registry), "metrics_backend_schema_conflicts_total");
        for (var i = 0; i < 3; i++)
        {
            var later = await ScrapeAsync(registry);
            AssertOwnValuesExact(later);
            Assert.Equal(settled, Statistic(later, "metrics_backend_schema_conflicts_total"));
        }

        Assert.False(await db.HashExistsAsync($"{Prefix}{{{WorkerShapes.ConflictName}}}:defs", WorkerShapes.ConflictChild.DefinitionId), "the expired definition is still recorded");
    }

    [Fact]
    public async Task FiftyConcurrentScrapesOf11000Series_AllSucceed_AndShareFewBackendReads()
    {
        const int Series = 11_000, Scrapes = 50;
        var config = Config(Cs, extra: ("OperationTimeout", "10s"));
        await using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
        var counter = new Counter("wide_total", "Many series.", ["id"], registry: registry) { CardinalityLimit = Series };
        for (var i = 0; i < Series; i++)
        {
            counter.Labels(i.ToString(CultureInfo.InvariantCulture)).Inc(i);
        }

        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);
        using (var warm = await ScrapeResponse.RenderAsync(registry, null, null, TestContext.Current.CancellationToken))
        {
            Assert.Equal(200, warm.StatusCode);
        }

        var readsBefore = registry.BackendReads;
        var watch = Stopwatch.StartNew();
        var scrapes = Enumerable.Range(0, Scrapes).Select(_ => TimedScrapeAsync(registry)).ToArray();
        var results = await Task.WhenAll(scrapes).WaitAsync(Deadline, TestContext.Current.CancellationToken);
        var total = watch.Elapsed;
        var reads = registry.BackendReads - readsBefore;

        foreach (var (status, body, _) in results)
        {
            Assert.True(status == 200, body.Length > 500 ? body[..500] : body);
            Assert.Equal(Series, Regex.Count(body, "^wide_total\\{", RegexOptions.Multiline));
            Assert.Contains("wide_total{id=\"10999\"} 10999\n", body, StringComparison.Ordinal);
        }

        Assert.True(reads <= 5, $"{Scrapes} concurrent scrapes made {reads} backend reads");
        var latencies = results.Select(r => r.Elapsed.TotalMilliseconds).Order().ToArray();
        TestContext.Current.TestOutputHelper?.WriteLine($"{Scrapes} concurrent scrapes of {Series} series: {reads} backend read(s), all done in {total.TotalMilliseconds:F0} ms, latency median {latencies[Scrapes / 2]:F0} ms, max {latencies[^1]:F0} ms");
    }

    [Fact]
    public async Task DisposingTheLastRegistry_ShutsTheBackendDown_AndFlushesEveryUpdate_AndAFreshStoreWorksAfterwards()
    {
        var config = Config(Cs, extra: ("FlushInterval", "1h"));
        var backend = ConfiguredBackend.Create<RedisBackend>(config);
        var descriptor = new MetricDescriptor("shutdown_total", "Flushed by shutdown only.", MetricType.Counter);
        IMetricBackend kept;
        await using (var registry = new MetricRegistry(backend: backend))
        {
            var counter = new Counter("shutdown_total", "Flushed by shutdown only.", registry: registry);
            kept = backend.CreateValue(descriptor);
            for (var i = 0; i < 10_000; i++)
            {
                counter.Inc();
            }
        }

        using var connection = await ConnectionMultiplexer.ConnectAsync(Cs);
        var dataKey = $"{Prefix}{{shutdown_total}}:{descriptor.DefinitionId}";
        Assert.Equal(10_000, await StoredValueAsync(connection.GetDatabase(), dataKey, FieldCodec.Encode([], null)));

        // A value kept past shutdown takes updates without failing; they may be lost.
        kept.Inc(1);
        kept.Set(3);
        _ = kept.Get();

        // Used again, the configuration initializes a fresh store that reads and writes Redis.
        var again = backend.CreateValue(descriptor);
        Assert.Equal(10_000, again.Get());
        again.Inc(5);
        await backend.ShutdownAsync(TestContext.Current.CancellationToken);
        Assert.Equal(10_005, await StoredValueAsync(connection.GetDatabase(), dataKey, FieldCodec.Encode([], null)));
    }

    [Fact]
    public async Task ConcurrentObservationsAndScrapes_EveryScrapesSumMatchesItsBuckets()
    {
        var config = Config(Cs, extra: ("FlushInterval", "2ms"));
        await using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RedisBackend>(config));
        var histogram = new Histogram("atomic_seconds", "Observed with 1.0 only, so _sum equals _count.", ["k"], registry: registry, buckets: [0.5, 2]);
        var series = histogram.Labels("x");
        var running = 1;
        long observed = 0;
        var observers = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            while (Volatile.Read(ref running) == 1)
            {
                series.Observe(1.0);
                Interlocked.Increment(ref observed);
            }
        })).ToList();
        observers.ForEach(t => t.Start());

        var checkedScrapes = 0;
        try
        {
            var watch = Stopwatch.StartNew();
            while (checkedScrapes < 200 && watch.Elapsed < Deadline)
            {
                var bodies = await Task.WhenAll(ScrapeAsync(registry), ScrapeAsync(registry));
                foreach (var body in bodies)
                {
                    var count = SeriesValue(body, "atomic_seconds_count{k=\"x\"}");
                    var sum = SeriesValue(body, "atomic_seconds_sum{k=\"x\"}");
                    Assert.True(sum == count, $"a scrape saw _sum {sum} with _count {count}");
                    Assert.Equal(count, SeriesValue(body, "atomic_seconds_bucket{k=\"x\",le=\"2\"}"));
                    checkedScrapes++;
                }
            }
        }
        finally
        {
            Volatile.Write(ref running, 0);
            observers.ForEach(t => t.Join());
        }

        Assert.True(checkedScrapes >= 200, $"only {checkedScrapes} scrapes were checked");
        await registry.Backend.FlushAsync(TestContext.Current.CancellationToken);
        var last = await ScrapeAsync(registry);
        Assert.Equal(observed, SeriesValue(last, "atomic_seconds_count{k=\"x\"}"));
        Assert.Equal(observed, SeriesValue(last, "atomic_seconds_sum{k=\"x\"}"));
    }

    [Fact]
    public void ObserveHistogram_OnAnExistingSeries_AllocatesNothing()
    {
        var config = Config(Cs, extra: ("FlushInterval", "1h"));
        var backend = ConfiguredBackend.Create<RedisBackend>(config);
        Assert.True((backend.Capabilities & BackendCapabilities.AtomicHistogramObserve) != 0);
        using var registry = new MetricRegistry(backend: backend);
        var histogram = new Histogram("alloc_seconds", "Observed.", registry: registry, buckets: [0.5, 2]);
        var descriptor = new MetricDescriptor("alloc_direct_seconds", "Observed.", MetricType.Histogram, buckets: [1, double.PositiveInfinity]);
        var bucket = backend.CreateValue(descriptor, HistogramBucket.ForUpperBound(1));
        var sum = backend.CreateValue(descriptor, HistogramBucket.Sum);
        histogram.Observe(1);
        sum.ObserveHistogram(bucket, 0.5);

        // The helper's unmeasured first pass covers what happens once per process (the loop's tier-up, the first push
        // of each value onto the flusher's stack): not the steady state this test is about.
        var calls = 0;
        Allocations.AssertNone("histogram observe and ObserveHistogram", () =>
        {
            histogram.Observe(calls++ % 3);
            sum.ObserveHistogram(bucket, 0.5);
        });

        Assert.Equal(1 + calls, bucket.Get());
        Assert.Equal(0.5 + (0.5 * calls), sum.Get());
    }

    private static async Task<string> ScrapeAsync(MetricRegistry registry)
    {
        using var response = await ScrapeResponse.RenderAsync(registry, "text/plain", null, TestContext.Current.CancellationToken);
        var body = Encoding.UTF8.GetString(response.Body.Span);
        Assert.True(response.StatusCode == 200, body);
        return body;
    }

    private static async Task<(int Status, string Body, TimeSpan Elapsed)> TimedScrapeAsync(MetricRegistry registry)
    {
        await Task.Yield();
        var watch = Stopwatch.StartNew();
        using var response = await ScrapeResponse.RenderAsync(registry, null, null, TestContext.Current.CancellationToken);
        return (response.StatusCode, Encoding.UTF8.GetString(response.Body.Span), watch.Elapsed);
    }

    private static void AssertOwnValuesExact(string body)
    {
        Assert.Contains("schema_seconds_bucket{le=\"0.3\"} 3\n", body, StringComparison.Ordinal);
        Assert.Contains("schema_seconds_bucket{le=\"1\"} 5\n", body, StringComparison.Ordinal);
        Assert.Contains("schema_seconds_bucket{le=\"+Inf\"} 5\n", body, StringComparison.Ordinal);
        Assert.Contains("schema_seconds_sum 1.75\n", body, StringComparison.Ordinal);
        Assert.Contains("schema_seconds_count 5\n", body, StringComparison.Ordinal);
        Assert.Contains("schema_requests_total{route=\"a\"} 5\n", body, StringComparison.Ordinal);
        Assert.DoesNotContain("le=\"5\"", body, StringComparison.Ordinal);
        Assert.DoesNotContain("metrics_scrape_skipped_values_total", body, StringComparison.Ordinal);
    }

    private static double Statistic(string body, string name) => SeriesValue(body, name);

    private static double SeriesValue(string body, string series)
    {
        foreach (var line in body.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        Assert.Fail($"no line for {series} in:\n{body}");
        return 0;
    }
}
