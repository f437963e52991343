using System.Text;
using Metrics.Backends.SharedMemory;
using Metrics.Hosting;
using Metrics.Tests;

namespace Metrics.SharedMemory.Tests;

/// <summary>Info, enum (state set) and units through the metric API, across real processes sharing one store.</summary>
public sealed class InfoStateSetTests
{
    [Fact]
    public async Task Every_process_info_shows_and_the_state_set_last_is_the_one_true_state()
    {
        using var store = new Store();
        await using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<SharedMemoryBackend>(store.Config, "SharedMemory"));

        // This process declares the same metrics (as a scraping process of the application would) without setting them.
        var types = new TypesWorkload(registry);
        using var first = Worker.Start(store.FilePath, "types", "1.0", "starting");
        first.WaitForLine("ready");
        using var second = Worker.Start(store.FilePath, "types", "2.0", "running");
        second.WaitForLine("ready");

        var scrape = await ScrapeAsync(registry, "application/openmetrics-text");
        Assert.Contains("# TYPE types_build info\n", scrape, StringComparison.Ordinal);
        Assert.Contains("types_build_info{version=\"1.0\"} 1\n", scrape, StringComparison.Ordinal);
        Assert.Contains("types_build_info{version=\"2.0\"} 1\n", scrape, StringComparison.Ordinal);
        Assert.Equal(["running"], TrueStates(scrape));
        Assert.Contains("# TYPE types_queue_bytes gauge\n# UNIT types_queue_bytes bytes\n", scrape, StringComparison.Ordinal);
        Assert.Contains("types_queue_bytes 2\n", scrape, StringComparison.Ordinal);
        Assert.Equal("running", types.State.CurrentState);

        // The first process changes the state: it is now the most recent writer of every state.
        first.WriteLine("state stopping");
        first.WaitForLine("set stopping");
        Assert.Equal(["stopping"], TrueStates(await ScrapeAsync(registry, "application/openmetrics-text")));
        Assert.Equal("stopping", types.State.CurrentState);

        var text = await ScrapeAsync(registry, "text/plain");
        Assert.Contains("# TYPE types_build_info gauge\n", text, StringComparison.Ordinal);
        Assert.Contains("types_service_state{types_service_state=\"stopping\"} 1\n", text, StringComparison.Ordinal);
        var (exit, output) = Promtool.Check(text);
        Assert.True(exit == 0, $"promtool check metrics failed ({exit}):\n{output}\n--- exposition ---\n{text}");

        // MostRecent keeps what exited processes wrote: the state and both builds outlive the processes.
        first.CloseInput();
        Assert.Equal(0, first.WaitForExit());
        second.CloseInput();
        Assert.Equal(0, second.WaitForExit());
        var after = await ScrapeAsync(registry, "application/openmetrics-text");
        Assert.Equal(["stopping"], TrueStates(after));
        Assert.Contains("types_build_info{version=\"1.0\"} 1\n", after, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_process_declaring_another_unit_keeps_its_own_values()
    {
        using var store = new Store();
        await using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<SharedMemoryBackend>(store.Config, "SharedMemory"));

        // The workers declare types_queue_bytes with unit bytes; this process without: another definition.
        var queue = new Gauge("types_queue_bytes", "Bytes queued, summed over processes.", registry: registry);
        queue.Inc(10);
        using var worker = Worker.Start(store.FilePath, "types", "1.0", "running");
        worker.WaitForLine("ready");
        var scrape = await ScrapeAsync(registry, "application/openmetrics-text");
        Assert.Contains("types_queue_bytes 10\n", scrape, StringComparison.Ordinal);
        Assert.DoesNotContain("# UNIT", scrape, StringComparison.Ordinal);
        Assert.Equal(10, queue.Value);
        worker.CloseInput();
        Assert.Equal(0, worker.WaitForExit());
    }

    private static string[] TrueStates(string scrape) =>
    [
        .. scrape.Split('\n')
            .Where(l => l.StartsWith("types_service_state{", StringComparison.Ordinal) && l.EndsWith("} 1", StringComparison.Ordinal))
            .Select(l => l.Split('"')[1]),
    ];

    private static async Task<string> ScrapeAsync(MetricRegistry registry, string accept)
    {
        using var response = await ScrapeResponse.RenderAsync(registry, accept, null);
        var body = Encoding.UTF8.GetString(response.Body.Span);
        Assert.True(response.StatusCode == 200, body);
        return body;
    }
}
