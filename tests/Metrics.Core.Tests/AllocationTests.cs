namespace Metrics.Tests;

/// <summary>Update paths on an existing series allocate nothing.</summary>
public class AllocationTests
{
    private const int Iterations = 10_000;

    [Fact]
    public void Updates_on_existing_series_allocate_nothing()
    {
        var registry = new MetricRegistry();
        var counter = new Counter("c_total", "C.", registry: registry);
        var labelled = new Counter("l_total", "L.", ["method", "code"], registry: registry);
        var child = labelled.Labels("GET", "200");
        var gauge = new Gauge("g", "G.", registry: registry);
        var histogram = new Histogram("h", "H.", registry: registry);
        var summary = new Summary("s", "S.", registry: registry);
        var method = "GET";
        var code = "200";

        AssertNoAllocation("Counter.Inc", () => counter.Inc());
        AssertNoAllocation("cached child Inc", () => child.Inc());
        AssertNoAllocation("Labels lookup + Inc", () => labelled.Labels(method, code).Inc());
        AssertNoAllocation("Gauge.Set", () => gauge.Set(3.5));
        AssertNoAllocation("Gauge.Inc/Dec", () =>
        {
            gauge.Inc();
            gauge.Dec();
        });
        AssertNoAllocation("Histogram.Observe", () => histogram.Observe(0.3));
        AssertNoAllocation("Summary.Observe", () => summary.Observe(12));

        // A cached exemplar: recording it reuses the value's exemplar slot.
        var exemplar = Exemplar.Of("trace_id", "0af7651916cd43dd8448eb211c80319c");
        AssertNoAllocation("Counter.Inc with exemplar", () => counter.Inc(1, exemplar));
        AssertNoAllocation("Histogram.Observe with exemplar", () => histogram.Observe(0.3, exemplar));

        // An exemplar built per observation from the request's own ids: one or two labels live in the struct.
        var traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        var spanId = "00f067aa0ba902b7";
        AssertNoAllocation("Counter.Inc with an exemplar built per call", () => counter.Inc(1, Exemplar.Of("trace_id", traceId)));
        AssertNoAllocation("Histogram.Observe with an exemplar built per call", () => histogram.Observe(0.3, Exemplar.Of("trace_id", traceId)));
        AssertNoAllocation("Histogram.Observe with a two-label exemplar built per call", () => histogram.Observe(0.3, Exemplar.Of("trace_id", traceId, "span_id", spanId)));
        AssertNoAllocation("Histogram.Observe with an exemplar built from tuples per call", () => histogram.Observe(0.3, new Exemplar(("trace_id", traceId), ("span_id", spanId))));
        AssertNoAllocation("Histogram timer", () =>
        {
            using (histogram.NewTimer())
            {
            }
        });
        AssertNoAllocation("Gauge.TrackInProgress", () =>
        {
            using (gauge.TrackInProgress())
            {
            }
        });
    }

    [Fact]
    public void State_changes_on_existing_series_allocate_nothing()
    {
        var registry = new MetricRegistry();
        var flags = new StateSet("flags", "F.", ["a", "b"], ["env"], registry: registry);
        var state = new EnumMetric("phase", "P.", ["queued", "running", "done"], registry: registry);
        var info = new Info("build", "B.", ["version"], registry: registry);
        var env = "prod";
        info.Set("1.0");

        AssertNoAllocation("StateSet.Set with a Labels lookup", () => flags.Labels(env).Set("b", true));
        AssertNoAllocation("EnumMetric.State", () => state.State("running"));
        AssertNoAllocation("Info.Set of an existing label set", () => info.Set("1.0"));
    }

    [Fact]
    public void The_allocation_check_fails_a_path_that_allocates()
    {
        var failure = Assert.ThrowsAny<Exception>(() => Allocations.AssertNone("new object", () => GC.KeepAlive(new object())));
        Assert.Contains("new object allocated in every one of 5 rounds of 10000 calls", failure.Message, StringComparison.Ordinal);
    }

    private static void AssertNoAllocation(string what, Action action) => Allocations.AssertNone(what, action, Iterations);
}
