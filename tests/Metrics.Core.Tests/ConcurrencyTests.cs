using System.Globalization;

namespace Metrics.Tests;

public class ConcurrencyTests
{
    [Fact]
    public async Task Four_threads_of_mixed_updates_give_exact_totals_while_scrapes_stay_consistent()
    {
        const int Threads = 4;
        const int UpdatesPerThread = 1_000_000;
        var registry = new MetricRegistry();
        var counter = new Counter("ops_total", "Ops.", ["kind"], registry: registry);
        var gauge = new Gauge("level", "Level.", registry: registry);
        var histogram = new Histogram("size", "Size.", ["kind"], registry: registry, buckets: [1, 2, 3, 4]);
        var unlabelled = new Counter("all_total", "All.", registry: registry);

        using var stop = new CancellationTokenSource();
        var scrapes = 0;
        var scraper = Task.Run(() =>
        {
            var lastTotal = 0.0;
            while (!stop.IsCancellationRequested)
            {
                var text = registry.Render(Volatile.Read(ref scrapes) % 2 == 0 ? ExpositionFormat.PrometheusText : ExpositionFormat.OpenMetrics);
                CheckHistogramConsistency(text);
                var total = ReadValue(text, "all_total");
                Assert.True(total >= lastTotal, $"counter went backwards between scrapes: {lastTotal} then {total}");
                lastTotal = total;
                Interlocked.Increment(ref scrapes);
            }
        }, TestContext.Current.CancellationToken);

        var workers = Enumerable.Range(0, Threads).Select(t => Task.Factory.StartNew(() =>
        {
            var child = counter.Labels(t % 2 == 0 ? "even" : "odd");
            var h = histogram.Labels(t % 2 == 0 ? "even" : "odd");
            for (var i = 0; i < UpdatesPerThread; i++)
            {
                if (i == UpdatesPerThread / 2)
                {
                    // Halfway through, each worker waits for a scrape to complete, so scrapes provably overlap the updates.
                    var seen = Volatile.Read(ref scrapes);
                    SpinWait.SpinUntil(() => Volatile.Read(ref scrapes) > seen || scraper.IsCompleted);
                }

                switch (i % 4)
                {
                    case 0: child.Inc(); break;
                    case 1: gauge.Inc(2); break;
                    case 2: gauge.Dec(); break;
                    default: h.Observe(i % 5); break;
                }

                unlabelled.Inc();
            }
        }, TestContext.Current.CancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();

        await Task.WhenAll(workers);
        await stop.CancelAsync();
        await scraper;

        const double PerKind = Threads / 2 * (UpdatesPerThread / 4);
        Assert.Equal(PerKind, counter.Labels("even").Value);
        Assert.Equal(PerKind, counter.Labels("odd").Value);
        Assert.Equal(Threads * (UpdatesPerThread / 4) * (2 - 1), gauge.Value);
        Assert.Equal(Threads * UpdatesPerThread, unlabelled.Value);

        var final = registry.Render();
        CheckHistogramConsistency(final);
        Assert.Equal(PerKind, ReadValue(final, "size_count{kind=\"even\"}"));

        // Observations are i % 5 for i = 3, 7, 11, ...: the values cycle 3, 2, 1, 0, 4.
        var perValue = PerKind / 5;
        Assert.Equal(perValue * (3 + 2 + 1 + 0 + 4), ReadValue(final, "size_sum{kind=\"odd\"}"));
        Assert.Equal(perValue * 2, ReadValue(final, "size_bucket{kind=\"odd\",le=\"1\"}"));
        Assert.True(scrapes > 0, "no scrape ran during the updates");
    }

    internal static void CheckHistogramConsistency(string text)
    {
        var buckets = new Dictionary<string, List<double>>();
        var counts = new Dictionary<string, double>();
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith('#') || line.Length == 0)
            {
                continue;
            }

            var space = line.LastIndexOf(' ');
            var value = double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture);
            var series = line[..space];
            if (series.Contains("_bucket{", StringComparison.Ordinal))
            {
                var key = series[..series.IndexOf(",le=", StringComparison.Ordinal)].Replace("_bucket", string.Empty, StringComparison.Ordinal);
                if (!buckets.TryGetValue(key, out var list))
                {
                    buckets[key] = list = [];
                }

                if (list.Count > 0)
                {
                    Assert.True(value >= list[^1], $"buckets decrease in {series}: {list[^1]} then {value}");
                }

                list.Add(value);
            }
            else if (series.Contains("_count", StringComparison.Ordinal))
            {
                counts[series.Replace("_count", string.Empty, StringComparison.Ordinal).Replace("}", string.Empty, StringComparison.Ordinal)] = value;
            }
        }

        foreach (var (key, list) in buckets)
        {
            Assert.True(counts.TryGetValue(key, out var count), $"no _count for {key}");
            Assert.Equal(list[^1], count);
        }
    }

    internal static double ReadValue(string text, string series)
    {
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }
}
