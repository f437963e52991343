using System.Globalization;
using System.Text;
using Metrics.Backends.SharedMemory;
using Metrics.Hosting;

namespace Metrics.SharedMemory.Tests;

/// <summary>Processes that declare one metric name differently (a rolling deploy) share a store without harming each other.</summary>
public sealed class SchemaTests
{
    private const string ConflictsName = "metrics_backend_schema_conflicts_total";

    [Fact]
    public async Task A_process_with_other_histogram_buckets_neither_fails_nor_mixes_the_scrape_and_is_counted_while_it_lives()
    {
        using var store = new Store();
        var backend = ConfiguredBackend.Create<SharedMemoryBackend>(store.Config, "SharedMemory");
        await using var registry = new MetricRegistry(backend: backend);
        var histogram = new Histogram(Store.Histogram.Name, "Latency.", ["method"], registry: registry, buckets: [0.5]);
        var counter = new Counter(Store.Counter.Name, "Requests.", ["method", "path"], registry: registry);
        var gauge = new Gauge("shm_schema_live", "Live workers.", registry: registry, aggregation: GaugeAggregation.LiveSum);
        histogram.Labels("GET").Observe(0.25);
        histogram.Labels("GET").Observe(0.25);
        histogram.Labels("GET").Observe(0.75);
        counter.Labels("GET", "a\"b\n,c=d ü").Inc(2);
        gauge.Set(4);

        var errors = new StringWriter();
        var previousRoute = BackendLog.Handler;
        BackendLog.Handler = (backend, _, message, _) =>
        {
            lock (errors)
            {
                errors.WriteLine($"{backend}: {message}");
            }
        };
        try
        {
            using var other = Worker.Start(store.FilePath, "schema", "1,2");
            other.WaitForLine("ready");

            var first = await ScrapeAsync(registry);
            // Only this process's buckets; the counter both agree on includes the other process's 5.
            Assert.Contains("shm_latency_seconds_bucket{method=\"GET\",le=\"0.5\"} 2\n", first, StringComparison.Ordinal);
            Assert.Contains("shm_latency_seconds_bucket{method=\"GET\",le=\"+Inf\"} 3\n", first, StringComparison.Ordinal);
            Assert.Contains("shm_latency_seconds_sum{method=\"GET\"} 1.25\n", first, StringComparison.Ordinal);
            Assert.Contains("shm_latency_seconds_count{method=\"GET\"} 3\n", first, StringComparison.Ordinal);
            Assert.DoesNotContain("le=\"1\"", first, StringComparison.Ordinal);
            Assert.DoesNotContain("le=\"2\"", first, StringComparison.Ordinal);
            Assert.Contains("shm_requests_total{method=\"GET\",path=\"a\\\"b\\n,c=d ü\"} 7\n", first, StringComparison.Ordinal);
            Assert.Contains("shm_schema_live 4\n", first, StringComparison.Ordinal);
            Assert.Equal(1, Conflicts(first));

            // One per family per scrape while the other process lives.
            var second = await ScrapeAsync(registry);
            Assert.Equal(2, Conflicts(second));
            Assert.Contains("shm_latency_seconds_count{method=\"GET\"} 3\n", second, StringComparison.Ordinal);

            other.CloseInput();
            Assert.Equal(0, other.WaitForExit());
            var third = await ScrapeAsync(registry);
            var fourth = await ScrapeAsync(registry);
            Assert.Equal(2, Conflicts(third));
            Assert.Equal(2, Conflicts(fourth));
            Assert.Contains("shm_latency_seconds_count{method=\"GET\"} 3\n", fourth, StringComparison.Ordinal);
            Assert.Contains("shm_requests_total{method=\"GET\",path=\"a\\\"b\\n,c=d ü\"} 7\n", fourth, StringComparison.Ordinal);
        }
        finally
        {
            BackendLog.Handler = previousRoute;
        }

        var line = Assert.Single(errors.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains(Store.Histogram.Name, StringComparison.Ordinal));
        Assert.Contains("histogram;labels=method;buckets=0.5,+Inf", line, StringComparison.Ordinal);
        Assert.Contains("histogram;labels=method;buckets=1,2,+Inf", line, StringComparison.Ordinal);
        Assert.DoesNotContain(Store.Counter.Name, errors.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Each_definition_keeps_its_own_values_and_a_dead_definition_stops_counting()
    {
        using var store = new Store();
        var mine = new MetricDescriptor("schema_hist", "", MetricType.Histogram, ["k"], buckets: [1, double.PositiveInfinity]);
        var theirs = new MetricDescriptor("schema_hist", "", MetricType.Histogram, ["k"], buckets: [1, 5, double.PositiveInfinity]);
        var asGauge = new MetricDescriptor("schema_hist", "", MetricType.Gauge, ["k"]);
        store.Create(mine.WithLabelValues(["a"]), HistogramBucket.ForUpperBound(1)).Inc(2);
        store.Create(theirs.WithLabelValues(["a"]), HistogramBucket.ForUpperBound(1)).Inc(30);
        store.Create(asGauge.WithLabelValues(["a"])).Set(400);

        var errors = new StringWriter();
        var previousRoute = BackendLog.Handler;
        BackendLog.Handler = (backend, _, message, _) =>
        {
            lock (errors)
            {
                errors.WriteLine($"{backend}: {message}");
            }
        };
        long conflicts;
        try
        {
            var before = Conflicts(store);
            // The same series under another definition is another value.
            Assert.Equal(2, store.Single(mine, HistogramBucket.ForUpperBound(1)));
            Assert.Equal(30, store.Single(theirs, HistogramBucket.ForUpperBound(1)));
            Assert.Equal(400, Assert.Single(store.Collect(asGauge)).Value);
            Assert.Equal(before + 3, Conflicts(store));
            conflicts = Conflicts(store);
        }
        finally
        {
            BackendLog.Handler = previousRoute;
        }

        Assert.Single(errors.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));

        // After a shutdown this process's old slot is dead, and with it the definitions recorded under it.
        store.Shutdown();
        Assert.Equal(2, store.Create(mine.WithLabelValues(["a"]), HistogramBucket.ForUpperBound(1)).Get());
        Assert.Equal(2, store.Single(mine, HistogramBucket.ForUpperBound(1)));
        Assert.Equal(2, store.Single(mine, HistogramBucket.ForUpperBound(1)));
        Assert.Equal(conflicts, Conflicts(store));
        // Their entries stay in the file but are never served under this definition.
        Assert.Equal(30, store.Single(theirs, HistogramBucket.ForUpperBound(1)));
    }

    private static long Conflicts(Store store) =>
        (long)SharedMemoryBackend.Statistics(store.Config).Single(s => s.Name == ConflictsName).Value;

    private static long Conflicts(string scrape)
    {
        var line = scrape.Split('\n').Single(l => l.StartsWith(ConflictsName + " ", StringComparison.Ordinal));
        return long.Parse(line[(ConflictsName.Length + 1)..], CultureInfo.InvariantCulture);
    }

    private static async Task<string> ScrapeAsync(MetricRegistry registry)
    {
        using var response = await ScrapeResponse.RenderAsync(registry, "text/plain", null);
        var body = Encoding.UTF8.GetString(response.Body.Span);
        Assert.True(response.StatusCode == 200, body);
        return body;
    }
}
