using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Metrics.Hosting.Worker;
using Microsoft.Extensions.Hosting;

// A child process for the hosting tests: a generic host with AddMetrics, configured from the environment
// (Metrics__Backend, Metrics__PluginsPath, Metrics__BackendConfig__Path) as a deployed worker would be.
//   count <n>   adds 1 to a Counter<long> n times and reports an observable counter of n, then stops the host
//   start       only starts the host (a bad configuration makes it fail and the process exit non-zero)
//   native <part> <parts>   observes its part of NativeAccuracy's samples into NativeAccuracy's native histogram
var mode = args[0];
var builder = Host.CreateApplicationBuilder([]);
builder.AddMetrics();
using var host = builder.Build();
await host.StartAsync();

// Alive until the host has stopped: stopping records the observable instruments one last time.
using var meter = new Meter("Metrics.Hosting.Worker");
if (mode == "count")
{
    var n = long.Parse(args[1], CultureInfo.InvariantCulture);
    var requests = meter.CreateCounter<long>("worker.requests", "{request}", "Requests the worker handled.");
    long observed = 0;
    meter.CreateObservableCounter("worker.observed", () => Volatile.Read(ref observed), "{item}", "Items the worker observed.");
    object code = 200;
    for (var i = 0; i < n; i++)
    {
        requests.Add(1, new KeyValuePair<string, object?>("route", "/work"), new KeyValuePair<string, object?>("code", code));
        Volatile.Write(ref observed, i + 1);
    }

    Console.WriteLine("counted");
}
else if (mode == "native")
{
    var part = int.Parse(args[1], CultureInfo.InvariantCulture);
    var parts = int.Parse(args[2], CultureInfo.InvariantCulture);
    var histogram = NativeAccuracy.Create(host.Services.GetRequiredService<Metrics.MetricRegistry>());
    NativeAccuracy.ObservePart(histogram, NativeAccuracy.Generate(), part, parts);
    Console.WriteLine("observed");
}

// Stopping the host records the observable instruments one last time, then flushes and releases the backend.
await host.StopAsync();
Console.WriteLine("stopped");
return 0;
