using static Metrics.Conformance.CheckContext;

namespace Metrics.Conformance;

/// <summary>Checks of the optional exemplar storage (<see cref="BackendCapabilities.Exemplars"/>).</summary>
internal static class ExemplarChecks
{
    private const double Older = 1_700_000_010.5;
    private const double Latest = 1_700_000_030.25;
    private const double Between = 1_700_000_020;
    private const double FromChild = 1_700_000_040;
    private const double LateButOld = 1_700_000_035;

    public static void ExemplarsKeepTheLatest(CheckContext ctx)
    {
        var counterFamily = Counter(ctx.Name("ex_total"), ["k"]);
        var histogramFamily = Histogram(ctx.Name("ex_h"), [1, double.PositiveInfinity], ["route"]);
        List<SeriesSpec> series =
        [
            new("a counter", counterFamily.WithLabelValues(["a,b"]), null),
            new("a histogram bucket", histogramFamily.WithLabelValues(["/"]), HistogramBucket.ForUpperBound(1)),
        ];
        var untouched = new SeriesSpec("a counter series given no exemplar", counterFamily.WithLabelValues(["other"]), null);
        var sum = new SeriesSpec("the histogram's sum", histogramFamily.WithLabelValues(["/"]), HistogramBucket.Sum);
        var values = series.Select(s => ctx.Create(s.Descriptor, s.Part)).ToList();
        ctx.Create(untouched.Descriptor).Inc(1);
        ctx.Create(sum.Descriptor, sum.Part).Inc(0.5);
        foreach (var value in values)
        {
            value.Inc(1);
            ctx.Step = "RecordExemplar";
            value.RecordExemplar(new RecordedExemplar(Exemplar.Of("trace_id", "older"), 1, Older));
            value.RecordExemplar(new RecordedExemplar(Exemplar.Of("trace_id", "latest", "span_id", "s1"), 0.5, Latest));
            value.RecordExemplar(new RecordedExemplar(Exemplar.Of("trace_id", "between"), 2, Between));
        }

        ctx.Backend.Flush();
        var read = Read(ctx, [.. series, untouched, sum], values);
        for (var i = 0; i < series.Count; i++)
        {
            Expect(ctx, read[i], series[i].What, "latest", 0.5, Latest,
                "Exemplars recorded at (in order) t+10.5 s, t+30.25 s and t+20 s: the latest by timestamp must win, not the last one written. Compare RecordedExemplar.TimestampUnixSeconds before replacing.");
            ctx.Expect(read[i]!.Value.Labels == Exemplar.Of("trace_id", "latest", "span_id", "s1"),
                $"The exemplar read for {series[i].What} has labels {read[i]!.Value.Labels}, expected {{trace_id=\"latest\",span_id=\"s1\"}}: every label name and value must be stored, in order.");
        }

        ctx.Expect(read[2] is null, $"{untouched.What} reads the exemplar {read[2]}: exemplars must be kept per value, never shared between series.");
        ctx.Expect(read[3] is null, $"{sum.What} reads the exemplar {read[3]}: exemplars must be kept per value, never shared between the parts of a series.");

        if (!ctx.Backend.Capabilities.HasFlag(BackendCapabilities.SharedAcrossProcesses))
        {
            return;
        }

        // Shared: another process sees this one's exemplar, and this one sees the other's, latest by timestamp still.
        var child = ChildProcess.Start(ctx, series, threads: 1, increments: 1, exemplar: ("from_child", FromChild));
        var output = child.WaitForExit(ctx);
        for (var i = 0; i < series.Count; i++)
        {
            var seen = output.ReadText("exemplar", i);
            ctx.Expect(seen == "latest",
                $"A child process that selected the backend with the same configuration read the exemplar of {series[i].What} through Collect as '{seen ?? "(none)"}', expected 'latest' recorded and flushed by this process. Exemplars must be stored in the shared store and returned by Collect in CollectedValue.Exemplar.");
        }

        foreach (var value in values)
        {
            value.RecordExemplar(new RecordedExemplar(Exemplar.Of("trace_id", "late_but_old"), 1, LateButOld));
        }

        ctx.Backend.Flush();
        read = Read(ctx, series, values);
        for (var i = 0; i < series.Count; i++)
        {
            Expect(ctx, read[i], series[i].What + " after a child process recorded a later exemplar and this one an earlier", "from_child", 1, FromChild,
                "The latest exemplar by timestamp must win across processes: compare timestamps in the store, not only in this process.");
        }
    }

    private static void Expect(CheckContext ctx, RecordedExemplar? exemplar, string what, string trace, double value, double timestamp, string likelyBug)
    {
        ctx.Expect(exemplar is not null, $"No exemplar was read for {what}. {likelyBug}");
        var actual = exemplar!.Value;
        ctx.Expect(actual.Labels.Count > 0 && actual.Labels[0] == ("trace_id", trace),
            $"The exemplar read for {what} is {actual.Labels} at {F(actual.TimestampUnixSeconds)}, expected trace_id=\"{trace}\" at {F(timestamp)}. {likelyBug}");
        ctx.ExpectExact(value, actual.Value, $"The exemplar value of {what}", "Store the exemplar's value with double precision.");
        ctx.ExpectExact(timestamp, actual.TimestampUnixSeconds, $"The exemplar timestamp of {what}", "Store the exemplar's timestamp with double precision.");
    }

    /// <summary>Each series' exemplar: from Collect for a backend that collects in batch, else from GetExemplar.</summary>
    internal static RecordedExemplar?[] Read(CheckContext ctx, List<SeriesSpec> series, List<IMetricBackend> values)
    {
        ctx.Step = "Collect";
        var families = SharedChecks.Families(series);
        var collected = ctx.Backend.Collect(families);
        var result = new RecordedExemplar?[series.Count];
        for (var i = 0; i < series.Count; i++)
        {
            if (collected is null)
            {
                ctx.Step = "GetExemplar";
                result[i] = i < values.Count ? values[i].GetExemplar() : ctx.Create(series[i].Descriptor, series[i].Part).GetExemplar();
            }
            else
            {
                result[i] = Find(collected[SharedChecks.IndexOf(families, series[i])], series[i]);
            }
        }

        return result;
    }

    internal static RecordedExemplar? Find(IReadOnlyList<CollectedValue> values, SeriesSpec spec)
    {
        foreach (var value in values)
        {
            if (value.LabelValues.SequenceEqual(spec.Descriptor.LabelValues, StringComparer.Ordinal) && Nullable.Equals(value.Bucket, spec.Part))
            {
                return value.Exemplar;
            }
        }

        return null;
    }
}
