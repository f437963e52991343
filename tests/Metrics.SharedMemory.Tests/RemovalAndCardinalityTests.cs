using System.Globalization;
using Metrics.Backends.SharedMemory;

namespace Metrics.SharedMemory.Tests;

public sealed class RemovalAndCardinalityTests
{
    [Fact]
    public void A_removal_reaches_another_process_and_its_held_series_comes_back_from_zero()
    {
        using var store = new Store();
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<SharedMemoryBackend>(store.Config));
        var held = new Counter("shm_held_total", "Series a holding process keeps.", ["i"], registry: registry);
        using var worker = Worker.Start(store.FilePath, "hold", "2");
        worker.WaitForLine("ready");
        worker.WriteLine("inc");
        worker.WaitForLine("incremented 1");
        Assert.Contains("shm_held_total{i=\"0\"} 1", registry.Render(), StringComparison.Ordinal);

        // This process never created the series: the removal still reaches the store, and the other process's scrape.
        Assert.False(held.Remove("0"));
        var text = registry.Render();
        Assert.DoesNotContain("i=\"0\"", text, StringComparison.Ordinal);
        Assert.Contains("shm_held_total{i=\"1\"} 1", text, StringComparison.Ordinal);
        worker.WriteLine("collect");
        Assert.Equal("1 sum 1", worker.WaitForLine("collected"));

        // The other process still holds the removed series' value: its next update brings the series back from 0.
        worker.WriteLine("inc");
        worker.WaitForLine("incremented 2");
        text = registry.Render();
        Assert.Contains("shm_held_total{i=\"0\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("shm_held_total{i=\"1\"} 2", text, StringComparison.Ordinal);

        Assert.Equal(0, held.Clear());
        worker.WriteLine("collect");
        Assert.Equal("0 sum 0", worker.WaitForLine("collected"));
        Assert.DoesNotContain("shm_held_total{", registry.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public void The_cardinality_limit_counts_the_series_of_every_process()
    {
        using var store = new Store();
        const int Limit = 50;
        const int Each = 30; // 60% of the limit per process

        // Another process creates 60% of the limit's worth of label sets in the shared store.
        Worker.Run(store.FilePath, "series", "other", Each.ToString(CultureInfo.InvariantCulture));
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<SharedMemoryBackend>(store.Config));
        var many = new Counter("shm_many_total", "One of very many series.", ["worker", "i"], registry: registry) { CardinalityLimit = Limit };
        for (var i = 0; i < Each; i++)
        {
            many.Labels("self", i.ToString(CultureInfo.InvariantCulture)).Inc();
        }

        var text = registry.Render();
        var series = text.Split('\n').Where(l => l.StartsWith("shm_many_total{", StringComparison.Ordinal)).ToList();
        Assert.Equal(Limit + 1, series.Count);
        Assert.Equal(Each, series.Count(l => l.Contains("worker=\"other\"", StringComparison.Ordinal)));
        Assert.Equal(Limit - Each, series.Count(l => l.Contains("worker=\"self\"", StringComparison.Ordinal)));
        Assert.Contains($"shm_many_total{{worker=\"__overflow__\",i=\"__overflow__\"}} {(2 * Each) - Limit}", text, StringComparison.Ordinal);
        Assert.Contains($"metrics_cardinality_overflow_total{{metric=\"shm_many_total\"}} {(2 * Each) - Limit}", text, StringComparison.Ordinal);
    }
}
