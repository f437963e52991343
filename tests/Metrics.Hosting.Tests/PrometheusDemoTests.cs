using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Metrics.Tests;

namespace Metrics.Hosting.Tests;

/// <summary>
/// The demo with three SharedMemory worker processes, scraped by a real Prometheus: .NET's own metrics, aggregated across
/// the processes, answer PromQL queries.
/// </summary>
public sealed class PrometheusDemoTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), $"metrics-prometheus-{Guid.NewGuid():N}");

    public PrometheusDemoTests() => Directory.CreateDirectory(_folder);

    public void Dispose()
    {
        if (Directory.Exists(_folder))
        {
            Directory.Delete(_folder, recursive: true);
        }
    }

    [Fact]
    public async Task Prometheus_scraping_the_demo_with_three_workers_sees_http_gc_and_four_processes()
    {
        var demoPort = FreePort();
        var env = new Dictionary<string, string?>
        {
            ["Metrics__Backend"] = "SharedMemory",
            ["Metrics__BackendConfig__Path"] = Path.Combine(_folder, "demo.store"),
        };
        using var demo = ChildProcess.StartDotnet(DemoDll(), ["--urls", $"http://127.0.0.1:{demoPort}", "--workers", "3"], env);
        demo.WaitForLine(l => l.Contains($"Now listening on: http://127.0.0.1:{demoPort}", StringComparison.Ordinal), "ASP.NET Core's 'Now listening on' line");

        var prometheusPort = FreePort();
        var config = Path.Combine(_folder, "prometheus.yml");
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: demo
                static_configs:
                  - targets: ['127.0.0.1:{demoPort}']
            """, TestContext.Current.CancellationToken);

        // Its log goes to stderr; merged into stdout so the readiness line can be waited for.
        using var prometheus = ChildProcess.Start("/bin/sh", ["-c",
            $"exec prometheus --config.file={config} --storage.tsdb.path={Path.Combine(_folder, "tsdb")} --web.listen-address=127.0.0.1:{prometheusPort} 2>&1"]);
        prometheus.WaitForLine(l => l.Contains("Server is ready to receive web requests", StringComparison.Ordinal), "Prometheus' ready line");

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{prometheusPort}") };
        foreach (var query in new[]
        {
            "sum(http_server_request_duration_seconds_count) > 0",
            "count(count by (pid) (process_cpu_seconds_total)) == 4",
            "count(dotnet_gc_collections_total) > 0",
        })
        {
            await WaitForResultAsync(http, query, demo, prometheus);
        }
    }

    /// <summary>Queries until the query returns a sample (a comparison that holds), as Prometheus scrapes every second.</summary>
    private static async Task WaitForResultAsync(HttpClient http, string query, ChildProcess demo, ChildProcess prometheus)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        string last = string.Empty;
        while (DateTime.UtcNow < deadline)
        {
            last = await http.GetStringAsync(new Uri($"/api/v1/query?query={Uri.EscapeDataString(query)}", UriKind.Relative), TestContext.Current.CancellationToken);
            using var json = JsonDocument.Parse(last);
            if (json.RootElement.GetProperty("data").GetProperty("result").GetArrayLength() > 0)
            {
                return;
            }

            // The next scrape is at most a second away.
            await Task.Delay(250, TestContext.Current.CancellationToken);
        }

        Assert.Fail($"Prometheus never answered '{query}' with a sample. Last answer: {last}\nDemo:\n{demo.Output}\nPrometheus:\n{prometheus.Output}");
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

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
