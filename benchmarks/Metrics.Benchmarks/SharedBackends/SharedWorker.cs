using System.Diagnostics;
using System.Globalization;

namespace Metrics.Benchmarks.SharedBackends;

/// <summary>
/// The child processes the shared-backend benchmarks start: each behaves as one application process writing
/// metrics through the public API, so values from several processes meet in the store.
/// </summary>
internal static class SharedWorker
{
    public static int Run(string[] args)
    {
        switch (args[0])
        {
            case "series":
                // series shm <path> | series redis <connection> <prefix>: writes the 11,000 scrape series once, then exits.
                WriteScrapeSeries(Backend(args[1..]));
                return 0;
            case "load":
                // load <connection> <prefix> <families> <series per family> <seconds> <updates/s, 0 = unlimited>
                return Load(args[1], args[2], Int(args[3]), Int(args[4]), double.Parse(args[5], CultureInfo.InvariantCulture), Int(args[6]));
            default:
                Console.Error.WriteLine($"unknown worker command '{args[0]}'");
                return 2;
        }
    }

    /// <summary>The registry declaration of the scrape families, shared by the workers and the scraping process.</summary>
    public static (Counter Counter, Histogram Histogram) DeclareScrapeFamilies(MetricRegistry registry) =>
    (
        new Counter("http_requests_total", "Requests served.", ["endpoint", "method"], registry: registry),
        new Histogram("http_request_duration_seconds", "Request latency.", ["endpoint"], registry: registry)
    );

    public static ConfiguredBackend Backend(string[] args) => args[0] switch
    {
        "shm" => SharedBackendSetup.SharedMemory(args[1]),
        "redis" => SharedBackendSetup.Redis(args[1], args[2]),
        _ => throw new ArgumentException($"unknown backend '{args[0]}'"),
    };

    private static int Int(string text) => int.Parse(text, CultureInfo.InvariantCulture);

    /// <summary>The same values as <see cref="SeriesData.OurScrapeRegistry"/>, so N workers leave N times its totals.</summary>
    private static void WriteScrapeSeries(ConfiguredBackend backend)
    {
        var registry = new MetricRegistry(backend: backend) { CardinalityLimit = int.MaxValue };
        var (counter, histogram) = DeclareScrapeFamilies(registry);
        for (var i = 0; i < SeriesData.CounterSeries; i++)
        {
            counter.Labels(SeriesData.Endpoints[i], SeriesData.Method(i)).Inc(i + 1);
        }

        for (var i = 0; i < SeriesData.HistogramSeries; i++)
        {
            var child = histogram.Labels(SeriesData.Endpoints[i]);
            foreach (var value in SeriesData.Observations)
            {
                child.Observe(value * (1 + (i % 7)));
            }
        }

        backend.Flush();
        Console.WriteLine("done");
    }

    /// <summary>
    /// Creates the series, flushes, says "ready", waits for a line on stdin, then increments round-robin over all series for
    /// <paramref name="seconds"/>, as fast as it can or at <paramref name="rate"/> updates/s; flushes and prints the count.
    /// </summary>
    private static int Load(string connection, string prefix, int families, int seriesPerFamily, double seconds, int rate)
    {
        var backend = SharedBackendSetup.Redis(connection, prefix);
        var registry = new MetricRegistry(backend: backend) { CardinalityLimit = int.MaxValue };
        var series = new List<Counter>(families * seriesPerFamily);
        for (var f = 0; f < families; f++)
        {
            var counter = new Counter($"load_{f}_total", "Load test updates.", ["series"], registry: registry);
            for (var s = 0; s < seriesPerFamily; s++)
            {
                series.Add(counter.Labels(s.ToString(CultureInfo.InvariantCulture)));
            }
        }

        var values = series.ToArray();
        backend.Flush();
        Console.WriteLine("ready");
        Console.In.ReadLine();

        var watch = Stopwatch.StartNew();
        var limit = (long)(seconds * Stopwatch.Frequency);
        var count = 0L;
        var next = 0;
        if (rate == 0)
        {
            // The clock is read once per 4,096 updates so that the loop measures Inc, not Stopwatch.
            while (watch.ElapsedTicks < limit)
            {
                for (var i = 0; i < 4096; i++)
                {
                    values[next].Inc();
                    if (++next == values.Length)
                    {
                        next = 0;
                    }
                }

                count += 4096;
            }
        }
        else
        {
            while (watch.ElapsedTicks < limit)
            {
                var due = (long)(watch.Elapsed.TotalSeconds * rate);
                while (count < due)
                {
                    values[next].Inc();
                    if (++next == values.Length)
                    {
                        next = 0;
                    }

                    count++;
                }

                Thread.Sleep(1);
            }
        }

        var elapsed = watch.Elapsed.TotalSeconds;
        backend.Flush();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"done {count} {elapsed:R} {Metrics.Backends.Redis.RedisBackend.DroppedUpdates}"));
        return 0;
    }
}
