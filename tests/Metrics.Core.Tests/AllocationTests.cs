namespace Metrics.Tests;

/// <summary>
/// The update paths promise zero allocation on the Memory backend: each test warms the path up once (series creation
/// and JIT may allocate), then checks that the calling thread allocated nothing over many calls.
/// </summary>
public class AllocationTests
{
    private const int Calls = 10_000;

    private static readonly MetricRegistry Registry = new(backend: MetricsBackend.Memory);

    private static long AllocatedBy(Action action)
    {
        action();
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < Calls; i++)
        {
            action();
        }

        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    [Fact]
    public void Counter_inc_allocates_nothing()
    {
        var counter = new Counter("alloc_unlabelled_total", "Test.", registry: Registry);
        Assert.Equal(0, AllocatedBy(() => counter.Inc()));
    }

    [Fact]
    public void Cached_child_inc_allocates_nothing()
    {
        var child = new Counter("alloc_child_total", "Test.", ["method", "status"], registry: Registry).Labels("GET", "200");
        Assert.Equal(0, AllocatedBy(() => child.Inc(2)));
    }

    [Fact]
    public void Labels_lookup_of_an_existing_series_allocates_nothing()
    {
        var counter = new Counter("alloc_lookup_total", "Test.", ["method", "status"], registry: Registry);
        Assert.Equal(0, AllocatedBy(() => counter.Labels("GET", "200").Inc()));
        Assert.Equal(Calls + 1, counter.Labels("GET", "200").Value);
    }

    [Fact]
    public void Gauge_updates_allocate_nothing()
    {
        var gauge = new Gauge("alloc_gauge", "Test.", registry: Registry);
        Assert.Equal(0, AllocatedBy(() =>
        {
            gauge.Inc(2);
            gauge.Dec();
            gauge.Set(42);
        }));
    }

    [Fact]
    public void Histogram_observe_allocates_nothing()
    {
        var histogram = new Histogram("alloc_histogram_seconds", "Test.", registry: Registry);
        var value = 0.0;
        Assert.Equal(0, AllocatedBy(() => histogram.Observe(value += 0.01)));
    }

    [Fact]
    public void Summary_observe_allocates_nothing()
    {
        var summary = new Summary("alloc_summary_bytes", "Test.", registry: Registry);
        Assert.Equal(0, AllocatedBy(() => summary.Observe(128)));
    }

    [Fact]
    public void Labels_with_a_null_value_is_rejected_with_the_label_name()
    {
        var counter = new Counter("alloc_null_label_total", "Test.", ["method", "status"], registry: Registry);
        var error = Assert.Throws<ArgumentNullException>(() => counter.Labels("GET", null!));
        Assert.Contains("'status'", error.Message, StringComparison.Ordinal);
    }
}
