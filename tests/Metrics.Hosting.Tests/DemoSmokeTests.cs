using System.Net;
using System.Net.Sockets;
using Metrics.Tests;

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
    public async Task The_demo_serves_its_metrics_through_the_memory_plugin()
    {
        var dll = DemoDll();
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(dll)!, "plugins", "Memory", "Memory.dll")), "The demo's build did not copy the Memory plugin folder.");
        var port = FreePort();
        using var demo = ChildProcess.StartDotnet(dll, ["--urls", $"http://127.0.0.1:{port}"], new Dictionary<string, string?> { ["Metrics__Backend"] = null });
        demo.WaitForLine(l => l.Contains($"Now listening on: http://127.0.0.1:{port}", StringComparison.Ordinal), "ASP.NET Core's 'Now listening on' line");

        // One connection: Kestrel runs a connection's requests one after the other, so the request to / has been
        // recorded by the demo's middleware before /metrics is served.
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1 }) { Timeout = TimeSpan.FromSeconds(30) };
        var home = await client.GetStringAsync(new Uri($"http://127.0.0.1:{port}/"), TestContext.Current.CancellationToken);
        Assert.StartsWith("Metrics demo: backend Memory", home, StringComparison.Ordinal);
        var body = await client.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics"), TestContext.Current.CancellationToken);

        Assert.Contains("# TYPE demo_requests_total counter", body, StringComparison.Ordinal);
        Assert.Contains("demo_requests_total{method=\"GET\"", body, StringComparison.Ordinal);
        Assert.Contains("# TYPE demo_requests_in_progress gauge", body, StringComparison.Ordinal);
        Assert.Contains("# TYPE demo_request_duration_seconds histogram", body, StringComparison.Ordinal);
        Assert.Contains("service=\"demo\",le=\"+Inf\"}", body, StringComparison.Ordinal);
        Assert.Contains("# TYPE demo_response_size_bytes summary", body, StringComparison.Ordinal);
        Assert.Contains("# TYPE demo_build_info gauge", body, StringComparison.Ordinal);

        // OpenMetrics shows the info and the enum as such, and the units.
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"http://127.0.0.1:{port}/metrics"));
        request.Headers.Accept.ParseAdd("application/openmetrics-text; version=1.0.0");
        using var response = await client.SendAsync(request, TestContext.Current.CancellationToken);
        var openMetrics = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains("# TYPE demo_build info\ndemo_build_info{version=\"", openMetrics, StringComparison.Ordinal);
        Assert.Contains("# TYPE demo_service_state stateset\n", openMetrics, StringComparison.Ordinal);
        Assert.Contains("# UNIT demo_request_duration_seconds seconds\n", openMetrics, StringComparison.Ordinal);
        Assert.Contains("# UNIT demo_response_size_bytes bytes\n", openMetrics, StringComparison.Ordinal);

        // "running" once the host has started; the request may come just before that callback ran.
        var trueStates = openMetrics.Split('\n').Where(l => l.StartsWith("demo_service_state{", StringComparison.Ordinal) && l.EndsWith(" 1", StringComparison.Ordinal)).ToList();
        Assert.True(trueStates is [var only] && (only.Contains("\"running\"", StringComparison.Ordinal) || only.Contains("\"starting\"", StringComparison.Ordinal)), openMetrics);
        Assert.True(demo.Stdout.Contains("plugins/Memory/Memory.dll", StringComparison.Ordinal), demo.Output);
    }
}
