using System.Globalization;

namespace Metrics.SharedMemory.Tests;

public sealed class GaugeModeTests
{
    /// <summary>
    /// Process A writes 3, then process B writes 7 (Sum increments, the others set); then one of them is killed.
    /// Expected values are sorted; for the per-process modes there is one series per process.
    /// </summary>
    public static TheoryData<GaugeAggregation, bool, double[], double[]> Modes() => new()
    {
        { GaugeAggregation.Sum, true, [10], [10] },
        { GaugeAggregation.LiveSum, true, [10], [3] },
        { GaugeAggregation.Max, true, [7], [7] },
        { GaugeAggregation.LiveMax, true, [7], [3] },
        { GaugeAggregation.Min, false, [3], [3] },
        { GaugeAggregation.LiveMin, false, [3], [7] },
        { GaugeAggregation.MostRecent, true, [7], [7] },
        { GaugeAggregation.LiveMostRecent, true, [7], [3] },
        { GaugeAggregation.PerProcess, true, [3, 7], [3, 7] },
        { GaugeAggregation.LivePerProcess, true, [3, 7], [3] },
    };

    [Theory]
    [MemberData(nameof(Modes))]
    public void Dead_processes_count_as_the_mode_says(GaugeAggregation mode, bool killSecond, double[] bothAlive, double[] afterKill)
    {
        using var store = new Store();
        using var first = Worker.Start(store.FilePath, "gauge", mode.ToString(), "3");
        first.WaitForLine("ready");
        using var second = Worker.Start(store.FilePath, "gauge", mode.ToString(), "7");
        second.WaitForLine("ready");
        var family = Store.Gauge(mode);
        Assert.Equal(bothAlive, Values(store, family));

        (killSecond ? second : first).Kill();
        Assert.Equal(afterKill, Values(store, family));
        if (mode == GaugeAggregation.PerProcess)
        {
            Assert.Equal(
                new[] { first.Pid, second.Pid }.Select(p => p.ToString(CultureInfo.InvariantCulture)).Order(),
                store.Collect(family).Select(v => Assert.Single(v.LabelValues)).Order());
        }

        var survivor = killSecond ? first : second;
        survivor.CloseInput();
        survivor.WaitForExit();
        Assert.Equal(GaugeAggregatorLiveOnly(mode) ? [] : afterKill, Values(store, family));
    }

    [Fact]
    public void A_process_sees_the_aggregate_through_Get()
    {
        using var store = new Store();
        using var first = Worker.Start(store.FilePath, "gauge", "LiveSum", "3");
        first.WaitForLine("ready");
        using var second = Worker.Start(store.FilePath, "gauge", "LiveSum", "7");
        Assert.Equal("10", second.WaitForLine("ready"));
        var gauge = store.Create(Store.Gauge(GaugeAggregation.LiveSum));
        gauge.Set(5);
        Assert.Equal(15, gauge.Get());
        second.Kill();
        Assert.Equal(8, gauge.Get());
        first.CloseInput();
        first.WaitForExit();
    }

    [Fact]
    public void Liveness_is_the_slot_lock_not_the_pid_so_a_recycled_pid_does_not_revive()
    {
        using var store = new Store();
        var family = Store.Gauge(GaugeAggregation.LiveSum);
        using var alive = Worker.Start(store.FilePath, "gauge", "LiveSum", "3");
        alive.WaitForLine("ready");
        using var dead = Worker.Start(store.FilePath, "gauge", "LiveSum", "7");
        dead.WaitForLine("ready");
        var deadSlot = store.Mapped.Slots().Single(s => s.Pid == dead.Pid).Slot;
        dead.Kill();

        // The dead process's pid now belongs to a live process (the worker, then this test process).
        store.Mapped.OverwriteSlotPid(deadSlot, alive.Pid);
        Assert.Equal([3.0], Values(store, family));
        store.Mapped.OverwriteSlotPid(deadSlot, Environment.ProcessId);
        Assert.Equal([3.0], Values(store, family));
        Assert.Contains(store.Mapped.Slots(), s => s.Slot == deadSlot && !s.Live);
        alive.CloseInput();
        alive.WaitForExit();
    }

    [Fact]
    public void A_process_with_a_recycled_pid_starts_its_per_process_series_at_zero()
    {
        using var store = new Store();
        var family = Store.Gauge(GaugeAggregation.LivePerProcess);
        string recycled;
        using (var dead = Worker.Start(store.FilePath, "gauge", "LivePerProcess", "+7"))
        {
            dead.WaitForLine("ready");
            recycled = dead.Pid.ToString(CultureInfo.InvariantCulture);
            dead.Kill();
        }

        Assert.Empty(store.Collect(family));
        // The host labels the series with the pid; a new process given the same pid must not inherit the old value.
        using var reborn = Worker.Start(store.FilePath, "gauge", "LivePerProcess", "+2", recycled);
        Assert.Equal("2", reborn.WaitForLine("ready"));
        var series = Assert.Single(store.Collect(family));
        Assert.Equal([recycled], series.LabelValues);
        Assert.Equal(2, series.Value);
        reborn.CloseInput();
        reborn.WaitForExit();
        Assert.Empty(store.Collect(family));
    }

    private static bool GaugeAggregatorLiveOnly(GaugeAggregation mode) => mode.ToString().StartsWith("Live", StringComparison.Ordinal);

    private static double[] Values(Store store, MetricDescriptor family) => [.. store.Collect(family).Select(v => v.Value).Order()];
}
