using static Metrics.Conformance.CheckContext;

namespace Metrics.Conformance;

/// <summary>Contract 1.1 checks: shutdown and re-initialization, and the observe-histogram member.</summary>
internal static class LifecycleChecks
{
    public static void ShutdownThenInitializeGivesAWorkingStore(CheckContext ctx)
    {
        var config = ctx.NewConfig();
        var backend = ctx.Open(config);
        var metric = Counter(ctx.Name("restart_total"));
        var before = ctx.Create(metric, backend: backend);
        before.Inc(5);
        ctx.Step = "ShutdownAsync";
        backend.ShutdownAsync().AsTask().GetAwaiter().GetResult();

        ctx.Step = "creating a value after ShutdownAsync (the host initializes the configuration again)";
        var after = ctx.Create(metric, backend: backend);
        var shared = backend.Capabilities.HasFlag(BackendCapabilities.SharedAcrossProcesses);
        var start = shared ? 5 : 0;
        ctx.ExpectExact(start, ctx.Get(after, "the value created after shutdown"),
            shared ? "The same series created after ShutdownAsync and a new Initialize (a shared store)" : "A new value created after ShutdownAsync",
            shared ? "ShutdownAsync must flush what was updated before it, and a new Initialize must open the same store again." : "A new value reads 0.");
        after.Inc(2);
        backend.Flush();
        ctx.ExpectExact(start + 2, ctx.Get(after, "the value created after shutdown"), "After Inc(2) on the value created after shutdown",
            "After ShutdownAsync, Initialize with the same configuration must give a working store: state released by ShutdownAsync must be created again by Initialize.");

        ctx.Step = "updating a value created before ShutdownAsync";
        before.Inc(1);
        _ = before.Get();
    }

    public static void ObserveHistogramAddsBucketAndSum(CheckContext ctx)
    {
        var family = Histogram(ctx.Name("observe_h"), [1, double.PositiveInfinity], ["route"]);
        var series = family.WithLabelValues(["/"]);
        var bucket = ctx.Create(series, HistogramBucket.ForUpperBound(1));
        var other = ctx.Create(series, HistogramBucket.ForUpperBound(double.PositiveInfinity));
        var sum = ctx.Create(series, HistogramBucket.Sum);
        sum.ObserveHistogram(bucket, 0.25);
        sum.ObserveHistogram(bucket, 0.5);
        sum.ObserveHistogram(other, 4);
        ctx.ExpectExact(2, ctx.Get(bucket, "the bucket le=1"), "After two observations into bucket le=1", "ObserveHistogram must add 1 to the bucket it is given.");
        ctx.ExpectExact(1, ctx.Get(other, "the bucket le=+Inf"), "After one observation into bucket le=+Inf", "ObserveHistogram must add 1 to the bucket it is given, not to a fixed one.");
        ctx.ExpectExact(4.75, ctx.Get(sum, "the sum"), "The sum after observing 0.25, 0.5 and 4", "ObserveHistogram must add the observed value to the sum it is called on.");

        var collected = ctx.Backend.Collect([family]);
        if (collected is not null)
        {
            var values = collected[0];
            double Part(HistogramBucket part) => values.Where(v => v.Bucket == part && v.LabelValues.SequenceEqual(["/"])).Sum(v => v.Value);
            ctx.ExpectExact(2, Part(HistogramBucket.ForUpperBound(1)), "Collect of bucket le=1", "Collect must include observations made through ObserveHistogram.");
            ctx.ExpectExact(4.75, Part(HistogramBucket.Sum), "Collect of the sum", "Collect must include the sum recorded together with the bucket.");
        }
    }
}
