using System.Globalization;
using static Metrics.Conformance.CheckContext;

namespace Metrics.Conformance;

/// <summary>Checks that run the metrics API (Counter, Gauge, Histogram, Summary, labels, registry, exposition) on the backend.</summary>
internal static class ApiChecks
{
    public static void HistogramExpositionIsConsistent(CheckContext ctx)
    {
        var registry = new MetricRegistry("conformance_" + ctx.RunId, ctx.Backend);
        ctx.Step = "creating a histogram through the metrics API";
        var histogram = new Histogram("latency", "Latency.", ["route"], registry: registry, buckets: [1, 2, 5]);
        var child = histogram.Labels("/a,b");
        double[] observations = [0.5, 1, 1.5, 2, 4, 7];
        var perThread = Math.Max(600, ctx.Options.IncrementsPerThread / 20) / observations.Length * observations.Length;
        const int Threads = 2;
        var done = 0;
        var scrapes = 0;
        ctx.Step = "observing on 2 threads while scraping";
        var observer = new Thread(() =>
        {
            ValueChecks.RunThreads(Threads, _ =>
            {
                for (var i = 0; i < perThread; i++)
                {
                    child.Observe(observations[i % observations.Length]);
                }
            });
            Volatile.Write(ref done, 1);
        });
        observer.Start();
        while (Volatile.Read(ref done) == 0 || scrapes == 0)
        {
            CheckScrape(ctx, registry.Render(ExpositionFormat.PrometheusText), null);
            scrapes++;
        }

        observer.Join();
        ctx.Backend.Flush();
        var cycles = (double)Threads * perThread / observations.Length;
        CheckScrape(ctx, registry.Render(ExpositionFormat.PrometheusText), new Dictionary<string, double>
        {
            ["1"] = 2 * cycles,
            ["2"] = 4 * cycles,
            ["5"] = 5 * cycles,
            ["+Inf"] = 6 * cycles,
            ["sum"] = observations.Sum() * cycles,
            ["count"] = 6 * cycles,
        });
    }

    public static void MetricApiMatchesMemoryBackend(CheckContext ctx)
    {
        var prefix = "conformance_" + ctx.RunId;
        var tested = new MetricRegistry(prefix, ctx.Backend);
        var reference = new MetricRegistry(prefix, ConfiguredBackend.Memory);
        ctx.Step = "running the metrics API script on the backend";
        Script(tested);
        Script(reference);
        foreach (var format in new[] { ExpositionFormat.PrometheusText, ExpositionFormat.OpenMetrics })
        {
            ctx.Step = $"rendering {format}";
            var expected = Normalize(reference.Render(format), prefix);
            var actual = Normalize(tested.Render(format), prefix);
            if (expected.SequenceEqual(actual, StringComparer.Ordinal))
            {
                continue;
            }

            var line = 0;
            while (line < expected.Count && line < actual.Count && expected[line] == actual[line])
            {
                line++;
            }

            throw ctx.Fail(
                $"The same metrics API calls give a different {format} exposition on this backend than on the Memory backend (_created lines, the backend's own statistics and the order of series within a family ignored). " +
                $"First difference at line {line + 1}: Memory has {(line < expected.Count ? Literal(expected[line]) : "no more lines")}, this backend has {(line < actual.Count ? Literal(actual[line]) : "no more lines")}. " +
                "A value is lost, shared with another series or part, stored with less than double precision, or (for a backend with Collect) returned with wrong label values or parts.");
        }
    }

    /// <summary>Counters, gauges, histograms and summaries with labels, partial and default labels and special values.</summary>
    internal static void Script(MetricRegistry registry)
    {
        var plain = new Counter("plain_total", "Unlabelled.", registry: registry);
        plain.Inc();
        plain.Inc(0.1);
        plain.Inc(0.2);

        var requests = new Counter("requests_total", "Requests with \"quotes\" and \\ in help.", ["method", "code"], registry: registry);
        requests.Labels("GET", "200").Inc();
        requests.Labels("GET", "200").Inc(2.5);
        requests.Labels("a,b", "c").Inc(3);
        requests.Labels("a", "b,c").Inc(4);
        requests.Labels("quote\"", "new\nline").Inc(5);
        requests.Labels(string.Empty, string.Empty).Inc(6);
        requests.Labels("ü日本", "\\").Inc(1e-300);
        var post = requests.Labels(("method", "POST"));
        post.Labels("500").Inc(7);
        post.Labels("201").Inc(8);

        var defaults = new Counter("defaults_total", "Default labels.", ["env", "route"], new Dictionary<string, string> { ["env"] = "prod" }, registry);
        defaults.Labels("/home").Inc();
        defaults.Labels("staging", "/home").Inc(2);
        defaults.Labels(("route", "/x")).Inc(3);

        var temperature = new Gauge("temperature", "Gauge.", ["room"], registry: registry);
        temperature.Labels("kitchen").Set(21.5);
        temperature.Labels("kitchen").Inc(0.25);
        temperature.Labels("kitchen").Dec(1);
        temperature.Labels("zero").Set(-0.0);
        temperature.Labels("nan").Set(double.NaN);
        temperature.Labels("inf").Set(double.PositiveInfinity);
        temperature.Labels("-inf").Set(double.NegativeInfinity);
        temperature.Labels("huge").Set(1e300);
        temperature.Labels("big").Set(9007199254740994);
        temperature.Labels("tiny").Set(double.Epsilon);
        temperature.Labels("down").Dec(3);

        var zone = new Gauge("zone_items", "All labels defaulted.", ["zone"], new Dictionary<string, string> { ["zone"] = "eu" }, registry);
        zone.Inc(3);
        zone.Labels("us").Set(4);
        using (zone.Labels("inprogress").TrackInProgress())
        {
        }

        var latency = new Histogram("latency_seconds", "Histogram.", ["route"], registry: registry, buckets: [0.1, 0.5, 1, 2.5]);
        foreach (var v in new[] { 0.05, 0.1, 0.3, 0.5, 0.7, 1, 2, 3, 100, -1, 0.1 })
        {
            latency.Labels("/").Observe(v);
        }

        latency.Labels("/a,b").Observe(0.2);
        latency.Labels(string.Empty).Observe(double.PositiveInfinity);
        var unlabelled = new Histogram("size_histogram", "Default buckets, unlabelled.", registry: registry);
        unlabelled.Observe(0.004);
        unlabelled.Observe(11);

        var sizes = new Summary("size_bytes", "Summary.", ["kind"], registry: registry);
        sizes.Labels("x").Observe(10);
        sizes.Labels("x").Observe(0.1);
        sizes.Labels("y,z").Observe(-3);
        var jobs = new Summary("job_seconds", "Summary with a default label.", ["queue"], new Dictionary<string, string> { ["queue"] = "default" }, registry);
        jobs.Observe(1.5);
        jobs.Labels("slow").Observe(30);

        _ = new Counter("unused_total", "Never observed.", ["x"], registry: registry);
    }

    /// <summary>
    /// Drops <c>_created</c> lines (timestamps differ) and families outside the script (the statistics a backend reports
    /// about itself), and sorts the samples within each family: a shared store may return series in another order than
    /// they were created, which Prometheus does not care about.
    /// </summary>
    private static List<string> Normalize(string text, string prefix)
    {
        var result = new List<string>();
        var samples = new List<string>();
        var lines = text.Split('\n').Where(l =>
            !l.Contains("_created", StringComparison.Ordinal)
            && (l.Length == 0 || l == "# EOF" || l.StartsWith(prefix, StringComparison.Ordinal) || l.StartsWith("# HELP " + prefix, StringComparison.Ordinal)
                || l.StartsWith("# TYPE " + prefix, StringComparison.Ordinal) || l.StartsWith("# UNIT " + prefix, StringComparison.Ordinal)));
        foreach (var line in lines)
        {
            if (line.StartsWith('#') || line.Length == 0)
            {
                samples.Sort(StringComparer.Ordinal);
                result.AddRange(samples);
                samples.Clear();
                result.Add(line);
            }
            else
            {
                samples.Add(line);
            }
        }

        samples.Sort(StringComparer.Ordinal);
        result.AddRange(samples);
        return result;
    }

    private static void CheckScrape(CheckContext ctx, string text, Dictionary<string, double>? expected)
    {
        var buckets = new List<(string Le, double Value)>();
        double? count = null;
        double? sum = null;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith('#') || line.Length == 0)
            {
                continue;
            }

            var value = double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            var le = line.IndexOf("le=\"", StringComparison.Ordinal);
            if (line.Contains("_bucket{", StringComparison.Ordinal) && le >= 0)
            {
                buckets.Add((line[(le + 4)..line.IndexOf('"', le + 4)], value));
            }
            else if (line.Contains("_sum", StringComparison.Ordinal))
            {
                sum = value;
            }
            else if (line.Contains("_count", StringComparison.Ordinal))
            {
                count = value;
            }
        }

        ctx.Expect(buckets.Count == 4 && count is not null && sum is not null, $"A scrape of the histogram lacks buckets, _sum or _count:\n{text}");
        for (var i = 1; i < buckets.Count; i++)
        {
            ctx.Expect(buckets[i].Value >= buckets[i - 1].Value,
                $"Histogram buckets are not cumulative in a scrape: le=\"{buckets[i - 1].Le}\" is {F(buckets[i - 1].Value)} but le=\"{buckets[i].Le}\" is {F(buckets[i].Value)}. A bucket value went negative or buckets share values:\n{text}");
        }

        var inf = buckets[^1].Value;
        ctx.Expect(inf == count,
            $"In a scrape taken while other threads observed, le=\"+Inf\" is {F(inf)} but _count is {F(count!.Value)}; they must be equal in every scrape. " +
            $"For a backend with Collect, return every bucket of the series (the host derives _count from them):\n{text}");
        if (expected is null)
        {
            return;
        }

        foreach (var (le, value) in buckets)
        {
            ctx.ExpectExact(expected[le], value, $"After all observations, the cumulative bucket le=\"{le}\" of the scrape",
                "Observations were lost (a non-atomic Inc), counted into the wrong bucket, or buckets share one value.");
        }

        ctx.ExpectExact(expected["sum"], sum!.Value, "After all observations, _sum of the scrape", "Increments of the sum were lost or it shares a value with a bucket.");
        ctx.ExpectExact(expected["count"], count!.Value, "After all observations, _count of the scrape", "Observations were lost.");
    }
}
