using System.Globalization;
using Metrics.Backends.SharedMemory;

namespace Metrics.SharedMemory.Tests;

/// <summary>
/// Values created before their store file was deleted, replaced or truncated move with the process to the valid store
/// now at the path, although the metrics API caches their mapped words: every update after the move is shared.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ReattachTests
{
    private const long After = 100_000;
    private const int OneMiB = 1 << 20;

    [Theory]
    [InlineData("deleted")]
    [InlineData("replaced")]
    [InlineData("truncated")]
    public void After_a_store_reset_a_new_process_sees_exactly_the_updates_made_after_the_writer_moved(string reset)
    {
        using var store = new Store();
        using var replacement = new Store();
        // An hour between timer checks: the writer moves when its own scrape notices, so the count starts right there.
        using var writer = Worker.Start(store.FilePath, new Dictionary<string, string?> { ["SHM_CHECK_INTERVAL"] = "01:00:00" }, "reattach", After.ToString(CultureInfo.InvariantCulture));
        writer.WaitForLine("ready");
        var before = Read(store.FilePath);
        Assert.True(before["shm_requests_total -"] > 1000, $"the writer counted only {before["shm_requests_total -"]} before the reset");

        // The writer keeps counting into the old file all through this.
        switch (reset)
        {
            case "deleted":
                File.Delete(store.FilePath);
                break;
            case "replaced":
                Worker.Run(replacement.FilePath, "hold", "1");
                File.Move(replacement.FilePath, store.FilePath, overwrite: true);
                break;
            case "truncated":
                // The writer's values were created first, so they lie before the cut: a value past it would be the
                // kernel's SIGBUS window (README), which DamagedStoreTests bounds by the check interval.
                Worker.Run(store.FilePath, "series", "grow", "20000");
                Assert.True(new FileInfo(store.FilePath).Length > OneMiB);
                using (var file = new FileStream(store.FilePath, FileMode.Open, FileAccess.Write))
                {
                    file.SetLength(OneMiB);
                }

                break;
        }

        writer.WriteLine("check");
        var wording = reset == "truncated" ? "was truncated to 1048576 bytes (it held " : reset == "replaced" ? "was replaced by another file" : "was deleted";
        Assert.StartsWith($"Metrics: SharedMemory store '{store.FilePath}' {wording}", writer.WaitForLine("log Warning: "), StringComparison.Ordinal);
        Assert.Equal("1", writer.WaitForLine("checked resets "));
        // The writer's own view after the move: the same exact count.
        Assert.Equal($"{After} own {After}", writer.WaitForLine("after "));

        var seen = Read(store.FilePath);
        Assert.Equal(After, seen["shm_requests_total -"]);
        Assert.Equal(After, seen["shm_latency_seconds 0.5"]);
        // A value moves at its first update after the reset: the +Inf bucket, never observed since, is not in the new store
        // (the exposition shows an absent bucket as 0).
        Assert.False(seen.ContainsKey("shm_latency_seconds +Inf"));
        Assert.Equal(After * 0.25, seen["shm_latency_seconds sum"]);
        Assert.Equal(After, seen["shm_size_bytes count"]);
        Assert.Equal(After * 2, seen["shm_size_bytes sum"]);
        writer.CloseInput();
        Assert.True(writer.WaitForExit() == 0, writer.Output);
    }

    [Fact]
    public void A_value_whose_own_bits_are_the_moved_marker_is_still_a_value()
    {
        using var store = new Store();
        var gauge = store.Create(Store.Gauge(GaugeAggregation.Sum));
        var marker = BitConverter.Int64BitsToDouble(AtomicDouble.MovedCell);
        gauge.Set(marker);
        Assert.Equal(AtomicDouble.MovedCell, BitConverter.DoubleToInt64Bits(gauge.Get()));
        var cell = gauge.ValueCell;
        gauge.Inc(1);
        Assert.True(double.IsNaN(gauge.Get()));
        Assert.Equal(cell, gauge.ValueCell);
        Assert.True(double.IsNaN(Assert.Single(store.Collect(Store.Gauge(GaugeAggregation.Sum))).Value));
    }

    [Fact]
    public unsafe void A_value_moves_when_its_store_is_deleted_and_its_old_word_reads_moved()
    {
        using var store = new Store(new Dictionary<string, string?> { ["CheckInterval"] = "01:00:00" });
        var counter = store.Create(Store.Counter.WithLabelValues(["GET", "/"]));
        var old = counter.ValueCell;
        Assert.True(AtomicDouble.TryAdd(ref *(long*)old, 5));
        File.Delete(store.FilePath);

        Assert.Empty(store.Collect(Store.Counter));
        Assert.Equal(AtomicDouble.MovedCell, Volatile.Read(ref *(long*)old));
        Assert.False(AtomicDouble.TryAddToCell(ref *(long*)old, 1));
        counter.Inc(1);
        Assert.NotEqual(old, counter.ValueCell);
        Assert.True(AtomicDouble.TryAddToCell(ref *(long*)counter.ValueCell, 2));
        Assert.Equal(3, counter.Get());
        Assert.Equal(3, store.Single(Store.Counter));
        Assert.Equal(AtomicDouble.MovedCell, Volatile.Read(ref *(long*)old));
    }

    [Fact]
    public void Threads_incrementing_through_a_store_deletion_all_end_up_in_the_new_store()
    {
        using var store = new Store(new Dictionary<string, string?> { ["CheckInterval"] = "01:00:00" });
        using var registry = new MetricRegistry(backend: ConfiguredBackend.Create<SharedMemoryBackend>(store.Config, "SharedMemory"));
        var counter = new Counter(Store.Counter.Name, "Requests.", [.. Store.Counter.LabelNames], registry: registry).Labels("GET", "/");
        const int Threads = 4;
        const int More = 10_000;
        var stop = 0;
        using var running = new CountdownEvent(Threads);
        using var phase = new Barrier(Threads + 1);
        var threads = Enumerable.Range(0, Threads).Select(_ => new Thread(() =>
        {
            counter.Inc();
            running.Signal();
            // Racing the move: some increments land in the old file, some refused at the moved marker, some in the new store.
            while (Volatile.Read(ref stop) == 0)
            {
                counter.Inc();
            }

            phase.SignalAndWait();
            phase.SignalAndWait();
            for (var i = 0; i < More; i++)
            {
                counter.Inc();
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        var cancel = TestContext.Current.CancellationToken;
        running.Wait(cancel);
        File.Delete(store.FilePath);
        store.Collect(Store.Counter);
        Volatile.Write(ref stop, 1);
        phase.SignalAndWait(cancel);
        var moved = store.Single(Store.Counter);
        Assert.Equal(moved, counter.Value);
        phase.SignalAndWait(cancel);
        threads.ForEach(t => t.Join());

        // Every thread's later increments are in the new store: none is left writing to the old file's memory.
        Assert.Equal(moved + (Threads * More), store.Single(Store.Counter));
        Assert.Equal(moved + (Threads * More), counter.Value);
    }

    /// <summary>A fresh process's scrape of the store, as "name bucket" → value.</summary>
    private static Dictionary<string, double> Read(string path)
    {
        using var reader = Worker.Start(path, "read");
        Assert.True(reader.WaitForExit() == 0, reader.Output);
        reader.WaitForLine("read");
        return reader.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => l.StartsWith("value ", StringComparison.Ordinal))
            .Select(l => l.Split(' '))
            .ToDictionary(p => $"{p[1]} {p[2]}", p => double.Parse(p[3], CultureInfo.InvariantCulture));
    }
}
