using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Metrics.Hosting;

namespace Metrics.Tests;

/// <summary>A real Prometheus server scrapes a native histogram over protobuf and answers queries about it.</summary>
public class PrometheusScrapeTests
{
    [Fact]
    public async Task Prometheus_scrapes_a_native_histogram_and_computes_its_count_and_median()
    {
        var ct = TestContext.Current.CancellationToken;
        var prometheus = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':')
            .Select(dir => Path.Combine(dir, "prometheus")).FirstOrDefault(File.Exists);
        Assert.True(prometheus is not null, "prometheus is not installed: install the Debian package 'prometheus' and run again.");

        var registry = new MetricRegistry();
        var histogram = new Histogram("native_latency", "Latency.", registry: registry, native: new NativeHistogramOptions { BucketFactor = 1.1 });
        for (var i = 1; i <= 1000; i++)
        {
            histogram.Observe(i);
        }

        // Each scrape reads the registry, which signals here: the test waits for scrapes, never for time.
        using var scrapes = new SemaphoreSlim(0);
        using var signal = registry.AddCollectCallback(() => scrapes.Release());
        await using var server = new MetricServer(0, registry: registry).Start();
        var directory = Directory.CreateTempSubdirectory("metrics-prometheus-");
        var port = FreePort();
        var config = Path.Combine(directory.FullName, "prometheus.yml");
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: app
                metrics_path: {server.Url.AbsolutePath}
                static_configs:
                  - targets: ['127.0.0.1:{server.Url.Port}']
            """, ct);
        var start = new ProcessStartInfo(prometheus,
        [
            $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(directory.FullName, "data")}",
            $"--web.listen-address=127.0.0.1:{port}", "--enable-feature=native-histograms",
        ])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var log = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        process.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            // histogram_count of the bare name only exists when the native histogram arrived, which takes protobuf.
            var count = await PollAsync(http, "histogram_count(native_latency)", process, log, scrapes, ct);
            Assert.Equal(1000, count);
            var median = await PollAsync(http, "histogram_quantile(0.5, native_latency)", process, log, scrapes, ct);
            // Schema 3 buckets are at most 9% wide: the interpolated median is within that of the true 500.5.
            Assert.InRange(median, 500.5 / 1.1, 500.5 * 1.1);
            var sum = await PollAsync(http, "histogram_sum(native_latency)", process, log, scrapes, ct);
            Assert.Equal(500500, sum);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            directory.Delete(recursive: true);
        }
    }

    private static async Task<double> PollAsync(HttpClient http, string query, Process process, System.Text.StringBuilder log, SemaphoreSlim scrapes, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            Assert.False(process.HasExited, $"prometheus exited: {log}");
            try
            {
                last = await http.GetStringAsync($"/api/v1/query?query={Uri.EscapeDataString(query)}", ct);
                using var json = JsonDocument.Parse(last);
                var result = json.RootElement.GetProperty("data").GetProperty("result");
                if (result.GetArrayLength() == 1)
                {
                    return double.Parse(result[0].GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            // Two more scrapes begin: the second starts only after the first was stored, so the next query sees it.
            while (scrapes.Wait(0))
            {
            }

            for (var i = 0; i < 2 && await scrapes.WaitAsync(deadline - DateTime.UtcNow > TimeSpan.Zero ? deadline - DateTime.UtcNow : TimeSpan.Zero, ct); i++)
            {
            }
        }

        string text;
        lock (log)
        {
            text = log.ToString();
        }

        Assert.Fail($"Prometheus gave no result for {query} within 60 s; last answer {last}; log:\n{text}");
        return 0;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
