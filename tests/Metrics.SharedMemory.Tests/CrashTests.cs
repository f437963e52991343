using System.Globalization;

namespace Metrics.SharedMemory.Tests;

public sealed class CrashTests
{
    [Fact]
    public void Killing_a_worker_mid_loop_leaves_the_others_running_and_the_store_readable()
    {
        using var store = new Store();
        var workers = Enumerable.Range(0, 3).Select(_ => Worker.Start(store.FilePath, "spin")).ToList();
        try
        {
            workers.ForEach(w => w.WaitForLine("ready"));
            workers[0].Kill();
            var afterKill = Assert.Single(store.Collect(Store.Counter)).Value;
            // Each survivor answers once it has added 1000 more after being asked, which is after afterKill was read.
            workers.Skip(1).ToList().ForEach(w => w.WriteLine("more 1000"));
            workers.Skip(1).ToList().ForEach(w => w.WaitForLine("counted"));
            Assert.True(Assert.Single(store.Collect(Store.Counter)).Value >= afterKill + 2000, "the surviving workers stopped counting");
            workers[1].Kill();
            workers[2].Kill();

            var counter = Assert.Single(store.Collect(Store.Counter)).Value;
            var bucket = store.Single(Store.Histogram, HistogramBucket.ForUpperBound(0.5));
            // Each worker increments the counter then the bucket, so a kill leaves them at most one apart per worker.
            Assert.InRange(counter - bucket, 0, 3);

            // A new process opens the store cleanly and keeps counting from where the dead ones left off.
            Worker.Run(store.FilePath, "count", "1000");
            Assert.Equal(counter + 1000, Assert.Single(store.Collect(Store.Counter)).Value);
        }
        finally
        {
            workers.ForEach(w => w.Dispose());
        }
    }

    [Fact]
    public void Killing_workers_that_are_adding_series_never_corrupts_the_index()
    {
        using var store = new Store();
        var family = new MetricDescriptor("alloc_total", "", MetricType.Counter, ["worker", "i"]);
        var random = new Random(7);
        for (var round = 0; round < 4; round++)
        {
            var workers = Enumerable.Range(0, 2).Select(k => Worker.Start(store.FilePath, "allocate", $"r{round}w{k}")).ToList();
            try
            {
                foreach (var worker in workers)
                {
                    // A random point of progress to kill at: at least 101 series each, so more than 800 in all.
                    var killAt = $"allocated {random.Next(1, 20) * 100}";
                    worker.WaitForLine(l => l == killAt, $"'{killAt}'");
                    worker.Kill();
                }
            }
            finally
            {
                workers.ForEach(w => w.Dispose());
            }
        }

        var values = store.Collect(family);
        Assert.True(values.Count > 800, $"only {values.Count} series were created");
        // No key was published twice, none is half-written (each decodes), and each counter got at most its one Inc.
        Assert.Equal(values.Count, values.Select(v => string.Join('\0', v.LabelValues)).Distinct().Count());
        Assert.All(values, v => Assert.InRange(v.Value, 0, 1));
        foreach (var worker in values.GroupBy(v => v.LabelValues[0]))
        {
            // Series are created in order, so a worker's indexes are contiguous up to where it died.
            var indexes = worker.Select(v => int.Parse(v.LabelValues[1], CultureInfo.InvariantCulture)).Order().ToList();
            Assert.Equal(Enumerable.Range(0, indexes.Count), indexes);
        }

        // Everything published is reachable and walkable, and new processes still add and find series.
        Assert.Equal(values.Count, store.Mapped.Entries().Count);
        Worker.Run(store.FilePath, "count", "10");
        Assert.Equal(10, Assert.Single(store.Collect(Store.Counter)).Value);
        Assert.Equal(values.Count, store.Collect(family).Count);
    }
}
