using System.Globalization;
using Metrics.Tests;

namespace Metrics.Hosting.Tests;

/// <summary>
/// The demo with three SharedMemory worker processes, scraped by a real Prometheus: .NET's own metrics, aggregated across
/// the processes, answer PromQL queries, and with native histograms the demo's native latency histogram counts the same
/// requests as its classic twin.
/// </summary>
public sealed class PrometheusDemoTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("metrics-prometheus-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task Prometheus_scraping_the_demo_with_three_workers_sees_http_gc_and_four_processes()
    {
        using var demo = StartDemo(out var target);
        using var prometheus = PrometheusProcess.Start(_folder, target, nativeHistograms: false);
        foreach (var query in new[]
        {
            "sum(http_server_request_duration_seconds_count) > 0",
            "count(count by (pid) (process_cpu_seconds_total)) == 4",
            "count(dotnet_gc_collections_total) > 0",
        })
        {
            await prometheus.WaitForOneAsync(query, () => demo.Output);
        }
    }

    [Fact]
    public async Task With_native_histograms_the_native_latency_histogram_counts_every_request_of_the_four_processes()
    {
        using var demo = StartDemo(out var target);
        using var prometheus = PrometheusProcess.Start(_folder, target, nativeHistograms: true);
        const string Native = "histogram_count(sum(demo_request_latency_seconds))";
        const string Classic = "sum(demo_request_duration_seconds_count)";

        // Requests from all four processes are in (every one serves traffic), and the native series arrived.
        await prometheus.WaitForOneAsync("count(count by (pid) (process_cpu_seconds_total)) == 4", () => demo.Output);
        await prometheus.WaitForOneAsync(Native, () => demo.Output);

        // Both are evaluated at one instant, so both read the same scrape. A scrape can still land between the two
        // Observe calls of one request (the demo never stops), so a pair may differ by a request in flight; equality
        // must hold at several instants a scrape apart, with traffic growing in between, and a histogram that missed a
        // process or a series would never agree.
        var agreed = new List<double>();
        var disagreed = new List<string>();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (agreed.Count < 3 && DateTime.UtcNow < deadline)
        {
            // Two seconds back: the scrapes up to then are in the database, and later ones cannot enter the evaluation.
            var at = DateTimeOffset.UtcNow.AddSeconds(-2);
            var native = await prometheus.QueryAsync(Native, at);
            var classic = await prometheus.QueryAsync(Classic, at);
            if (native.Length == 1 && classic.Length == 1 && native[0] == classic[0])
            {
                if (native[0] > agreed.LastOrDefault())
                {
                    agreed.Add(native[0]);
                }
            }
            else
            {
                disagreed.Add(string.Create(CultureInfo.InvariantCulture, $"at {at:O}: native [{string.Join(", ", native)}], classic [{string.Join(", ", classic)}]"));
            }

            // The next evaluation waits for the next stored scrape.
            await prometheus.WaitForScrapesAsync(1, TimeSpan.FromSeconds(30));
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"agreed at {string.Join(", ", agreed)}; differed: {disagreed.Count}\n{string.Join('\n', disagreed)}");
        Assert.True(agreed.Count >= 3,
            $"{Native} and {Classic} agreed at {agreed.Count} instants ({string.Join(", ", agreed)}), not 3 within 60 s:\n{string.Join('\n', disagreed)}\nDemo:\n{demo.Output}\nPrometheus:\n{prometheus.Output}");
    }

    [Fact]
    public async Task With_exemplar_storage_Prometheus_stores_trace_id_exemplars_of_the_demo_latency_histogram()
    {
        using var demo = StartDemo(out var target);
        using var prometheus = PrometheusProcess.Start(_folder, target, nativeHistograms: false, exemplarStorage: true);
        const string Query = "demo_request_duration_seconds_bucket";

        // Requests from all four processes are in; their exemplars reach the server's scrape through the shared store.
        await prometheus.WaitForOneAsync("count(count by (pid) (process_cpu_seconds_total)) == 4", () => demo.Output);
        var deadline = DateTime.UtcNow.AddSeconds(90);
        var exemplars = await prometheus.QueryExemplarsAsync(Query, TimeSpan.FromMinutes(5));
        while (exemplars.Count == 0 && DateTime.UtcNow < deadline)
        {
            await prometheus.WaitForScrapesAsync(2, deadline - DateTime.UtcNow);
            exemplars = await prometheus.QueryExemplarsAsync(Query, TimeSpan.FromMinutes(5));
        }

        Assert.True(exemplars.Count > 0, $"Prometheus stored no exemplar for {Query} within 90 s.\nDemo:\n{demo.Output}\nPrometheus:\n{prometheus.Output}");
        foreach (var (series, labels, value) in exemplars)
        {
            Assert.Equal("demo_request_duration_seconds_bucket", series["__name__"]);
            Assert.Matches("^[0-9a-f]{32}$", labels["trace_id"]);
            // The exemplar is an observation that fell into the bucket it is stored with.
            var le = series["le"] == "+Inf" ? double.PositiveInfinity : double.Parse(series["le"], CultureInfo.InvariantCulture);
            Assert.True(value <= le, $"An exemplar of value {value} is stored with the bucket le={series["le"]}.");
        }
    }

    /// <summary>The demo on a free loopback port with three workers on a SharedMemory store in the test's folder; returns once it listens.</summary>
    private ChildProcess StartDemo(out Uri target)
    {
        var port = PrometheusProcess.FreePort();
        var env = new Dictionary<string, string?>
        {
            ["Metrics__Backend"] = "SharedMemory",
            ["Metrics__BackendConfig__Path"] = Path.Combine(_folder, "demo.store"),
        };
        var demo = ChildProcess.StartDotnet(DemoDll(), ["--urls", $"http://127.0.0.1:{port}", "--workers", "3"], env);
        try
        {
            demo.WaitForLine(l => l.Contains($"Now listening on: http://127.0.0.1:{port}", StringComparison.Ordinal), "ASP.NET Core's 'Now listening on' line");
        }
        catch
        {
            demo.Dispose();
            throw;
        }

        target = new Uri($"http://127.0.0.1:{port}/metrics");
        return demo;
    }

    private static string DemoDll()
    {
        // bin/<Configuration>/net10.0 of this project mirrors the demo's.
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var repo = output.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
        var dll = Path.Combine(repo, "samples", "Metrics.Demo", "bin", output.Parent.Name, output.Name, "Metrics.Demo.dll");
        Assert.True(File.Exists(dll), $"The demo was not built: {dll}");
        return dll;
    }
}
