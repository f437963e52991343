using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Metrics.Backends.SharedMemory;

namespace Metrics.SharedMemory.Tests;

/// <summary>
/// The store file is never trusted: a damaged store is refused with a message, and a file truncated, replaced or
/// deleted under a running process is detected (at every scrape and on the check interval) and left for a valid store.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class DamagedStoreTests
{
    private const int OneMiB = 1 << 20;

    // The index starts after the 192-byte header and the process slots (32 bytes each, 256 by default).
    private const long IndexStart = 192 + (256 * 32);

    private static readonly MetricDescriptor Held = new("shm_held_total", "Series a holding process keeps.", MetricType.Counter, ["i"]);

    [Fact]
    public void A_truncated_store_is_refused_when_opened_with_a_message_naming_the_file()
    {
        using var store = new Store();
        Worker.Run(store.FilePath, "hold", "20000");
        var used = store.Mapped.UsedBytes;
        Assert.True(used > OneMiB, $"the store holds only {used} bytes");
        store.Shutdown();
        Truncate(store.FilePath, OneMiB);

        using var worker = Worker.Start(store.FilePath, "count", "1");
        Assert.Equal(3, worker.WaitForExit());
        Assert.Equal(
            $"The shared-memory metrics store '{store.FilePath}' is damaged (the file is 1048576 bytes long but its header says {used} bytes are in use: it was truncated), so it was not opened; it was modified by something other than this backend. Delete it ('rm {store.FilePath}') and a new, empty store is created; processes still using the old file move to the new one by themselves.",
            worker.WaitForLine("refused: "));
    }

    public static TheoryData<string, string> Damage() => new()
    {
        { "link", "an index link points to offset" },
        { "overlap", "overlap" },
        { "magic", "it does not start with the store's magic number" },
        { "used", "its used size is" },
    };

    [Theory]
    [MemberData(nameof(Damage))]
    public void A_store_with_damaged_entries_or_header_is_refused_by_a_new_process(string damage, string expected)
    {
        using var store = new Store();
        Worker.Run(store.FilePath, "hold", "100");
        var used = store.Mapped.UsedBytes;
        store.Shutdown();
        using (var file = new FileStream(store.FilePath, FileMode.Open, FileAccess.ReadWrite))
        {
            var bytes = new byte[file.Length];
            file.ReadExactly(bytes);
            var heads = Enumerable.Range(0, 16384).Select(b => (Bucket: b, Index: BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan((int)(IndexStart + (b * 4)))))).Where(h => h.Index != 0).ToList();
            switch (damage)
            {
                case "link":
                    Write(file, IndexStart + (heads[0].Bucket * 4), (int)(used / 64) + 10);
                    break;
                case "overlap":
                    // The first entry claims to reach into the next one.
                    var entries = heads.Select(h => h.Index).Order().ToList();
                    Write(file, (entries[0] * 64L) + 20, entries[1] - entries[0] + 1);
                    break;
                case "magic":
                    Write(file, 0, 0x4141_4141);
                    break;
                case "used":
                    file.Position = 64;
                    file.Write(BitConverter.GetBytes(used + 3));
                    break;
            }
        }

        using var worker = Worker.Start(store.FilePath, "count", "1");
        Assert.Equal(3, worker.WaitForExit());
        var message = worker.WaitForLine("refused: ");
        Assert.StartsWith($"The shared-memory metrics store '{store.FilePath}' is damaged (", message, StringComparison.Ordinal);
        Assert.Contains(expected, message, StringComparison.Ordinal);
        Assert.Contains("so it was not opened", message, StringComparison.Ordinal);

        static void Write(FileStream file, long offset, int value)
        {
            file.Position = offset;
            file.Write(BitConverter.GetBytes(value));
        }
    }

    [Fact]
    public void A_store_of_another_layout_version_is_refused_naming_both_versions()
    {
        using var store = new Store();
        Worker.Run(store.FilePath, "count", "1");
        using (var file = new FileStream(store.FilePath, FileMode.Open, FileAccess.Write))
        {
            file.Position = 8;
            file.Write(BitConverter.GetBytes(9));
        }

        using var worker = Worker.Start(store.FilePath, "count", "1");
        Assert.Equal(3, worker.WaitForExit());
        Assert.Equal(
            $"The shared-memory metrics store '{store.FilePath}' has layout version 9, this backend writes version 3. Stop the processes using it and delete the file.",
            worker.WaitForLine("refused: "));
    }

    [Fact]
    public void A_store_whose_header_is_overwritten_in_place_is_replaced_at_the_next_scrape()
    {
        using var store = new Store();
        using var worker = Worker.Start(store.FilePath, Environment("01:00:00"), "hold", "10");
        worker.WaitForLine("ready");
        worker.WriteLine("inc");
        worker.WaitForLine("incremented");
        // The same inode and length, but another generation: something rewrote the file in place.
        using (var file = new FileStream(store.FilePath, FileMode.Open, FileAccess.Write))
        {
            file.Position = 40;
            file.Write(BitConverter.GetBytes(12345L));
        }

        worker.WriteLine("collect");
        Assert.StartsWith($"Metrics: SharedMemory store '{store.FilePath}' had its header overwritten by something other than this backend; this process stopped using that file and now uses a new, empty store it created at the same path.", worker.WaitForLine("log Warning: "), StringComparison.Ordinal);
        Assert.Equal("0 sum 0", worker.WaitForLine("collected"));
        worker.WriteLine("inc");
        Assert.Equal("1", worker.WaitForLine("incremented"));
        worker.WriteLine("stats");
        Assert.Equal("1", worker.WaitForLine("stat metrics_backend_store_resets_total"));
        Assert.Equal(10, store.Collect(Held).Sum(v => v.Value));
        worker.CloseInput();
        Assert.True(worker.WaitForExit() == 0, worker.Output);
    }

    [Fact]
    public void A_process_whose_store_is_truncated_under_it_detaches_within_the_check_interval_and_keeps_running()
    {
        using var store = new Store();
        var interval = TimeSpan.FromMilliseconds(200);
        using var worker = Worker.Start(store.FilePath, Environment("00:00:00.200"), "hold", "20000");
        worker.WaitForLine("ready");
        Assert.True(new FileInfo(store.FilePath).Length > OneMiB);

        var watch = Stopwatch.StartNew();
        Truncate(store.FilePath, OneMiB);
        // The worker is idle: nothing but its check timer can notice.
        var logged = worker.WaitForLine("log Warning: ", TimeSpan.FromSeconds(30));
        var detectedAfter = watch.Elapsed;
        Assert.StartsWith($"Metrics: SharedMemory store '{store.FilePath}' was truncated to 1048576 bytes (it held ", logged, StringComparison.Ordinal);
        Assert.Contains("now uses a new, empty store it created at the same path", logged, StringComparison.Ordinal);
        // The timer fires every interval; the slack is for a loaded machine, and the measured delay is in the failure message.
        Assert.True(detectedAfter < interval + TimeSpan.FromSeconds(5), $"detected after {detectedAfter}");

        // Values created before the truncation, including those that lay past the cut, are updated without a fault: the
        // window in which touching them could fault ended at the check.
        worker.WriteLine("inc");
        worker.WaitForLine("incremented");
        worker.WriteLine("new after");
        worker.WaitForLine("created");
        worker.WriteLine("stats");
        Assert.Equal("1", worker.WaitForLine("stat metrics_backend_store_resets_total"));

        // The path now holds a valid store: the held values moved there at their update after the truncation, with only
        // that update, and the series created after it.
        var values = store.Collect(Held);
        Assert.Equal(20_001, values.Count);
        Assert.All(values, v => Assert.Equal(1, v.Value));
        Assert.Contains(values, v => v.LabelValues.SequenceEqual(["after"]));
        worker.CloseInput();
        Assert.True(worker.WaitForExit() == 0, worker.Output);
    }

    [Fact]
    public void A_scrape_notices_a_deleted_store_at_once_and_creates_a_new_one()
    {
        using var store = new Store();
        // An hour between timer checks: only the scrape can notice here.
        using var worker = Worker.Start(store.FilePath, Environment("01:00:00"), "hold", "10");
        worker.WaitForLine("ready");
        File.Delete(store.FilePath);

        worker.WriteLine("collect");
        Assert.StartsWith($"Metrics: SharedMemory store '{store.FilePath}' was deleted by something other than this backend", worker.WaitForLine("log Warning: "), StringComparison.Ordinal);
        Assert.Equal("0 sum 0", worker.WaitForLine("collected"));
        Assert.True(File.Exists(store.FilePath));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(store.FilePath));

        worker.WriteLine("new again");
        worker.WaitForLine("created");
        Assert.Equal(["again"], Assert.Single(store.Collect(Held)).LabelValues);
        worker.CloseInput();
        Assert.True(worker.WaitForExit() == 0, worker.Output);
    }

    [Fact]
    public void A_process_whose_store_is_replaced_moves_to_the_new_file()
    {
        using var store = new Store();
        using var other = new Store();
        other.Create(Held.WithLabelValues(["other"])).Inc(5);
        other.Shutdown();

        using var worker = Worker.Start(store.FilePath, Environment("01:00:00"), "hold", "10");
        worker.WaitForLine("ready");
        File.Move(other.FilePath, store.FilePath, overwrite: true);

        worker.WriteLine("collect");
        Assert.StartsWith($"Metrics: SharedMemory store '{store.FilePath}' was replaced by another file by something other than this backend", worker.WaitForLine("log Warning: "), StringComparison.Ordinal);
        Assert.Equal("1 sum 5", worker.WaitForLine("collected"));
        worker.CloseInput();
        Assert.True(worker.WaitForExit() == 0, worker.Output);
    }

    [Fact]
    public void A_store_growing_fast_in_other_processes_is_never_taken_for_a_damaged_one()
    {
        using var store = new Store();
        using var worker = Worker.Start(store.FilePath, Environment("00:00:00.010"), "hold", "10");
        worker.WaitForLine("ready");
        // Two processes grow the file while the holder checks it every 10 ms and scrapes; a third opens it mid-growth.
        var growers = new[] { "g0", "g1" }.Select(g => Worker.Start(store.FilePath, Environment("00:00:00.010"), "series", g, "200000")).ToList();
        try
        {
            for (var i = 0; i < 20; i++)
            {
                worker.WriteLine("new n" + i.ToString(CultureInfo.InvariantCulture));
                worker.WaitForLine("created");
                worker.WriteLine("collect");
                worker.WaitForLine("collected");
            }

            Worker.Run(store.FilePath, "count", "1");
            foreach (var grower in growers)
            {
                Assert.Equal("200000", grower.WaitForLine("created"));
                Assert.True(grower.WaitForExit() == 0, grower.Output);
                Assert.DoesNotContain("log ", grower.Stdout, StringComparison.Ordinal);
            }
        }
        finally
        {
            growers.ForEach(g => g.Dispose());
        }

        worker.WriteLine("stats");
        Assert.Equal("0", worker.WaitForLine("stat metrics_backend_store_resets_total"));
        worker.CloseInput();
        Assert.True(worker.WaitForExit() == 0, worker.Output);
        Assert.DoesNotContain("log ", worker.Stdout, StringComparison.Ordinal);
    }

    private static Dictionary<string, string?> Environment(string checkInterval) => new() { ["SHM_CHECK_INTERVAL"] = checkInterval };

    private static void Truncate(string path, long length)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
        file.SetLength(length);
    }
}
