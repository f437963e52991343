using System.Globalization;

namespace Metrics.SharedMemory.Tests;

public sealed class MultiProcessTests
{
    [Fact]
    public void Four_processes_incrementing_the_same_series_lose_nothing()
    {
        using var store = new Store();
        const int Iterations = 1_000_000;
        var workers = Enumerable.Range(0, 4).Select(_ => Worker.Start(store.FilePath, "count", Iterations.ToString(CultureInfo.InvariantCulture))).ToList();
        foreach (var worker in workers)
        {
            Assert.True(worker.WaitForExit() == 0, worker.Output);
            worker.Dispose();
        }

        // Every series below was created only by the workers: the scrape reads what other processes wrote.
        var counter = Assert.Single(store.Collect(Store.Counter));
        Assert.Equal(["GET", "a\"b\n,c=d ü"], counter.LabelValues);
        Assert.Equal(4.0 * Iterations, counter.Value);
        Assert.Equal(4.0 * Iterations, store.Single(Store.Histogram, HistogramBucket.ForUpperBound(0.5)));
        Assert.Equal(4.0 * Iterations * 0.25, store.Single(Store.Histogram, HistogramBucket.Sum));
        Assert.Equal(4.0 * Iterations, store.Single(Store.Summary, HistogramBucket.Count));
        Assert.Equal(4.0 * Iterations * 2, store.Single(Store.Summary, HistogramBucket.Sum));
    }

    [Fact]
    public void Two_hundred_short_lived_processes_leave_the_store_the_size_of_one()
    {
        using var store = new Store();
        const int Processes = 200;
        Worker.Run(store.FilePath, "churn");
        var fileLength = new FileInfo(store.FilePath).Length;
        var used = store.Mapped.UsedBytes;
        var pids = new List<int>();
        for (var i = 1; i < Processes; i++)
        {
            Worker.Run(store.FilePath, "churn");
            Assert.Equal(fileLength, new FileInfo(store.FilePath).Length);
        }

        Assert.Equal(used, store.Mapped.UsedBytes);
        // Each process took the slot its exited predecessor left: per-process state is bounded by live processes.
        var slot = Assert.Single(store.Mapped.Slots());
        Assert.False(slot.Live);
        Assert.Equal(Processes, Assert.Single(store.Collect(Store.Counter)).Value);
        Assert.Equal(Processes, store.Single(Store.Histogram, HistogramBucket.ForUpperBound(0.5)));
        Assert.Equal(Processes * 0.25, store.Single(Store.Histogram, HistogramBucket.Sum));
        // Nobody is alive, so the live sum has no series; Max kept the dead processes' values through the archive.
        Assert.Empty(store.Collect(Store.Gauge(GaugeAggregation.LiveSum)));
        Assert.True(store.Single(Store.Gauge(GaugeAggregation.Max)) > 0);
    }

    [Fact]
    public void Max_keeps_the_largest_value_of_every_process_that_ever_ran_through_slot_reuse()
    {
        using var store = new Store();
        var family = Store.Gauge(GaugeAggregation.Max);
        foreach (var value in new[] { 5, 40, 7, 3 })
        {
            Worker.Run(store.FilePath, "gauge", "Max", value.ToString(CultureInfo.InvariantCulture));
        }

        Assert.Single(store.Mapped.Slots());
        Assert.Equal(40, store.Single(family));
        var min = Store.Gauge(GaugeAggregation.Min);
        foreach (var value in new[] { 5, -4, 7 })
        {
            Worker.Run(store.FilePath, "gauge", "Min", value.ToString(CultureInfo.InvariantCulture));
        }

        Assert.Equal(-4, store.Single(min));
    }

    [Fact]
    public void A_setting_that_disagrees_with_the_existing_store_fails_naming_the_key()
    {
        using var store = new Store();
        Worker.Run(store.FilePath, "churn");
        using var worker = Worker.Start(store.FilePath, new Dictionary<string, string?> { ["SHM_MAX_SIZE"] = "33554432" }, "churn");
        // The worker prints a refused configuration (a BackendConfigException from Initialize) and exits with 3.
        Assert.Equal(3, worker.WaitForExit());
        Assert.Contains("'Metrics:BackendConfig:MaxSize' is 33554432", worker.WaitForLine("refused: "), StringComparison.Ordinal);
    }

    [Fact]
    public void When_every_process_slot_is_held_a_new_process_is_refused_naming_MaxProcesses()
    {
        using var store = new Store(new Dictionary<string, string?> { ["MaxProcesses"] = "1" });
        var gauge = store.Create(Store.Gauge(GaugeAggregation.LiveSum));
        gauge.Set(4);
        using var refused = Worker.Start(store.FilePath, new Dictionary<string, string?> { ["SHM_MAX_PROCESSES"] = "1" }, "gauge", "LiveSum", "3");
        Assert.NotEqual(0, refused.WaitForExit());
        Assert.Contains("SharedMemoryStoreFullException", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("Metrics:BackendConfig:MaxProcesses", refused.Stderr, StringComparison.Ordinal);

        // Counters need no slot, so the same process can still count; the live sum is this process's alone.
        Worker.Run(store.FilePath, new Dictionary<string, string?> { ["SHM_MAX_PROCESSES"] = "1" }, "count", "5");
        Assert.Equal(5, Assert.Single(store.Collect(Store.Counter)).Value);
        Assert.Equal(4, store.Single(Store.Gauge(GaugeAggregation.LiveSum)));
    }
}
