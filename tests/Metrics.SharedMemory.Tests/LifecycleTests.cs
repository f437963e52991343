using System.Runtime.CompilerServices;
using Metrics.Backends.SharedMemory;

namespace Metrics.SharedMemory.Tests;

/// <summary>Shutdown releases the store; values kept across it stay safe to use.</summary>
public sealed class LifecycleTests
{
    [Fact]
    public async Task Shutdown_releases_the_slot_and_the_same_configuration_then_gives_a_fresh_working_store()
    {
        using var store = new Store();
        var backend = ConfiguredBackend.Create<SharedMemoryBackend>(store.Config, "SharedMemory");
        var registry = new MetricRegistry(backend: backend);
        var counter = new Counter("life_total", "", registry: registry);
        var live = new Gauge("life_live", "", registry: registry, aggregation: GaugeAggregation.LiveSum);
        counter.Inc();
        live.Set(5);
        var before = store.Mapped;
        Assert.Equal(5, store.Single(new MetricDescriptor("life_live", "", MetricType.Gauge, gaugeAggregation: GaugeAggregation.LiveSum)));
        Assert.Contains(before.Slots(), s => s.Live);

        await backend.ShutdownAsync(TestContext.Current.CancellationToken);

        // Values created before the shutdown still point into the mapping: using them must not crash.
        counter.Inc(2);
        live.Set(6);
        live.Inc(1);
        Assert.Equal(3, counter.Value);
        _ = live.Value;

        // The next use opens the store again: another mapping, this process's old slot free (its lock went with the file).
        var value = backend.CreateValue(new MetricDescriptor("life_total", "", MetricType.Counter));
        Assert.NotSame(before, store.Mapped);
        Assert.Equal(3, value.Get());
        Assert.Empty(store.Collect(new MetricDescriptor("life_live", "", MetricType.Gauge, gaugeAggregation: GaugeAggregation.LiveSum)));
        value.Inc(1);
        Assert.Equal(4, Assert.Single(store.Collect(new MetricDescriptor("life_total", "", MetricType.Counter))).Value);
        var again = backend.CreateValue(new MetricDescriptor("life_live", "", MetricType.Gauge, gaugeAggregation: GaugeAggregation.LiveSum));
        again.Set(7);
        Assert.Equal(7, again.Get());
        await registry.DisposeAsync();
    }

    [Fact]
    public void After_shutdown_and_deleting_the_file_the_same_configuration_starts_empty()
    {
        using var store = new Store();
        var old = store.Create(new MetricDescriptor("fresh_total", "", MetricType.Counter));
        old.Inc(3);
        store.Shutdown();
        File.Delete(store.FilePath);

        SharedMemoryBackend.Initialize(store.Config);
        Assert.True(File.Exists(store.FilePath));
        var fresh = store.Create(new MetricDescriptor("fresh_total", "", MetricType.Counter));
        Assert.Equal(0, fresh.Get());
        fresh.Inc(1);
        // The old value writes into the unlinked file's pages, which nothing reads any more; it neither crashes nor leaks in.
        old.Inc(100);
        Assert.Equal(1, Assert.Single(store.Collect(new MetricDescriptor("fresh_total", "", MetricType.Counter))).Value);
        Assert.Equal(103, old.Get());
    }

    [Fact]
    public void Shutting_down_twice_or_a_never_opened_configuration_does_nothing()
    {
        using var store = new Store();
        store.Shutdown();
        store.Create(new MetricDescriptor("twice_total", "", MetricType.Counter)).Inc(1);
        store.Shutdown();
        store.Shutdown();
        Assert.Equal(1, Assert.Single(store.Collect(new MetricDescriptor("twice_total", "", MetricType.Counter))).Value);
    }

    [Fact]
    public void The_mapping_outlives_shutdown_while_a_value_can_reach_it_and_is_released_once_none_can()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Skip("Reads /proc/self/maps; the mapping is released the same way elsewhere but kept mapped on Windows and macOS.");
        }

        using var store = new Store();
        SharedMemoryBackend? kept = store.Create(new MetricDescriptor("kept_total", "", MetricType.Counter));
        var dropped = CreateAndForget(store);
        store.Shutdown();
        Collect();
        Assert.True(Mapped(store.FilePath), "the mapping went away while a value still pointed into it");
        kept.Inc(1);
        Assert.Equal(1, kept.Get());
        Assert.False(dropped.IsAlive);
        GC.KeepAlive(kept);

        kept = null;
        Collect();
        Assert.False(Mapped(store.FilePath), "the mapping of a shut-down store stayed after every value was collected");

        static void Collect()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference CreateAndForget(Store store) => new(store.Create(new MetricDescriptor("dropped_total", "", MetricType.Counter)));

    private static bool Mapped(string path) => File.ReadLines("/proc/self/maps").Any(l => l.Contains(path, StringComparison.Ordinal));
}
