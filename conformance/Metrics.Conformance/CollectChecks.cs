using static Metrics.Conformance.CheckContext;

namespace Metrics.Conformance;

/// <summary>Contract 1.1: the asynchronous collection, its cancellation, and the schema rule of backends that record definitions.</summary>
internal static class CollectChecks
{
    private const string Partial =
        "A cancelled collection must throw OperationCanceledException (or, when it finished anyway, return the complete result): " +
        "never return what was read so far, or nothing, as if the store held only that. The likely bug is a catch of OperationCanceledException that returns the partial lists.";

    public static void CollectAsyncHonoursCancellation(CheckContext ctx)
    {
        var counter = Counter(ctx.Name("collect_async_total"), ["l"]);
        var histogram = Histogram(ctx.Name("collect_async_seconds"), [1, double.PositiveInfinity], ["l"]);
        var created = new List<(MetricDescriptor Family, string Label, HistogramBucket? Part, double Value)>
        {
            (counter, "a", null, 3),
            (counter, "b", null, 0.5),
            (histogram, "a", HistogramBucket.ForUpperBound(1), 1),
            (histogram, "a", HistogramBucket.Sum, 0.25),
        };
        foreach (var (family, label, part, value) in created)
        {
            ctx.Create(family.WithLabelValues([label]), part).Inc(value);
        }

        ctx.Backend.Flush();
        MetricDescriptor[] families = [counter, histogram];

        ctx.Step = "CollectAsync with a token that is never cancelled";
        var reference = ctx.Backend.CollectAsync(families, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        ctx.Step = "Collect (the blocking form the host offers)";
        var blocking = ctx.Backend.Collect(families);
        ctx.Expect(Same(reference, blocking),
            $"CollectAsync awaited returned {Show(reference)}, but the same collection through the blocking Collect returned {Show(blocking)}: both must read the same store. " +
            "A backend implementing both the 1.0 Collect and the 1.1 CollectAsync must implement only one of them.");
        if (reference is not null)
        {
            ctx.Expect(reference.Length == families.Length, $"CollectAsync returned {reference.Length} lists for {families.Length} families; return one per family, in order.");
            foreach (var (family, label, part, value) in created)
            {
                var index = Array.IndexOf(families, family);
                var found = reference[index].Where(v => v.Bucket == part && v.LabelValues.SequenceEqual([label])).Select(v => v.Value).ToList();
                ctx.Expect(found.Count == 1 && found[0] == value,
                    $"CollectAsync returned, for {family.Name}{{l=\"{label}\"}} part {part?.ToString() ?? "(none)"}, {(found.Count == 0 ? "nothing" : string.Join(", ", found.Select(F)))}; expected {F(value)}. " +
                    "A batch collection returns every stored value of each family exactly once, with its exact value.");
            }
        }

        using (var cancelled = new CancellationTokenSource())
        {
            cancelled.Cancel();
            ctx.Step = "CollectAsync with a token cancelled before the call";
            ExpectCancelledOrComplete(ctx, () => ctx.Backend.CollectAsync(families, cancelled.Token), reference, "a token cancelled before the call");
        }

        using (var cancelling = new CancellationTokenSource())
        {
            ctx.Step = "CollectAsync with a token cancelled while it runs";
            var running = ctx.Backend.CollectAsync(families, cancelling.Token);
            cancelling.Cancel();
            // A collection waiting for a reply must give up when its token is signalled: a hang here ends in the check's time limit, naming this step.
            ctx.Step = "waiting for CollectAsync to end after its CancellationToken was cancelled (a wait that ignores the token never ends)";
            ExpectCancelledOrComplete(ctx, () => running, reference, "a token cancelled while it ran");
        }
    }

    public static void SchemaConflictsNeverMixValues(CheckContext ctx)
    {
        // This process's definitions; a child process declares each family differently on the same configuration.
        var byLabels = Counter(ctx.Name("schema_labels_total"), ["l"]);
        var byType = Counter(ctx.Name("schema_type"), ["l"]);
        var byBuckets = Histogram(ctx.Name("schema_buckets_seconds"), [1, double.PositiveInfinity], ["l"]);
        var ours = new List<(string What, MetricDescriptor Family, MetricDescriptor Series, HistogramBucket? Part, double Value)>
        {
            ("a counter with labels [l]", byLabels, byLabels.WithLabelValues(["a"]), null, 5),
            ("a counter", byType, byType.WithLabelValues(["a"]), null, 7),
            ("a histogram with buckets [1, +Inf], bucket le=1", byBuckets, byBuckets.WithLabelValues(["a"]), HistogramBucket.ForUpperBound(1), 1),
            ("a histogram with buckets [1, +Inf], sum", byBuckets, byBuckets.WithLabelValues(["a"]), HistogramBucket.Sum, 0.5),
        };
        var values = ours.Select(o => ctx.Create(o.Series, o.Part)).ToList();
        for (var i = 0; i < ours.Count; i++)
        {
            values[i].Inc(ours[i].Value);
        }

        ctx.Backend.Flush();
        var theirs = new List<SeriesSpec>
        {
            new("the same name declared with labels [l, m]", new MetricDescriptor(byLabels.Name, byLabels.Help, MetricType.Counter, ["l", "m"], ["a", "x"]), null),
            new("the same name declared as a gauge", new MetricDescriptor(byType.Name, byType.Help, MetricType.Gauge, ["l"], ["a"]), null),
            new("the same name declared with buckets [2, +Inf], bucket le=2", new MetricDescriptor(byBuckets.Name, byBuckets.Help, MetricType.Histogram, ["l"], ["a"], [2, double.PositiveInfinity]), HistogramBucket.ForUpperBound(2)),
            new("the same name declared with buckets [2, +Inf], sum", new MetricDescriptor(byBuckets.Name, byBuckets.Help, MetricType.Histogram, ["l"], ["a"], [2, double.PositiveInfinity]), HistogramBucket.Sum),
        };
        var child = ChildProcess.Start(ctx, theirs, threads: 1, increments: 1);
        child.WaitForExit(ctx);

        const string Mixed =
            "The backend declares RecordsSchema, so values written under another definition of the same name (other labels, another type, other buckets) " +
            "must be kept apart and left out of this process's collection (counted in its statistics, named once in its log), never added to this definition's values. " +
            "Key stored values by the family's definition too (MetricDescriptor.Definition or DefinitionId), and filter collection by it.";
        for (var i = 0; i < ours.Count; i++)
        {
            ctx.ExpectExact(ours[i].Value, ctx.Get(values[i], ours[i].What), $"{ours[i].What}, after another process wrote {theirs[i].What}, read through Get", Mixed);
        }

        MetricDescriptor[] families = [byLabels, byType, byBuckets];
        ctx.Step = "CollectAsync after another process declared every family differently";
        IReadOnlyList<CollectedValue>[]? collected;
        try
        {
            collected = ctx.Backend.CollectAsync(families).AsTask().GetAwaiter().GetResult();
        }
        catch (Exception ex) when (ex is not ConformanceException)
        {
            throw ctx.Fail($"Collecting this process's families threw {ex.GetType().FullName}: {ex.Message}, after another process declared them differently. " +
                "Processes that disagree on a definition must never fail each other's scrapes: leave the other definition's values out and count the conflict.", ex);
        }

        ctx.Expect(collected is not null && collected.Length == families.Length,
            "CollectAsync returned no batch (or not one list per family), but the backend declares RecordsSchema, which only a shared store that collects in batch can honour.");
        for (var f = 0; f < families.Length; f++)
        {
            var family = families[f];
            var expected = ours.Where(o => o.Family == family).ToList();
            var extra = collected![f].Where(v => !expected.Any(o => o.Part == v.Bucket && v.LabelValues.SequenceEqual(o.Series.LabelValues))).ToList();
            ctx.Expect(extra.Count == 0,
                $"Collecting {family.Name} as {family.Definition} returned {string.Join("; ", extra.Select(v => $"{Literal(v.LabelValues)} part {v.Bucket?.ToString() ?? "(none)"} = {F(v.Value)}"))}, " +
                $"written by another process under another definition. {Mixed}");
            foreach (var o in expected)
            {
                var found = collected[f].Where(v => v.Bucket == o.Part && v.LabelValues.SequenceEqual(o.Series.LabelValues)).Select(v => v.Value).ToList();
                ctx.Expect(found.Count == 1 && found[0] == o.Value,
                    $"Collecting {o.What} after another process wrote {theirs[ours.IndexOf(o)].What} returned {(found.Count == 0 ? "nothing" : string.Join(", ", found.Select(F)))}, expected {F(o.Value)}. {Mixed}");
            }
        }
    }

    private static void ExpectCancelledOrComplete(CheckContext ctx, Func<ValueTask<IReadOnlyList<CollectedValue>[]?>> collect, IReadOnlyList<CollectedValue>[]? reference, string how)
    {
        IReadOnlyList<CollectedValue>[]? result;
        try
        {
            result = collect().AsTask().GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
            return;
        }
        catch (Exception ex) when (ex is not ConformanceException)
        {
            throw ctx.Fail($"CollectAsync with {how} threw {ex.GetType().FullName}: {ex.Message}. Cancellation must end the collection with OperationCanceledException " +
                "(or let it finish), so the host can tell an abandoned scrape from a failed store.", ex);
        }

        ctx.Expect(Same(reference, result), $"CollectAsync with {how} returned {Show(result)} instead of throwing OperationCanceledException; without cancellation it returned {Show(reference)}. {Partial}");
    }

    private static bool Same(IReadOnlyList<CollectedValue>[]? a, IReadOnlyList<CollectedValue>[]? b)
    {
        if (a is null || b is null)
        {
            return a is null && b is null;
        }

        return a.Length == b.Length && a.Zip(b).All(pair => Canonical(pair.First).SequenceEqual(Canonical(pair.Second), StringComparer.Ordinal));
    }

    private static IEnumerable<string> Canonical(IReadOnlyList<CollectedValue> values) =>
        values.Select(v => $"{Literal(v.LabelValues)} {v.Bucket?.ToString() ?? "-"} {BitConverter.DoubleToInt64Bits(v.Value)}").Order(StringComparer.Ordinal);

    private static string Show(IReadOnlyList<CollectedValue>[]? result) =>
        result is null ? "null (no batch collection)" : $"{result.Length} lists holding {result.Sum(r => r.Count)} values";
}
