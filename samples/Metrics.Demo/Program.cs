using System.Diagnostics;
using System.Net;
using System.Reflection;
using Metrics;
using Metrics.AspNetCore;
using Metrics.Configuration;
using Metrics.Demo;

// Modes: the server (default), serving /metrics and, with --workers N, supervising N workers; or a worker (--worker ID,
// started by the server). Every process is the same ASP.NET Core app with builder.AddMetrics(): it serves a few API
// endpoints on loopback and its traffic generator calls them over real HTTP, so ASP.NET Core's, HttpClient's, the
// runtime's and the process's own metrics flow into the configured backend next to the demo's own metrics.
var workerId = DemoArgs.Value(args, "--worker");
try
{
    return workerId is null ? await RunServerAsync(args) : await RunWorkerAsync(args, workerId);
}
catch (Exception e) when (MetricsConfiguration.Explain(e) is { } explained)
{
    Console.Error.WriteLine($"error: {explained.Message}");
    return 1;
}

static async Task<int> RunServerAsync(string[] args)
{
    var workers = int.TryParse(DemoArgs.Value(args, "--workers") ?? "0", out var n) && n >= 0 ? n
        : throw new MetricsConfigurationException("--workers takes a number of worker processes, for example --workers 4.");
    var builder = DemoApp.CreateBuilder(DemoArgs.Without(args, "--workers"));
    var urls = builder.Configuration["urls"] ?? "http://127.0.0.1:5000";
    foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
    {
        if (!DemoArgs.IsLoopback(url))
        {
            Console.Error.WriteLine($"error: the demo listens on loopback only; '{url}' is not a loopback address. Use --urls http://127.0.0.1:PORT.");
            return 2;
        }
    }

    builder.WebHost.UseUrls(urls);

    // Loaded here only to refuse --workers with a per-process backend before anything starts; AddMetrics loads the same
    // backend and configuration again (one initialization) when the host starts.
    var backend = MetricsConfiguration.Load(builder.Configuration);
    if (workers > 0 && !backend.Capabilities.HasFlag(BackendCapabilities.SharedAcrossProcesses))
    {
        Console.Error.WriteLine(
            $"error: --workers {workers} needs a backend shared across processes, but '{backend.Name}' keeps values in each process, so /metrics would show only this process's values. " +
            "Select one, for example with the environment variable Metrics__Backend=SharedMemory (one host) or Metrics__Backend=Redis plus Metrics__BackendConfig__ConnectionString=localhost:6379.");
        return 3;
    }

    var app = DemoApp.Build(builder, $"Metrics demo: backend {backend.Name}, {workers} worker(s). Scrape /metrics.\n");
    var processes = new List<Process>();
    Task traffic = Task.CompletedTask;
    app.Lifetime.ApplicationStarted.Register(() =>
    {
        if (workers == 0)
        {
            traffic = TrafficGenerator.RunAsync(DemoApp.ListeningUrl(app), app.Configuration.GetValue("Demo:RequestsPerSecond", 50), app.Lifetime.ApplicationStopping);
        }
        else
        {
            for (var i = 1; i <= workers; i++)
            {
                processes.Add(Workers.Start(args, i));
            }
        }
    });

    app.Logger.LogInformation("Metrics backend: {Backend} ({Type} from {Location}); {Workers} worker process(es); metrics at {Urls}/metrics", backend.Name, backend.Type.FullName, backend.Type.Assembly.Location, workers, urls);
    try
    {
        await app.RunAsync();
    }
    finally
    {
        Workers.Stop(processes);
        await traffic;
    }

    return 0;
}

static async Task<int> RunWorkerAsync(string[] args, string workerId)
{
    // A worker serves the same endpoints on a loopback port of its own and generates its traffic against itself; its
    // metrics reach the shared backend, which the server's /metrics reads.
    var builder = DemoApp.CreateBuilder([.. DemoArgs.Without(DemoArgs.Without(args, "--worker"), "--parent")]);
    builder.WebHost.UseUrls("http://127.0.0.1:0");
    var app = DemoApp.Build(builder, $"Metrics demo worker {workerId}.\n");
    using var parentGone = new CancellationTokenSource();
    Workers.StopWhenParentExits(DemoArgs.Value(args, "--parent"), parentGone);
    parentGone.Token.Register(() => app.Lifetime.StopApplication());
    Task traffic = Task.CompletedTask;
    app.Lifetime.ApplicationStarted.Register(() =>
        traffic = TrafficGenerator.RunAsync(DemoApp.ListeningUrl(app), app.Configuration.GetValue("Demo:RequestsPerSecond", 50), app.Lifetime.ApplicationStopping));
    await app.RunAsync();
    await traffic;
    Console.WriteLine($"worker {workerId}: stopped");
    return 0;
}

internal static class DemoApp
{
    public static WebApplicationBuilder CreateBuilder(string[] args)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,

            // appsettings.json and the plugins folder sit beside the application, wherever it is started from.
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.AddMetrics();
        return builder;
    }

    public static WebApplication Build(WebApplicationBuilder builder, string home)
    {
        var app = builder.Build();
        var tracing = new DemoTracing(app.Configuration.GetValue("Demo:TraceSampleRatio", 0.5));
        app.Lifetime.ApplicationStopped.Register(tracing.Dispose);

        // Created once the host exists, so they use the backend AddMetrics selected.
        var demoMetrics = new DemoMetrics(app.Services.GetRequiredService<MetricRegistry>());
        demoMetrics.Build.Set(typeof(DemoMetrics).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown");
        demoMetrics.State.State("starting");
        app.Lifetime.ApplicationStarted.Register(() => demoMetrics.State.State("running"));
        app.Lifetime.ApplicationStopping.Register(() => demoMetrics.State.State("stopping"));
        app.Use(async (context, next) =>
        {
            if (context.Request.Path == "/metrics")
            {
                await next(context);
                return;
            }

            var watch = Stopwatch.StartNew();
            using (demoMetrics.InProgress.TrackInProgress())
            {
                await next(context);
            }

            var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
            demoMetrics.Record(context.Request.Method, route, context.Response.StatusCode, watch.Elapsed.TotalSeconds, context.Response.ContentLength ?? 0);
        });
        app.MapGet("/", () => home);
        app.MapGet("/api/items", async () => { await Simulate(); return Results.Ok(Enumerable.Range(1, 20)); });
        app.MapPost("/api/items", async () => { await Simulate(); return Results.Created("/api/items/21", 21); });
        app.MapGet("/api/items/{id:int}", async (int id) => { await Simulate(); return id % 20 == 0 ? Results.NotFound() : Results.Ok(id); });
        app.MapDelete("/api/items/{id:int}", async (int id) => { await Simulate(); return id % 50 == 0 ? Results.StatusCode(500) : Results.NoContent(); });
        app.MapMetrics("/metrics");
        return app;
    }

    /// <summary>The first address Kestrel listens on (the real port when 0 was asked for).</summary>
    public static Uri ListeningUrl(WebApplication app) => new(app.Urls.First().Replace("://localhost:", "://127.0.0.1:", StringComparison.Ordinal));

    // Log-normal-ish latency: most requests are quick, a few are slow.
    private static async Task Simulate()
    {
        // A child span of the request's trace, recorded when the trace is sampled.
        using var work = DemoTracing.Source.StartActivity("simulated work");
        await Task.Delay(TimeSpan.FromSeconds(Math.Min(0.5, 0.001 * Math.Exp(Random.Shared.NextDouble() * 5))));
    }
}

internal static class DemoArgs
{
    public static string? Value(string[] args, string name)
    {
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == name && i + 1 < args.Length)
            {
                return args[i + 1];
            }

            if (args[i].StartsWith(name + "=", StringComparison.Ordinal))
            {
                return args[i][(name.Length + 1)..];
            }
        }

        return null;
    }

    public static string[] Without(string[] args, string name)
    {
        var kept = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == name)
            {
                i++;
            }
            else if (!args[i].StartsWith(name + "=", StringComparison.Ordinal))
            {
                kept.Add(args[i]);
            }
        }

        return [.. kept];
    }

    public static bool IsLoopback(string url)
    {
        if (!Uri.TryCreate(url.Replace("://*", "://wildcard", StringComparison.Ordinal).Replace("://+", "://wildcard", StringComparison.Ordinal), UriKind.Absolute, out var uri))
        {
            return false;
        }

        return uri.Host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var address) && IPAddress.IsLoopback(address));
    }
}
