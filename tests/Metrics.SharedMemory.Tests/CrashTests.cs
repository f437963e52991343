using System.Globalization;

namespace Metrics.SharedMemory.Tests;

public sealed class CrashTests
{
    [Fact]
    public void KillingAWorkerMidLoopLeavesTheOthersRunningAndTheStoreReadable()
    {
        using var store = new Store();
        var workers = Enumerable.Range(0, 3).Select(_ => Worker.Start(store.FilePath, "spin")).ToList();
        workers.ForEach(w => w.WaitReady());
        workers[0].Kill();
        var afterKill = Assert.Single(store.Collect(Store.Counter)).Value;
        Thread.Sleep(300);
        Assert.True(Assert.Single(store.Collect(Store.Counter)).Value > afterKill, "the surviving workers stopped counting");
        workers[1].Kill();
        workers[2].Kill();

        var counter = Assert.Single(store.Collect(Store.Counter)).Value;
        var bucket = store.Single(Store.Histogram, HistogramBucket.ForUpperBound(0.5));
        // Each worker increments the counter then the bucket, so a kill leaves them at most one apart per worker.
        Assert.InRange(counter - bucket, 0, 3);

        // A new process opens the store cleanly and keeps counting from where the dead ones left off.
        Worker.Run(store.FilePath, "count", "1000");
        Assert.Equal(counter + 1000, Assert.Single(store.Collect(Store.Counter)).Value);
        workers.ForEach(w => w.Dispose());
    }

    [Fact]
    public void KillingWorkersThatAreAddingSeriesNeverCorruptsTheIndex()
    {
        using var store = new Store();
        var family = new MetricDescriptor("alloc_total", "", MetricType.Counter, ["worker", "i"]);
        var random = new Random(7);
        for (var round = 0; round < 4; round++)
        {
            var workers = Enumerable.Range(0, 2).Select(k => Worker.Start(store.FilePath, "allocate", $"r{round}w{k}")).ToList();
            workers.ForEach(w => w.WaitReady());
            Thread.Sleep(random.Next(20, 200));
            workers.ForEach(w => w.Kill());
            workers.ForEach(w => w.Dispose());
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
