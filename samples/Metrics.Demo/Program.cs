using System.Diagnostics;
using System.Net;
using Metrics;
using Metrics.AspNetCore;
using Metrics.Configuration;
using Metrics.Demo;

// Modes: the server (default), serving /metrics and, with --workers N, supervising N workers; or a worker
// (--worker ID, started by the server) that only generates traffic into the shared backend.
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
    var builder = WebApplication.CreateBuilder(new WebApplicationOptions
    {
        Args = DemoArgs.Without(args, "--workers"),

        // appsettings.json and the plugins folder sit beside the application, wherever it is started from.
        ContentRootPath = AppContext.BaseDirectory,
    });

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
    var backend = MetricsConfiguration.Apply(builder.Configuration);
    var shared = backend.Capabilities.HasFlag(BackendCapabilities.SharedAcrossProcesses);
    if (workers > 0 && !shared)
    {
        Console.Error.WriteLine(
            $"error: --workers {workers} needs a backend shared across processes, but '{backend.Name}' keeps values in each process, so /metrics would show only this process's values. " +
            "Select one, for example with the environment variable Metrics__Backend=SharedMemory (one host) or Metrics__Backend=Redis plus Metrics__BackendConfig__ConnectionString=localhost:6379.");
        return 3;
    }

    var demoMetrics = new DemoMetrics();
    var app = builder.Build();
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

        demoMetrics.Record(context.Request.Method, context.Request.Path, context.Response.StatusCode, watch.Elapsed.TotalSeconds, context.Response.ContentLength ?? 0);
    });
    app.MapGet("/", () => $"Metrics demo: backend {backend.Name}, {workers} worker(s). Scrape /metrics.\n");
    app.MapMetrics("/metrics");

    var stopping = app.Lifetime.ApplicationStopping;
    var processes = new List<Process>();
    Task traffic;
    if (workers == 0)
    {
        traffic = TrafficGenerator.RunAsync(demoMetrics, builder.Configuration.GetValue("Demo:RequestsPerSecond", 50), stopping);
    }
    else
    {
        for (var i = 1; i <= workers; i++)
        {
            processes.Add(Workers.Start(args, i));
        }

        traffic = Task.CompletedTask;
    }

    app.Logger.LogInformation("Metrics backend: {Backend} ({Type} from {Location}); {Workers} worker process(es); metrics at {Urls}/metrics", backend.Name, backend.Type.FullName, backend.Type.Assembly.Location, workers, urls);
    try
    {
        await app.RunAsync();
    }
    finally
    {
        Workers.Stop(processes);
        await traffic;
        backend.Flush();
    }

    return 0;
}

static async Task<int> RunWorkerAsync(string[] args, string workerId)
{
    var configuration = MetricsConfiguration.BuildConfiguration(DemoArgs.Without(DemoArgs.Without(args, "--worker"), "--parent"), AppContext.BaseDirectory);
    var backend = MetricsConfiguration.Apply(configuration);
    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        stop.Cancel();
    };
    Workers.StopWhenParentExits(DemoArgs.Value(args, "--parent"), stop);
    var metrics = new DemoMetrics();
    var traffic = TrafficGenerator.RunAsync(metrics, configuration.GetValue("Demo:RequestsPerSecond", 50), stop.Token);

    // Shared backends may batch writes; flushing every second keeps the server's view current.
    while (!stop.IsCancellationRequested)
    {
        await Task.WhenAny(Task.Delay(1000, CancellationToken.None), traffic);
        backend.Flush();
        if (traffic.IsCompleted)
        {
            break;
        }
    }

    await traffic;
    backend.Flush();
    Console.WriteLine($"worker {workerId}: stopped");
    return 0;
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
