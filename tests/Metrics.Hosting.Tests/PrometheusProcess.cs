using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Metrics.Tests;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Metrics.Hosting.Tests;

/// <summary>
/// A real Prometheus (the Debian package's <c>prometheus</c>) on a loopback port, scraping loopback targets every second,
/// with its configuration and database in a folder the caller owns and removes. It scrapes through a small loopback proxy
/// in this process that signals every completed scrape, so tests wait for scrapes instead of sleeping.
/// </summary>
internal sealed class PrometheusProcess : IDisposable
{
    private readonly ChildProcess _process;
    private readonly ScrapeProxy _proxy;

    private PrometheusProcess(ChildProcess process, ScrapeProxy proxy, int port)
    {
        _process = process;
        _proxy = proxy;
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
    }

    public HttpClient Http { get; }

    /// <summary>Everything Prometheus logged, for failure messages.</summary>
    public string Output => _process.Output;

    /// <summary>
    /// Starts Prometheus scraping <paramref name="target"/> (<c>http://127.0.0.1:port/path</c>) every second and waits for
    /// its ready line. With <paramref name="nativeHistograms"/> it ingests native histograms, which also makes it ask
    /// for protobuf first. With <paramref name="exemplarStorage"/> it stores the exemplars of OpenMetrics scrapes.
    /// </summary>
    public static PrometheusProcess Start(string folder, Uri target, bool nativeHistograms, bool exemplarStorage = false)
    {
        var executable = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':')
            .Select(dir => Path.Combine(dir, "prometheus")).FirstOrDefault(File.Exists);
        Assert.True(executable is not null, "prometheus is not installed: install the Debian package 'prometheus' and run again.");
        Assert.True(target.IsLoopback, $"Prometheus scrapes loopback targets only, not {target}.");
        var proxy = ScrapeProxy.Start(target);
        var port = FreePort();
        var config = Path.Combine(folder, "prometheus.yml");
        File.WriteAllText(config, $"""
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: app
                metrics_path: {target.AbsolutePath}
                static_configs:
                  - targets: ['127.0.0.1:{proxy.Port}']
            """);
        var feature = (nativeHistograms ? " --enable-feature=native-histograms" : string.Empty) + (exemplarStorage ? " --enable-feature=exemplar-storage" : string.Empty);

        // Its log goes to stderr; merged into stdout so that the readiness line can be waited for.
        var process = ChildProcess.Start("/bin/sh", ["-c",
            $"exec {executable} --config.file={config} --storage.tsdb.path={Path.Combine(folder, "tsdb")} --web.listen-address=127.0.0.1:{port}{feature} 2>&1"]);
        try
        {
            process.WaitForLine(l => l.Contains("Server is ready to receive web requests", StringComparison.Ordinal), "Prometheus' ready line");
        }
        catch
        {
            process.Dispose();
            proxy.Dispose();
            throw;
        }

        return new PrometheusProcess(process, proxy, port);
    }

    /// <summary>
    /// Evaluates <paramref name="query"/> at <paramref name="time"/> (now when null) and returns the value of each
    /// sample of the instant vector it answers (empty when none).
    /// </summary>
    public async Task<double[]> QueryAsync(string query, DateTimeOffset? time = null)
    {
        var uri = $"/api/v1/query?query={Uri.EscapeDataString(query)}";
        if (time is { } at)
        {
            uri += "&time=" + (at.ToUnixTimeMilliseconds() / 1000.0).ToString("F3", CultureInfo.InvariantCulture);
        }

        var body = await Http.GetStringAsync(new Uri(uri, UriKind.Relative), TestContext.Current.CancellationToken);
        using var json = JsonDocument.Parse(body);
        Assert.True(json.RootElement.GetProperty("status").GetString() == "success", $"Prometheus refused '{query}': {body}");
        return [.. json.RootElement.GetProperty("data").GetProperty("result").EnumerateArray()
            .Select(sample => double.Parse(sample.GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture))];
    }

    /// <summary>
    /// The exemplars Prometheus stored for the series <paramref name="query"/> selects over the last
    /// <paramref name="window"/>: each one's labels (the series' and the exemplar's, separately) and value.
    /// </summary>
    public async Task<List<(Dictionary<string, string> Series, Dictionary<string, string> Labels, double Value)>> QueryExemplarsAsync(string query, TimeSpan window)
    {
        var end = DateTimeOffset.UtcNow;
        var start = end - window;
        var uri = string.Create(CultureInfo.InvariantCulture, $"/api/v1/query_exemplars?query={Uri.EscapeDataString(query)}&start={start.ToUnixTimeMilliseconds() / 1000.0:F3}&end={end.ToUnixTimeMilliseconds() / 1000.0:F3}");
        var body = await Http.GetStringAsync(new Uri(uri, UriKind.Relative), TestContext.Current.CancellationToken);
        using var json = JsonDocument.Parse(body);
        Assert.True(json.RootElement.GetProperty("status").GetString() == "success", $"Prometheus refused the exemplar query '{query}': {body}");
        var result = new List<(Dictionary<string, string>, Dictionary<string, string>, double)>();
        foreach (var series in json.RootElement.GetProperty("data").EnumerateArray())
        {
            var seriesLabels = series.GetProperty("seriesLabels").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
            foreach (var exemplar in series.GetProperty("exemplars").EnumerateArray())
            {
                result.Add((
                    seriesLabels,
                    exemplar.GetProperty("labels").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!),
                    double.Parse(exemplar.GetProperty("value").GetString()!, CultureInfo.InvariantCulture)));
            }
        }

        return result;
    }

    /// <summary>
    /// Evaluates <paramref name="query"/> until it answers exactly one sample, as Prometheus scrapes every second; fails
    /// after <paramref name="timeout"/> (90 s by default, as the machine may be shared) with the last answer and the logs.
    /// </summary>
    public async Task<double> WaitForOneAsync(string query, Func<string>? diagnostics = null, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(90));
        var last = Array.Empty<double>();
        while (DateTime.UtcNow < deadline)
        {
            last = await QueryAsync(query);
            if (last.Length == 1)
            {
                return last[0];
            }

            // Two more scrapes: the second starts only after the first was stored, so the next query sees it.
            await WaitForScrapesAsync(2, deadline - DateTime.UtcNow);
        }

        Assert.Fail($"Prometheus never answered '{query}' with one sample; last answer [{string.Join(", ", last)}].\n{diagnostics?.Invoke()}\nPrometheus:\n{Output}");
        return 0;
    }

    /// <summary>Waits until Prometheus has completed <paramref name="count"/> scrapes that started after the call.</summary>
    public async Task WaitForScrapesAsync(int count, TimeSpan timeout)
    {
        // Scrapes completed before the call do not count.
        while (_proxy.Completed.Wait(0))
        {
        }

        for (var i = 0; i < count; i++)
        {
            if (timeout <= TimeSpan.Zero || !await _proxy.Completed.WaitAsync(timeout, TestContext.Current.CancellationToken))
            {
                return;
            }
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        Http.Dispose();
        _process.Dispose();
        _proxy.Dispose();
    }

    /// <summary>Forwards Prometheus' scrapes to the target unchanged (headers and compressed bodies) and counts completed ones.</summary>
    private sealed class ScrapeProxy : IDisposable
    {
        private readonly WebApplication _app;
        private readonly HttpClient _client = new(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None });

        private ScrapeProxy(Uri target)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            _app = builder.Build();
            _app.Run(async context =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(target, context.Request.Path + context.Request.QueryString));
                request.Headers.TryAddWithoutValidation("Accept", context.Request.Headers.Accept.ToString());
                request.Headers.TryAddWithoutValidation("Accept-Encoding", context.Request.Headers.AcceptEncoding.ToString());
                using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
                context.Response.StatusCode = (int)response.StatusCode;
                context.Response.ContentType = response.Content.Headers.ContentType?.ToString();
                if (response.Content.Headers.ContentEncoding.Count > 0)
                {
                    context.Response.Headers.ContentEncoding = string.Join(", ", response.Content.Headers.ContentEncoding);
                }

                await response.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
                await context.Response.CompleteAsync();
                Completed.Release();
            });
        }

        public SemaphoreSlim Completed { get; } = new(0);

        public int Port { get; private set; }

        public static ScrapeProxy Start(Uri target)
        {
            var proxy = new ScrapeProxy(target);
            proxy._app.StartAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult();
            var address = proxy._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            proxy.Port = new Uri(address).Port;
            return proxy;
        }

        public void Dispose()
        {
            _app.StopAsync(CancellationToken.None).GetAwaiter().GetResult();
            ((IDisposable)_app).Dispose();
            _client.Dispose();
            Completed.Dispose();
        }
    }
}
