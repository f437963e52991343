using System.Diagnostics.Metrics;
using System.Net;
using System.Runtime.CompilerServices;
using Metrics.AspNetCore;
using Metrics.Configuration;
using Metrics.Extensions.Hosting;
using Metrics.Hosting;
using Metrics.Tests;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Metrics.Hosting.Tests;

/// <summary>
/// Hosts with AddMetrics share the process-wide default registry and listen to every meter, so these tests run alone.
/// </summary>
[CollectionDefinition(nameof(HostsCollection), DisableParallelization = true)]
public sealed class HostsCollection;

internal static class DefaultBackendPin
{
    // Resolved before any test sets Metrics__* environment variables (ConfigurationTests does), so the default registry of
    // this test process is the Memory backend whatever runs first.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Pin() => _ = ConfiguredBackend.Default;
}

[Collection(nameof(HostsCollection))]
public sealed class AddMetricsTests
{
    // Command-line settings win over environment variables another test class may have set.
    private static readonly string[] MemoryArgs = ["--Metrics:Backend=Memory", "--Metrics:PluginsPath=" + Path.Combine(Path.GetTempPath(), "no-plugins-needed")];

    private static WebApplication BuildWebApp(string[] args, Action<WebApplication>? map = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, EnvironmentName = "Production" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.AddMetrics();
        var app = builder.Build();
        map?.Invoke(app);
        return app;
    }

    [Fact]
    public async Task A_Kestrel_app_with_AddMetrics_serves_the_runtime_AspNetCore_HttpClient_and_process_metrics_and_promtool_accepts_them()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var app = BuildWebApp(MemoryArgs, app =>
        {
            app.MapGet("/hello/{name}", (string name) => $"hello {name}");
            app.MapMetrics();
        });
        await app.StartAsync(ct);
        try
        {
            var baseUrl = app.Urls.Single();
            using var client = new HttpClient();
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal("hello x", await client.GetStringAsync(new Uri($"{baseUrl}/hello/x"), ct));
            }

            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync(new Uri($"{baseUrl}/missing"), ct)).StatusCode);
            GC.Collect();
            var body = await client.GetStringAsync(new Uri($"{baseUrl}/metrics"), ct);

            Assert.Contains("# TYPE http_server_request_duration_seconds histogram", body, StringComparison.Ordinal);
            Assert.Contains("http_server_request_duration_seconds_count{error_type=\"\",http_request_method=\"GET\",http_response_status_code=\"200\",http_route=\"/hello/{name}\",network_protocol_version=\"1.1\",url_scheme=\"http\"} 3", body, StringComparison.Ordinal);
            Assert.Contains("http_response_status_code=\"404\"", body, StringComparison.Ordinal);
            Assert.Contains("# TYPE http_client_request_duration_seconds histogram", body, StringComparison.Ordinal);
            Assert.Contains("# TYPE dotnet_gc_collections_total counter", body, StringComparison.Ordinal);
            Assert.Contains("dotnet_gc_collections_total{gc_heap_generation=\"gen2\"}", body, StringComparison.Ordinal);
            Assert.Contains("# TYPE kestrel_active_connections gauge", body, StringComparison.Ordinal);
            foreach (var name in new[] { "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_start_time_seconds", "process_open_fds", "process_max_fds", "process_threads" })
            {
                Assert.Contains($"\n{name} ", body, StringComparison.Ordinal);
            }

            // Exit 3 is lint only. The runtime names three of its gauges *.count (dotnet.assembly.count, dotnet.timer.count,
            // dotnet.process.cpu.count), which OpenTelemetry's naming keeps and promtool's linter dislikes; anything else fails.
            var (exit, output) = Promtool.Check(body);
            var problems = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Where(line => !(line.StartsWith("dotnet_", StringComparison.Ordinal) && line.EndsWith("non-histogram and non-summary metrics should not have \"_count\" suffix", StringComparison.Ordinal)))
                .ToArray();
            Assert.True(exit is 0 or 3 && problems.Length == 0, $"promtool check metrics failed ({exit}):\n{output}\n--- exposition ---\n{body}");
        }
        finally
        {
            await app.StopAsync(ct);
        }
    }

    [Fact]
    public async Task An_unknown_backend_fails_StartAsync_with_the_loader_message()
    {
        var ct = TestContext.Current.CancellationToken;
        var plugins = Directory.CreateTempSubdirectory("metrics-plugins-");
        try
        {
            await using var app = BuildWebApp(["--Metrics:Backend=NoSuchBackend", "--Metrics:PluginsPath=" + plugins.FullName]);
            var e = await Assert.ThrowsAsync<MetricsConfigurationException>(() => app.StartAsync(ct));
            Assert.StartsWith("Unknown metrics backend 'NoSuchBackend' (Metrics:Backend): there is no folder", e.Message, StringComparison.Ordinal);
            Assert.Contains("Available backends: Memory (built in)", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            plugins.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_setting_of_the_wrong_type_fails_StartAsync_naming_the_key()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var app = BuildWebApp([.. MemoryArgs, "--Metrics:ShutdownTimeout=soon"]);
        var e = await Assert.ThrowsAsync<MetricsConfigurationException>(() => app.StartAsync(ct));
        Assert.Contains("The setting 'Metrics:ShutdownTimeout' is 'soon', which is not a duration.", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddMetricServer_serves_a_worker_service_without_AspNetCore_and_stops_with_the_host()
    {
        var ct = TestContext.Current.CancellationToken;
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = MemoryArgs, EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.Services.AddMetricServer(o => o.Port = 0);
        using var host = builder.Build();
        await host.StartAsync(ct);
        var url = host.Services.GetRequiredService<MetricServerService>().Url!;
        var registry = host.Services.GetRequiredService<MetricRegistry>();
        Assert.Same(MetricRegistry.Default, registry);
        new Counter("worker_jobs_total", "Jobs done by the worker service.", registry: registry).Inc(2);
        using var client = new HttpClient();
        var body = await client.GetStringAsync(url, ct);
        Assert.Contains("worker_jobs_total 2", body, StringComparison.Ordinal);
        Assert.Contains("process_cpu_seconds_total ", body, StringComparison.Ordinal);

        await host.StopAsync(ct);
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetStringAsync(url, ct));
    }

    [Fact]
    public async Task Stopping_the_host_flushes_and_releases_the_backend_and_routes_its_messages_to_ILogger_meanwhile()
    {
        var ct = TestContext.Current.CancellationToken;
        var logged = new List<string>();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = MemoryArgs, EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new ListLoggerProvider(logged));
        builder.AddMetrics();
        using var host = builder.Build();
        await host.StartAsync(ct);
        var backend = ConfiguredBackend.Create<TrackingBackend>(name: "Tracking");
        await using var registry = new MetricRegistry(backend: backend);
        new Counter("tracked_total", "Tracked.", registry: registry).Inc();
        BackendLog.Write("Tracking", BackendLogLevel.Warning, "A fault the backend could not throw.");
        Assert.Contains(logged, l => l == "Metrics.Backends.Tracking Warning: A fault the backend could not throw.");
        Assert.Equal(0, TrackingBackend.Shutdowns);

        await host.StopAsync(ct);
        Assert.Equal(1, TrackingBackend.Shutdowns);
        BackendLog.Write("Tracking", BackendLogLevel.Warning, "After the host stopped.");
        Assert.DoesNotContain(logged, l => l.Contains("After the host stopped.", StringComparison.Ordinal));
    }

    [Fact]
    public void Repeated_tag_objects_reach_the_right_series_when_series_and_instruments_alternate_on_one_thread()
    {
        var registry = new MetricRegistry(backend: ConfiguredBackend.Memory);
        var options = new MeterBridgeOptions();
        options.IncludeMeters.Add("Alternate.Test");
        using var bridge = new MeterBridge(registry, options).Start();
        using var meter = new Meter("Alternate.Test");
        var first = meter.CreateCounter<long>("alternate.first");
        var second = meter.CreateCounter<long>("alternate.second");
        var get = new KeyValuePair<string, object?>("method", "GET");
        var post = new KeyValuePair<string, object?>("method", "POST");
        object ok = 200;
        var status = new KeyValuePair<string, object?>("code", ok);
        var otherStatus = new KeyValuePair<string, object?>("code", (object)200);

        for (var i = 0; i < 3; i++)
        {
            first.Add(1, get, status);
            first.Add(10, post, status);
            second.Add(100, get, status);
            first.Add(1000, get, otherStatus);
        }

        var text = registry.Render();
        Assert.Contains("alternate_first_total{code=\"200\",method=\"GET\"} 3003\n", text, StringComparison.Ordinal);
        Assert.Contains("alternate_first_total{code=\"200\",method=\"POST\"} 30\n", text, StringComparison.Ordinal);
        Assert.Contains("alternate_second_total{code=\"200\",method=\"GET\"} 300\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Instruments_map_to_counters_gauges_and_histograms_and_observable_counters_add_exactly_their_increase()
    {
        var registry = new MetricRegistry(backend: ConfiguredBackend.Memory);
        var options = new MeterBridgeOptions();
        options.IncludeMeters.Add("Kinds.Test");
        options.ExcludeMeters.Add("Kinds.Test.Excluded");
        using var bridge = new MeterBridge(registry, options).Start();
        using var meter = new Meter("Kinds.Test");
        using var excluded = new Meter("Kinds.Test.Excluded");
        long total = 5;
        meter.CreateObservableCounter("kinds.observed", () => total, "By");
        meter.CreateObservableGauge("kinds.ratio", () => 0.25, "1");
        var upDown = meter.CreateUpDownCounter<int>("kinds.queue", "{item}");
        var gauge = meter.CreateGauge<double>("kinds.temperature", "Cel");
        var histogram = meter.CreateHistogram<long>("kinds.size", "By", advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [10, 100] });
        excluded.CreateCounter<long>("kinds.hidden").Add(1);
        upDown.Add(3);
        upDown.Add(-1);
        gauge.Record(21.5);
        histogram.Record(50);

        var first = registry.Render();
        Assert.Contains("# TYPE kinds_observed_bytes_total counter\nkinds_observed_bytes_total 5\n", first, StringComparison.Ordinal);
        Assert.Contains("# TYPE kinds_ratio gauge\nkinds_ratio 0.25\n", first, StringComparison.Ordinal);
        Assert.Contains("# TYPE kinds_queue gauge\nkinds_queue 2\n", first, StringComparison.Ordinal);
        Assert.Contains("# TYPE kinds_temperature_celsius gauge\nkinds_temperature_celsius 21.5\n", first, StringComparison.Ordinal);
        Assert.Contains("kinds_size_bytes_bucket{le=\"10\"} 0\nkinds_size_bytes_bucket{le=\"100\"} 1\nkinds_size_bytes_bucket{le=\"+Inf\"} 1\n", first, StringComparison.Ordinal);
        Assert.DoesNotContain("kinds_hidden", first, StringComparison.Ordinal);

        total = 12;
        Assert.Contains("kinds_observed_bytes_total 12\n", registry.Render(), StringComparison.Ordinal);

        // The source restarted from 0 and counted 3: all 3 are new.
        total = 3;
        Assert.Contains("kinds_observed_bytes_total 15\n", registry.Render(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http.server.request.duration", "s", MetricType.Histogram, "http_server_request_duration_seconds")]
    [InlineData("dotnet.gc.collections", "{collection}", MetricType.Counter, "dotnet_gc_collections_total")]
    [InlineData("dotnet.gc.heap.total_allocated", "By", MetricType.Counter, "dotnet_gc_heap_total_allocated_bytes_total")]
    [InlineData("db.client.operation.duration", "ms", MetricType.Histogram, "db_client_operation_duration_milliseconds")]
    [InlineData("system.cpu.utilization", "1", MetricType.Gauge, "system_cpu_utilization_ratio")]
    [InlineData("system.cpu.utilization", "1", MetricType.Counter, "system_cpu_utilization_total")]
    [InlineData("net.throughput", "By/s", MetricType.Gauge, "net_throughput_bytes_per_second")]
    [InlineData("queue.rate", "{message}/s", MetricType.Gauge, "queue_rate_per_second")]
    [InlineData("requests_total", null, MetricType.Counter, "requests_total")]
    [InlineData("latency.seconds", "s", MetricType.Histogram, "latency_seconds")]
    [InlineData("9lives..count", "", MetricType.Gauge, "_9lives_count")]
    public void Instrument_names_follow_OpenTelemetry_Prometheus_rules(string name, string? unit, MetricType type, string expected) =>
        Assert.Equal(expected, PrometheusNaming.MetricName(name, unit, type));

    [Theory]
    [InlineData("http.request.method", "http_request_method")]
    [InlineData("gc.heap.generation", "gc_heap_generation")]
    [InlineData("2xx", "key_2xx")]
    [InlineData("weird-name/x", "weird_name_x")]
    public void Tag_names_become_valid_label_names(string tag, string expected) =>
        Assert.Equal(expected, PrometheusNaming.LabelName(tag));

    private sealed class ListLoggerProvider(List<string> lines) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new ListLogger(categoryName, lines);

        public void Dispose()
        {
        }

        private sealed class ListLogger(string category, List<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (lines)
                {
                    lines.Add($"{category} {logLevel}: {formatter(state, exception)}");
                }
            }
        }
    }
}

/// <summary>An in-memory backend that counts its shutdowns.</summary>
public sealed class TrackingBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<TrackingBackend>
{
    private long _bits;

    public static int Shutdowns;

    public BackendConfig Config { get; } = config;

    public MetricDescriptor Metric { get; } = metric;

    public HistogramBucket? Bucket { get; } = histogramBucket;

    public static void Initialize(BackendConfig config)
    {
    }

    public static ValueTask ShutdownAsync(BackendConfig config, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref Shutdowns);
        return ValueTask.CompletedTask;
    }

    public void Inc(double value) => AtomicDouble.Add(ref _bits, value);

    public void Dec(double value) => AtomicDouble.Add(ref _bits, -value);

    public void Set(double value) => AtomicDouble.Write(ref _bits, value);

    public double Get() => AtomicDouble.Read(ref _bits);
}

/// <summary>
/// Runs alone, after the parallel tests: every MeterListener in the process sees every instrument, so another test's bridge
/// starting mid-loop would allocate its first series on this thread and be counted here.
/// </summary>
[Collection(nameof(BridgeAllocationCollection))]
public class BridgeAllocationTests
{
    [Fact]
    public void A_bridged_counter_allocates_nothing_when_it_records_on_an_existing_series()
    {
        var registry = new MetricRegistry(backend: ConfiguredBackend.Memory);
        var options = new MeterBridgeOptions();
        options.IncludeMeters.Add("Alloc.Test");
        using var bridge = new MeterBridge(registry, options).Start();
        using var meter = new Meter("Alloc.Test");
        var counter = meter.CreateCounter<long>("alloc.requests");
        var histogram = meter.CreateHistogram<double>("alloc.duration", "s");
        object code = 200;
        var route = new KeyValuePair<string, object?>("route", "/a");
        var status = new KeyValuePair<string, object?>("code", code);
        counter.Add(1, route, status);
        histogram.Record(0.2, route, status);

        var calls = 0;
        Allocations.AssertNone("Counter.Add and Histogram.Record through the bridge", () =>
        {
            counter.Add(1, route, status);
            histogram.Record(0.2, route, status);
            calls++;
        });
        var text = registry.Render();
        Assert.Contains($"alloc_requests_total{{code=\"200\",route=\"/a\"}} {calls + 1}\n", text, StringComparison.Ordinal);
        Assert.Contains($"alloc_duration_seconds_count{{code=\"200\",route=\"/a\"}} {calls + 1}\n", text, StringComparison.Ordinal);
    }
}

/// <summary>The collection of tests that must not share the process with other tests' MeterListeners.</summary>
[CollectionDefinition(nameof(BridgeAllocationCollection), DisableParallelization = true)]
public sealed class BridgeAllocationCollection;
