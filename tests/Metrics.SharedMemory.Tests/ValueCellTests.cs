using Metrics.Backends.SharedMemory;
using Metrics.Tests;

namespace Metrics.SharedMemory.Tests;

/// <summary>Values whose increment is one compare-and-swap hand the metrics API the mapped word itself.</summary>
public sealed class ValueCellTests
{
    public static TheoryData<GaugeAggregation, bool> GaugeModes() => new()
    {
        { GaugeAggregation.Sum, true },
        { GaugeAggregation.LiveSum, true },
        { GaugeAggregation.Max, true },
        { GaugeAggregation.LiveMax, true },
        { GaugeAggregation.Min, true },
        { GaugeAggregation.LiveMin, true },
        { GaugeAggregation.MostRecent, true },
        // Its writes also take a store-wide sequence number: a compare-and-swap alone would not be a complete update.
        { GaugeAggregation.LiveMostRecent, false },
        { GaugeAggregation.PerProcess, true },
        { GaugeAggregation.LivePerProcess, true },
    };

    [Theory]
    [MemberData(nameof(GaugeModes))]
    public unsafe void AGaugeHasACellExactlyWhenOneCompareAndSwapIsAWholeIncrement(GaugeAggregation mode, bool hasCell)
    {
        using var store = new Store();
        var family = Store.Gauge(mode);
        var gauge = store.Create(family.LabelNames.Count == 0 ? family : family.WithLabelValues(["1"]));
        Assert.Equal(hasCell, gauge.ValueCell != 0);
        if (hasCell)
        {
            gauge.Set(1);
            Assert.True(AtomicDouble.TryAdd(ref *(long*)gauge.ValueCell, 2));
            Assert.Equal(3, gauge.Get());
            Assert.Equal(3, Assert.Single(store.Collect(family)).Value);
        }
    }

    [Fact]
    public unsafe void CounterHistogramAndSummaryPartsAreCellsInTheMappedFile()
    {
        using var store = new Store();
        var counter = store.Create(Store.Counter.WithLabelValues(["GET", "/"]));
        Assert.True(AtomicDouble.TryAdd(ref *(long*)counter.ValueCell, 2));
        Assert.Equal(2, counter.Get());
        // Another instance of the series (another registry of this process) is the same word.
        Assert.Equal(counter.ValueCell, store.Create(Store.Counter.WithLabelValues(["GET", "/"])).ValueCell);
        Assert.Equal(2, store.Single(Store.Counter));
        Assert.NotEqual(0, store.Create(Store.Histogram.WithLabelValues(["GET"]), HistogramBucket.ForUpperBound(0.5)).ValueCell);
        Assert.NotEqual(0, store.Create(Store.Histogram.WithLabelValues(["GET"]), HistogramBucket.Sum).ValueCell);
        Assert.NotEqual(0, store.Create(Store.Summary.WithLabelValues(["GET"]), HistogramBucket.Count).ValueCell);
    }

    [Fact]
    public void An_unlabelled_counter_increments_without_allocating_and_loses_nothing_across_threads_and_registries()
    {
        using var store = new Store();
        var backend = ConfiguredBackend.Create<SharedMemoryBackend>(store.Config, "SharedMemory");
        using var registry = new MetricRegistry(backend: backend);
        using var other = new MetricRegistry(backend: backend);
        var counter = new Counter("cell_requests_total", "", registry: registry);
        var sameSeries = new Counter("cell_requests_total", "", registry: other);
        var rounds = 0;
        Allocations.AssertNone("Counter.Inc", () =>
        {
            IncMany(counter, 100_000);
            rounds++;
        }, calls: 1);

        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            var mine = t % 2 == 0 ? counter : sameSeries;
            for (var i = 0; i < 250_000; i++)
            {
                mine.Inc();
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        // Two registries of one process share the series as two processes do: one value.
        var expected = (rounds * 100_000) + 1_000_000;
        Assert.Equal(expected, counter.Value);
        Assert.Equal(expected, sameSeries.Value);
        Assert.Equal(expected, Assert.Single(store.Collect(new MetricDescriptor("cell_requests_total", "", MetricType.Counter))).Value);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void IncMany(Counter counter, int times)
    {
        for (var i = 0; i < times; i++)
        {
            counter.Inc();
        }
    }
}
