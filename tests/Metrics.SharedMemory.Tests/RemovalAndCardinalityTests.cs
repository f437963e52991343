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
    public void A_removal_drops_the_exemplars_every_process_stored()
    {
        using var store = new Store();
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<SharedMemoryBackend>(store.Config));
        var held = new Counter("shm_held_total", "Series a holding process keeps.", ["i"], registry: registry);
        var mine = held.Labels("1");
        using var worker = Worker.Start(store.FilePath, "hold", "2");
        worker.WaitForLine("ready");
        worker.WriteLine("exemplar child_old");
        worker.WaitForLine("recorded");
        mine.Inc(1, Exemplar.Of("trace_id", "parent_old"));
        var om = registry.Render(ExpositionFormat.OpenMetrics);
        Assert.Contains("shm_held_total{i=\"0\"} 1 # {trace_id=\"child_old\"} 1 ", om, StringComparison.Ordinal);
        Assert.Contains("shm_held_total{i=\"1\"} 1 # {trace_id=\"parent_old\"} 1 ", om, StringComparison.Ordinal);

        // Both processes update the removed series again, without exemplars: they come back from 0 with none.
        Assert.Equal(1, held.Clear());
        worker.WriteLine("inc");
        worker.WaitForLine("incremented 1");
        mine.Inc();
        om = registry.Render(ExpositionFormat.OpenMetrics);
        Assert.Contains("shm_held_total{i=\"0\"} 1\n", om, StringComparison.Ordinal);
        Assert.Contains("shm_held_total{i=\"1\"} 2\n", om, StringComparison.Ordinal);
        Assert.DoesNotContain("_old", om, StringComparison.Ordinal);
        worker.WriteLine("exemplars");
        Assert.Equal("-", worker.WaitForLine("exemplars"));

        // A new exemplar after the removal is stored and seen by both processes.
        worker.WriteLine("exemplar child_new");
        worker.WaitForLine("recorded");
        Assert.Contains("shm_held_total{i=\"0\"} 2 # {trace_id=\"child_new\"} 1 ", registry.Render(ExpositionFormat.OpenMetrics), StringComparison.Ordinal);
        worker.WriteLine("exemplars");
        Assert.Equal("child_new", worker.WaitForLine("exemplars"));
    }

    [Fact]
    public void Overflows_of_every_process_are_summed_and_the_limit_holds_across_processes()
    {
        using var store = new Store();
        const string Overflow = "metrics_cardinality_overflow_total{metric=\"shm_card_total\"}";

        // 30 label sets, then 40 in another process: 20 of those are refused, with one warning in that process.
        using var one = Worker.Start(store.FilePath, "cardinality", "one", "30", "50");
        one.WaitForLine("created");
        using var two = Worker.Start(store.FilePath, "cardinality", "two", "40", "50");
        two.WaitForLine("created");
        Assert.Single(two.Stdout.Split('\n'), l => l.Contains("reached its cardinality limit of 50", StringComparison.Ordinal));

        // This process refused nothing, nor did the first one: both show the other process's count from the store.
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<SharedMemoryBackend>(store.Config));
        _ = new Counter("shm_card_total", "One of many series.", ["worker", "i"], registry: registry) { CardinalityLimit = 50 };
        var text = registry.Render();
        Assert.Contains(Overflow + " 20\n", text, StringComparison.Ordinal);
        Assert.Equal(51, text.Split('\n').Count(l => l.StartsWith("shm_card_total{", StringComparison.Ordinal)));
        one.WriteLine("render");
        Assert.Equal(Overflow + " 20", one.WaitForLine("rendered"));
        Assert.DoesNotContain("reached its cardinality limit", one.Stdout, StringComparison.Ordinal);

        // The first process is at the shared limit too: its 5 new label sets are refused, and the counts add up.
        one.WriteLine("more 5");
        one.WaitForLine("created");
        text = registry.Render();
        Assert.Contains(Overflow + " 25\n", text, StringComparison.Ordinal);
        Assert.Contains("shm_card_total{worker=\"__overflow__\",i=\"__overflow__\"} 25\n", text, StringComparison.Ordinal);
        Assert.Equal(51, text.Split('\n').Count(l => l.StartsWith("shm_card_total{", StringComparison.Ordinal)));
        two.WriteLine("render");
        Assert.Equal(Overflow + " 25", two.WaitForLine("rendered"));
        one.WriteLine("more 5");
        one.WaitForLine("created");
        Assert.Single(one.Stdout.Split('\n'), l => l.Contains("reached its cardinality limit of 50", StringComparison.Ordinal));
        Assert.Contains(Overflow + " 30\n", registry.Render(), StringComparison.Ordinal);
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
