using static Metrics.Conformance.CheckContext;

namespace Metrics.Conformance;

/// <summary>Checks of the optional contract members that manage whole series: removal and the series count.</summary>
internal static class SeriesChecks
{
    public static void RemovedSeriesIsHiddenUntilUpdatedAndRestartsAtZero(CheckContext ctx)
    {
        var counter = Counter(ctx.Name("removed_total"), ["k"]);
        var histogram = Histogram(ctx.Name("removed_h"), [1, double.PositiveInfinity], ["k"]);
        var a = ctx.Create(counter.WithLabelValues(["a"]));
        var b = ctx.Create(counter.WithLabelValues(["b"]));
        var bucket = ctx.Create(histogram.WithLabelValues(["a"]), HistogramBucket.ForUpperBound(1));
        var sum = ctx.Create(histogram.WithLabelValues(["a"]), HistogramBucket.Sum);
        a.Inc(5);
        b.Inc(3);
        bucket.Inc(1);
        sum.Inc(0.5);
        ctx.Backend.Flush();

        ctx.Step = "RemoveSeries";
        ctx.Backend.RemoveSeries(counter.WithLabelValues(["a"]));
        ctx.Backend.RemoveSeries(histogram.WithLabelValues(["a"]));
        ctx.Backend.Flush();
        var collected = Collect(ctx, counter, histogram);
        ctx.Expect(!collected[0].Any(v => v.LabelValues.SequenceEqual(["a"])),
            "After RemoveSeries and Flush, Collect still returned the removed counter series: the removal must reach the store, not only this process's values.");
        ctx.Expect(collected[0].Any(v => v.LabelValues.SequenceEqual(["b"]) && v.Value == 3),
            "RemoveSeries of one label set also removed (or changed) another series of the family: remove only the series named by the descriptor's label values.");
        ctx.Expect(collected[1].Count == 0,
            "After RemoveSeries of a histogram series, Collect still returned some of its parts: every part (buckets, sum, count, native buckets) belongs to the series.");

        ctx.Step = "update after removal";
        a.Inc(2);
        bucket.Inc(1);
        ctx.Backend.Flush();
        collected = Collect(ctx, counter, histogram);
        var back = collected[0].Where(v => v.LabelValues.SequenceEqual(["a"])).ToList();
        ctx.Expect(back.Count == 1, $"After the removed counter series was updated again through a value created before the removal, Collect returned it {back.Count} time(s); expected once: an update brings a removed series back.");
        ctx.ExpectExact(2, back[0].Value, "The removed counter series, read by Collect after Inc(2) on a value created before the removal",
            "A removal must reset the stored value: the series comes back from 0, not with the updates made before it.");
        var bucketBack = collected[1].Where(v => v.Bucket is { Part: HistogramPart.Bucket }).ToList();
        ctx.Expect(bucketBack.Count == 1 && bucketBack[0].Value == 1,
            $"After the removed histogram series observed again, Collect returned its bucket as [{string.Join(", ", bucketBack.Select(v => F(v.Value)))}]; expected one bucket reading 1.");

        ctx.Step = "RemoveSeries of the whole family";
        ctx.Backend.RemoveSeries(counter);
        ctx.Backend.Flush();
        collected = Collect(ctx, counter, histogram);
        ctx.Expect(collected[0].Count == 0,
            $"RemoveSeries with a labelled family's descriptor and no label values must remove every series of the family; Collect still returned {collected[0].Count}.");
    }

    public static void RemovedSeriesLosesItsExemplar(CheckContext ctx)
    {
        const double Before = 1_700_000_050;
        const double ChildBefore = 1_700_000_060;
        // Earlier than every exemplar recorded before the removal: a store that still compares with those would refuse it.
        const double After = 1_700_000_001;
        var counter = Counter(ctx.Name("rm_ex_total"), ["k"]);
        var histogram = Histogram(ctx.Name("rm_ex_h"), [1, double.PositiveInfinity], ["k"]);
        List<SeriesSpec> series =
        [
            new("a counter series", counter.WithLabelValues(["a"]), null),
            new("a histogram bucket", histogram.WithLabelValues(["a"]), HistogramBucket.ForUpperBound(1)),
        ];
        var values = series.Select(s => ctx.Create(s.Descriptor, s.Part)).ToList();
        var sum = ctx.Create(histogram.WithLabelValues(["a"]), HistogramBucket.Sum);
        foreach (var value in values)
        {
            value.Inc(1);
            ctx.Step = "RecordExemplar";
            value.RecordExemplar(new RecordedExemplar(Exemplar.Of("trace_id", "before"), 1, Before));
        }

        sum.Inc(0.5);
        ctx.Backend.Flush();
        var shared = ctx.Backend.Capabilities.HasFlag(BackendCapabilities.SharedAcrossProcesses);
        if (shared)
        {
            // An exemplar another process stored must go with the removal too.
            ChildProcess.Start(ctx, series, threads: 1, increments: 1, exemplar: ("child_before", ChildBefore)).WaitForExit(ctx);
        }

        ctx.Step = "RemoveSeries";
        ctx.Backend.RemoveSeries(counter.WithLabelValues(["a"]));
        ctx.Backend.RemoveSeries(histogram.WithLabelValues(["a"]));
        ctx.Backend.Flush();

        ctx.Step = "update after removal";
        foreach (var value in values)
        {
            value.Inc(1);
        }

        sum.Inc(0.5);
        ctx.Backend.Flush();
        var read = ExemplarChecks.Read(ctx, series, values);
        for (var i = 0; i < series.Count; i++)
        {
            ctx.Expect(read[i] is null,
                $"After RemoveSeries and an update without an exemplar, {series[i].What} reads the exemplar {read[i]?.Labels} recorded before the removal. A removal resets the series entirely: delete (or reset) each value's stored exemplar with its value, in the store and in this process's buffers.");
        }

        if (shared)
        {
            // The child reads before it records its own: it must see no exemplar either.
            var output = ChildProcess.Start(ctx, series, threads: 1, increments: 1, exemplar: ("after", After)).WaitForExit(ctx);
            for (var i = 0; i < series.Count; i++)
            {
                var seen = output.ReadText("exemplar", i);
                ctx.Expect(seen is null,
                    $"A child process read the exemplar of {series[i].What} as '{seen}' after this process removed the series and updated it again without an exemplar: the removal must delete exemplars from the shared store.");
            }
        }
        else
        {
            foreach (var value in values)
            {
                value.RecordExemplar(new RecordedExemplar(Exemplar.Of("trace_id", "after"), 1, After));
            }
        }

        ctx.Backend.Flush();
        read = ExemplarChecks.Read(ctx, series, values);
        for (var i = 0; i < series.Count; i++)
        {
            var trace = read[i] is { } e && e.Labels.Count > 0 ? e.Labels[0].Value : "(none)";
            ctx.Expect(trace == "after",
                $"After the removal, an exemplar stamped {F(After)} (earlier than those recorded before the removal) was recorded for {series[i].What}, but it reads {trace}: a removed series' exemplar starts over, so the first one recorded after the removal is kept whatever its timestamp.");
        }
    }

    public static void SeriesCountCountsLabelSetsOfEveryPart(CheckContext ctx)
    {
        var histogram = Histogram(ctx.Name("counted_h"), [1, 2, double.PositiveInfinity], ["k"]);
        var other = Counter(ctx.Name("counted_total"), ["k"]);
        foreach (var label in new[] { "a", "b", "c" })
        {
            foreach (var part in new[] { HistogramBucket.ForUpperBound(1), HistogramBucket.ForUpperBound(2), HistogramBucket.ForUpperBound(double.PositiveInfinity), HistogramBucket.Sum })
            {
                ctx.Create(histogram.WithLabelValues([label]), part).Inc(1);
            }
        }

        ctx.Create(other.WithLabelValues(["x"])).Inc(1);
        ctx.Backend.Flush();
        _ = ctx.Backend.Collect([histogram, other]);
        ctx.Step = "SeriesCount";
        var count = ctx.Backend.SeriesCount(histogram);
        ctx.Expect(count == 3,
            $"SeriesCount of a histogram family with 3 label sets (4 parts each) returned {count}, expected 3: count distinct label sets of this family only, not parts or other families' series.");

        if ((ctx.Backend.Capabilities & BackendCapabilities.RemovesSeries) != 0)
        {
            ctx.Backend.RemoveSeries(histogram.WithLabelValues(["b"]));
            ctx.Backend.Flush();
            _ = ctx.Backend.Collect([histogram, other]);
            count = ctx.Backend.SeriesCount(histogram);
            ctx.Expect(count == 2, $"After RemoveSeries of one of 3 label sets, a flush and a collection, SeriesCount returned {count}, expected 2: removed series do not count.");
        }
    }

    private static IReadOnlyList<CollectedValue>[] Collect(CheckContext ctx, params MetricDescriptor[] families)
    {
        var collected = ctx.Backend.Collect(families);
        ctx.Expect(collected is not null && collected.Length == families.Length,
            "Collect returned null or the wrong number of lists: a backend that removes series from a store must collect that store in batch.");
        return collected!;
    }
}
