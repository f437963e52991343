using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Metrics.Hosting.Tests;

public sealed class DemoSmokeTests
{
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

    [Fact]
    public async Task The_demo_serves_its_four_metrics_through_the_memory_plugin()
    {
        var dll = DemoDll();
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(dll)!, "plugins", "Memory", "Memory.dll")), "The demo's build did not copy the Memory plugin folder.");
        var port = FreePort();
        var start = new ProcessStartInfo("dotnet", [dll, "--urls", $"http://127.0.0.1:{port}"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["Metrics__Backend"] = null;
        using var demo = Process.Start(start)!;
        var output = new System.Text.StringBuilder();
        demo.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        demo.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        demo.BeginOutputReadLine();
        demo.BeginErrorReadLine();
        try
        {
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            string? body = null;
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < deadline && !demo.HasExited)
            {
                try
                {
                    body = await client.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics"), TestContext.Current.CancellationToken);
                    if (body.Contains("demo_requests_total{", StringComparison.Ordinal))
                    {
                        break;
                    }
                }
                catch (HttpRequestException)
                {
                    // Not listening yet.
                }

                await Task.Delay(250, TestContext.Current.CancellationToken);
            }

            string log;
            lock (output)
            {
                log = output.ToString();
            }

            Assert.True(body is not null, $"The demo never answered on port {port}:\n{log}");
            Assert.Contains("# TYPE demo_requests_total counter", body, StringComparison.Ordinal);
            Assert.Contains("demo_requests_total{method=", body, StringComparison.Ordinal);
            Assert.Contains("# TYPE demo_requests_in_progress gauge", body, StringComparison.Ordinal);
            Assert.Contains("# TYPE demo_request_duration_seconds histogram", body, StringComparison.Ordinal);
            Assert.Contains("service=\"demo\",le=\"+Inf\"}", body, StringComparison.Ordinal);
            Assert.Contains("# TYPE demo_response_size_bytes summary", body, StringComparison.Ordinal);
            Assert.Contains("plugins/Memory/Memory.dll", log, StringComparison.Ordinal);
        }
        finally
        {
            if (!demo.HasExited)
            {
                demo.Kill(entireProcessTree: true);
            }

            await demo.WaitForExitAsync(TestContext.Current.CancellationToken);
        }
    }
}
