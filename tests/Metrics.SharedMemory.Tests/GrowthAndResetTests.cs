using System.Globalization;
using Metrics.Backends.SharedMemory;

namespace Metrics.SharedMemory.Tests;

/// <summary>The store grows with its series up to MaxSize, and a store nobody uses can be reset.</summary>
public sealed class GrowthAndResetTests
{
    private const int OneMiB = 1 << 20;

    private static readonly MetricDescriptor Many = new("shm_many_total", "One of very many series.", MetricType.Counter, ["worker", "i"]);

    [Fact]
    public void A_million_series_from_two_processes_grow_the_store_under_every_mapping()
    {
        const int PerWorker = 500_000;
        using var store = new Store();
        // This process maps the store while it is small; it must see everything the workers add later.
        Assert.Equal(OneMiB, store.Mapped.UsedBytes <= OneMiB ? new FileInfo(store.FilePath).Length : -1);

        var workers = new[] { "w0", "w1" }.Select(w => Worker.Start(store.FilePath, "series", w, PerWorker.ToString(CultureInfo.InvariantCulture))).ToList();
        try
        {
            foreach (var worker in workers)
            {
                Assert.Equal(PerWorker.ToString(CultureInfo.InvariantCulture), worker.WaitForLine("created", TimeSpan.FromMinutes(5)));
                Assert.True(worker.WaitForExit() == 0, worker.Output);
            }
        }
        finally
        {
            workers.ForEach(w => w.Dispose());
        }

        var values = store.Collect(Many);
        Assert.Equal(2 * PerWorker, values.Count);
        Assert.All(values, v => Assert.Equal(1, v.Value));
        var length = new FileInfo(store.FilePath).Length;
        Assert.True(length > 100L * OneMiB, $"the file is {length} bytes");
        Assert.InRange(store.Mapped.UsedBytes, 100L * OneMiB, length);
    }

    [Fact]
    public void Past_MaxSize_series_are_refused_and_counted_while_existing_ones_keep_working()
    {
        using var store = new Store(new Dictionary<string, string?> { ["MaxSize"] = (2 * OneMiB).ToString(CultureInfo.InvariantCulture) });
        using var worker = Worker.Start(store.FilePath, new Dictionary<string, string?> { ["SHM_MAX_SIZE"] = (2 * OneMiB).ToString(CultureInfo.InvariantCulture) }, "series", "w", "100000");
        var line = worker.WaitForLine("full after ");
        Assert.True(worker.WaitForExit() == 0, worker.Output);
        var created = int.Parse(line[..line.IndexOf(':', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
        Assert.Contains($": refused 1: The shared-memory metrics store '{store.FilePath}' is full (", line, StringComparison.Ordinal);
        Assert.Contains("Raise 'Metrics:BackendConfig:MaxSize'", line, StringComparison.Ordinal);
        // Grown from 1 MiB to MaxSize, never beyond.
        Assert.Equal(2 * OneMiB, new FileInfo(store.FilePath).Length);
        Assert.Equal(created, store.Collect(Many).Count);
    }

    [Fact]
    public void Reset_is_refused_while_a_process_uses_the_store_and_deletes_it_once_none_does()
    {
        using var store = new Store();
        using (var holder = Worker.Start(store.FilePath, "gauge", "LiveSum", "1"))
        {
            holder.WaitForLine("ready");
            var refused = Assert.Throws<InvalidOperationException>(() => SharedMemoryBackend.ResetStore(store.Config));
            Assert.Equal($"The shared-memory metrics store '{store.FilePath}' is still used by 1 live process(es) holding a slot; stop them before resetting the store.", refused.Message);
            Assert.True(File.Exists(store.FilePath));
            holder.CloseInput();
            Assert.True(holder.WaitForExit() == 0, holder.Output);
        }

        Assert.True(SharedMemoryBackend.ResetStore(store.Config));
        Assert.False(File.Exists(store.FilePath));
        Assert.False(SharedMemoryBackend.ResetStore(store.Config));

        // The next process starts an empty store.
        Worker.Run(store.FilePath, "count", "2");
        Assert.Equal(2, Assert.Single(store.Collect(Store.Counter)).Value);
    }

    [Fact]
    public void Reset_removes_a_damaged_store_that_no_process_can_open()
    {
        using var store = new Store();
        Worker.Run(store.FilePath, "hold", "20000");
        using (var file = new FileStream(store.FilePath, FileMode.Open, FileAccess.Write))
        {
            file.SetLength(OneMiB);
        }

        Assert.Throws<InvalidDataException>(() => SharedMemoryBackend.Initialize(store.Config));
        Assert.True(SharedMemoryBackend.ResetStore(store.Config));
        Worker.Run(store.FilePath, "count", "1");
        Assert.Equal(1, Assert.Single(store.Collect(Store.Counter)).Value);
    }
}
