using static Metrics.Conformance.CheckContext;

namespace Metrics.Conformance;

/// <summary>Checks that distinct metrics, label sets, buckets and configurations never share a stored value.</summary>
internal static class IsolationChecks
{
    private const string LabelBug =
        "The store's key encodes the label values ambiguously (for example joined with a separator without escaping, truncated, or compared case-insensitively). " +
        "Encode each value unambiguously: length-prefixed, escaped, or hashed over an unambiguous encoding.";

    public static IReadOnlyList<string[]> TrickyLabelPairs { get; } =
    [
        ["a,b", "c"], ["a", "b,c"],
        ["a|b", "c"], ["a", "b|c"],
        ["a:b", "c"], ["a", "b:c"],
        ["a;b", "c"], ["a", "b;c"],
        ["a\0b", "c"], ["a", "b\0c"],
        ["a=b", "c"], ["a", "b=c"],
        ["1,y=2", "3"], ["1", "2,y=3"],
        ["a\"b", "c"], ["a", "b\"c"],
        ["a\nb", "c"], ["a", "b\nc"],
        ["a/b", "c"], ["a", "b/c"],
        ["a_b", "c"], ["a", "b_c"],
        ["a.b", "c"], ["a", "b.c"],
        ["a b", "c"], ["a", "b c"],
        ["a\\", "b"], ["a", "\\b"],
        ["a\\,b", "c"], ["a\\", "b,c"],
        ["", "ab"], ["ab", ""], ["a", "b"], ["", ""],
        ["A", "b"], ["é", "x"], ["e\u0301", "x"],
        ["ü", "日本"], ["ü日", "本"], ["\U0001F600", "x"],
        [new string('x', 300) + "1", ""], [new string('x', 300) + "2", ""],
        ["{\"a\":1}", "[]"], ["null", ""],
    ];

    public static void DistinctMetricsDoNotShareValues(CheckContext ctx)
    {
        var n = ctx.Name("m");
        var histogram = Histogram(n + "_h", [1, double.PositiveInfinity]);
        var summary = Summary(n + "_s");
        var values = new List<(string, IMetricBackend)>
        {
            (n, ctx.Create(Counter(n))),
            (n + "_total", ctx.Create(Counter(n + "_total"))),
            (n + "_h (histogram sum)", ctx.Create(histogram, HistogramBucket.Sum)),
            (n + "_h (histogram bucket le=1)", ctx.Create(histogram, HistogramBucket.ForUpperBound(1))),
            (n + "_h_sum (a counter)", ctx.Create(Counter(n + "_h_sum"))),
            (n + "_h_bucket (a counter)", ctx.Create(Counter(n + "_h_bucket"))),
            (n + "_s (summary count)", ctx.Create(summary, HistogramBucket.Count)),
            (n + "_s_count (a counter)", ctx.Create(Counter(n + "_s_count"))),
            (n + "_x_y{l=\"z\"}", ctx.Create(Counter(n + "_x_y", ["l"], ["z"]))),
            (n + "_x{l=\"y_z\"}", ctx.Create(Counter(n + "_x", ["l"], ["y_z"]))),
            (n + "_x_y_z", ctx.Create(Counter(n + "_x_y_z"))),
            (n + "_x{l=\"y\",m=\"z\"}", ctx.Create(Counter(n + "_x", ["l", "m"], ["y", "z"]))),
            (n + ":a", ctx.Create(Counter(n + ":a"))),
            (n + "{l=\"a\"} of a gauge", ctx.Create(Gauge(n + "_g", ["l"], ["a"]))),
            (n + "_G (upper case)", ctx.Create(Gauge(n + "_G", ["l"], ["a"]))),
        };
        ExpectIsolated(ctx, values, "Distinct metric names", "Key the value by the full metric name, kept apart from the label values and the histogram part.");
    }

    public static void DistinctLabelSetsDoNotShareValues(CheckContext ctx)
    {
        var pairs = ctx.Name("pairs");
        var values = new List<(string, IMetricBackend)>();
        foreach (var pair in TrickyLabelPairs)
        {
            values.Add(($"{pairs}{Literal(pair)}", ctx.Create(Counter(pairs, ["x", "y"], pair))));
        }

        var singles = ctx.Name("single");
        var triples = ctx.Name("triple");
        var more = new List<(string, IMetricBackend)>();
        foreach (var v in new[] { string.Empty, " ", "a", "a\0", "\0", "\n", "\"", "\\", "\r\n", "\t", "=", "," })
        {
            more.Add(($"{singles}[{Literal(v)}]", ctx.Create(Gauge(singles, ["x"], [v]))));
        }

        foreach (var triple in new[] { new[] { "a", "", "" }, ["", "a", ""], ["", "", "a"], ["a,", "", ""], ["a", ",", ""], ["", "", ""] })
        {
            more.Add(($"{triples}{Literal(triple)}", ctx.Create(Counter(triples, ["x", "y", "z"], triple))));
        }

        ExpectIsolated(ctx, values, "Distinct label sets of one metric", LabelBug);
        ExpectIsolated(ctx, more, "Distinct label sets of one metric", LabelBug);
    }

    public static void DistinctBucketsDoNotShareValues(CheckContext ctx)
    {
        double[] bounds = [-1, 0, 1e-300, 0.1, 0.10000000000000002, 0.5, 1, 1.0000000000000002, 2.5, 1e300, double.PositiveInfinity];
        var histogram = Histogram(ctx.Name("buckets"), bounds, ["path"], ["/"]);
        var other = histogram.WithLabelValues(["/other"]);
        var summary = Summary(ctx.Name("summary"), ["path"], ["/"]);
        var values = new List<(string, IMetricBackend)>();
        foreach (var bound in bounds)
        {
            var bucket = HistogramBucket.ForUpperBound(bound);
            values.Add(($"{histogram} bucket le={bucket}", ctx.Create(histogram, bucket)));
        }

        values.Add(($"{histogram} sum", ctx.Create(histogram, HistogramBucket.Sum)));
        values.Add(($"{other} bucket le=1", ctx.Create(other, HistogramBucket.ForUpperBound(1))));
        values.Add(($"{other} sum", ctx.Create(other, HistogramBucket.Sum)));
        values.Add(($"{summary} count", ctx.Create(summary, HistogramBucket.Count)));
        values.Add(($"{summary} sum", ctx.Create(summary, HistogramBucket.Sum)));
        ExpectIsolated(ctx, values, "The parts of histogram and summary series",
            "Each part of a histogram or summary series (every bucket bound, the sum, the count) is its own value: key it by the HistogramBucket too " +
            "(its ToString() is canonical and round-trips; bounds must not be formatted lossily).");
    }

    public static void DescriptorEdgeCasesAreAccepted(CheckContext ctx)
    {
        var longName = ctx.Name("n") + "_" + new string('a', 200);
        var manyNames = Enumerable.Range(0, 30).Select(i => $"label_{i}_{new string('l', 20)}").ToArray();
        var manyValues = Enumerable.Range(0, 30).Select(i => i % 3 == 0 ? string.Empty : $"v{i},\"=\n").ToArray();
        var values = new List<(string, IMetricBackend)>
        {
            ("a 200-character name", ctx.Create(Counter(longName))),
            ("a name with colons", ctx.Create(Counter(ctx.Name("a:b:c")))),
            ("30 labels", ctx.Create(Counter(ctx.Name("many"), manyNames, manyValues))),
            ("a 10,000-character label value", ctx.Create(Counter(ctx.Name("long_value"), ["v"], [new string('v', 10_000)]))),
            ("help with quotes, backslashes, newlines and Unicode", ctx.Create(new MetricDescriptor(ctx.Name("help"), "Help \"quoted\" \\ with\nnewline, ü 日本 😀.", MetricType.Gauge))),
            ("empty help", ctx.Create(new MetricDescriptor(ctx.Name("nohelp"), string.Empty, MetricType.Counter))),
            ("a histogram with one bucket (+Inf)", ctx.Create(Histogram(ctx.Name("one_bucket"), [double.PositiveInfinity]), HistogramBucket.ForUpperBound(double.PositiveInfinity))),
            ("a histogram with 100 buckets", ctx.Create(Histogram(ctx.Name("hundred"), [.. Enumerable.Range(1, 99).Select(i => i / 7.0), double.PositiveInfinity]), HistogramBucket.ForUpperBound(50 / 7.0))),
        };
        ExpectIsolated(ctx, values, "Unusual but valid descriptors", "The backend must accept any valid descriptor and key it by name, label values and part.");
    }

    public static void InProcessValuesAreSeparate(CheckContext ctx)
    {
        var metric = Counter(ctx.Name("separate_total"), ["l"], ["a"]);
        var one = ctx.Create(metric);
        var two = ctx.Create(metric);
        one.Inc(3);
        ctx.ExpectExact(0, ctx.Get(two, "a second value of the same series"), "After Inc(3) on one value, a second value created for the same series by an in-process backend",
            "Two registries of one process each create their own value: a backend that does not declare BackendCapabilities.SharedAcrossProcesses must not key values by series. " +
            "If the store is meant to be shared, declare SharedAcrossProcesses (and pass the multi-process checks).");
        two.Inc(4);
        ctx.ExpectExact(3, ctx.Get(one, "the first value"), "After Inc(4) on the second value, the first value", "Each created value must keep its own state.");
    }

    public static void InitializeKeepsStoreForSameConfiguration(CheckContext ctx)
    {
        var config = ctx.NewConfig();
        var first = ctx.Open(config);
        var metric = Counter(ctx.Name("init_a"));
        var a = ctx.Create(metric, backend: first);
        a.Inc(5);
        first.Flush();

        var copy = new BackendConfig(config.Keys.Select(k => new KeyValuePair<string, string?>(k, config[k])).ToArray(), config.Path);
        var second = ctx.Open(copy);
        var b = ctx.Create(Counter(ctx.Name("init_b")), backend: second);
        b.Inc(1);
        var c = ctx.Create(Gauge(ctx.Name("init_c")), backend: first);
        c.Set(2);
        second.Flush();

        const string Reset = "The store was reset: Initialize (or set-up done when a value is created) ran again for the same configuration and discarded stored values. " +
            "Initialize runs once per type and configuration; creating a value must never reset the store.";
        var read = ctx.Get(a, "the first value");
        ctx.ExpectExact(5, read, "A value holding 5, read after other values were created with an equal configuration", read == 0 ? Reset : "Creating other values changed this one.");
        if (first.Capabilities.HasFlag(BackendCapabilities.SharedAcrossProcesses))
        {
            var again = ctx.Create(metric, backend: second);
            var shared = ctx.Get(again, "a second value of the same series");
            ctx.ExpectExact(5, shared, "The same series created again with an equal configuration (a shared store)",
                shared == 0 ? Reset + " Or values of equal configurations are not looked up in one store." : "A shared backend gives every creator of a series the same value.");
        }
    }

    public static void DistinctDefinitionsDoNotShareValues(CheckContext ctx)
    {
        var name = ctx.Name("definitions");
        var gauge = Gauge(name, ["l"], ["v"]);
        MetricDescriptor Variant(string? unit = null, string? exposedAs = null, GaugeAggregation aggregation = GaugeAggregation.Sum) =>
            new(name, gauge.Help, MetricType.Gauge, gauge.LabelNames, gauge.LabelValues, gaugeAggregation: aggregation) { Unit = unit, ExposedAs = exposedAs };
        var values = new List<(string, IMetricBackend)>
        {
            ($"{gauge} without a unit", ctx.Create(Variant())),
            ($"{gauge} with unit seconds", ctx.Create(Variant("seconds"))),
            ($"{gauge} with unit bytes", ctx.Create(Variant("bytes"))),
            ($"{gauge} exposed as info", ctx.Create(Variant(exposedAs: "info"))),
            ($"{gauge} exposed as stateset:a,b", ctx.Create(Variant(exposedAs: "stateset:a,b"))),
            ($"{gauge} exposed as stateset:a,b,c", ctx.Create(Variant(exposedAs: "stateset:a,b,c"))),
            ($"{gauge} with aggregation MostRecent", ctx.Create(Variant(aggregation: GaugeAggregation.MostRecent))),
        };
        ExpectIsolated(ctx, values, "Definitions of one metric name that differ (unit, exposed type, states, aggregation)",
            "Processes that declare a name with another definition must not share its values: key every value by its family's MetricDescriptor.DefinitionId " +
            "(or Definition) as well as the name, labels and part.");
    }

    public static void DistinctConfigurationsDoNotShareValues(CheckContext ctx)
    {
        var one = ctx.NewConfig();
        var two = ctx.NewConfig();
        ctx.Expect(!one.Equals(two),
            $"CreateConfig returned equal configurations on two calls ({one}). For a shared backend each call must return a configuration with its own isolated store " +
            "(a unique key prefix, a fresh file), or the checks see each other's data.");
        var first = ctx.Open(one);
        var second = ctx.Open(two);
        var metric = Counter(ctx.Name("per_config"), ["l"], ["v"]);
        var x = ctx.Create(metric, backend: first);
        var y = ctx.Create(metric, backend: second);
        x.Inc(1);
        y.Inc(2);
        first.Flush();
        second.Flush();
        var readX = ctx.Get(x, "the value of the first configuration");
        var readY = ctx.Get(y, "the value of the second configuration");
        ctx.Expect(readX == 1 && readY == 2,
            $"The same series created with two different configurations ({one} and {two}) read {F(readX)} and {F(readY)}, expected 1 and 2: the configurations share one store. " +
            "Initialize runs once per configuration: keep each configuration's store (key prefix, file) apart, and do not keep one static store for the whole type.");
    }

    /// <summary>
    /// Stores never share storage across configurations or across a shutdown. Needs no setting the backend must accept:
    /// a store started over by <c>ShutdownAsync</c> and <c>Initialize</c> is a second store of the same configuration, and
    /// catches a process-global store keyed by nothing (slots that restart, a table cleared for everyone).
    /// </summary>
    public static void StoresOfConfigurationsStayApart(CheckContext ctx)
    {
        const string Global =
            "The backend keeps its values in process-global state that is not kept per store: ShutdownAsync or Initialize started it over while values " +
            "created earlier still point into it (an index, offset or slot that is handed out again). Keep each initialized store's memory to itself, " +
            "and never reuse storage that live values may still update.";
        var config = ctx.NewConfig();
        var backend = ctx.Open(config);
        // A shutdown first, so a store whose slots restart at shutdown hands out the same slots to the old and the new values.
        ctx.Step = "ShutdownAsync";
        backend.ShutdownAsync().AsTask().GetAwaiter().GetResult();
        var old = LifetimeValues(ctx, backend, "before");
        backend.Flush();
        ctx.Step = "ShutdownAsync";
        backend.ShutdownAsync().AsTask().GetAwaiter().GetResult();
        var fresh = LifetimeValues(ctx, backend, "after");
        ctx.Step = "updating values created before ShutdownAsync (allowed; the updates may be lost)";
        for (var i = 0; i < old.Count; i++)
        {
            old[i].Value.Inc(Math.Pow(2, i));
        }

        backend.Flush();
        for (var i = 0; i < fresh.Count; i++)
        {
            var read = ctx.Get(fresh[i].Value, fresh[i].What);
            if (read != 0)
            {
                var partners = Decompose(read, old.Count).Select(j => old[j].What).ToList();
                throw ctx.Fail(
                    $"{fresh[i].What}, a new value created after ShutdownAsync and a new Initialize, read {F(read)} instead of 0 after values created before the shutdown were updated" +
                    (partners.Count > 0 ? $" (the increments made to {string.Join(" and ", partners)})" : string.Empty) + $": the old and the new store share storage. {Global}");
            }
        }

        for (var i = 0; i < fresh.Count; i++)
        {
            fresh[i].Value.Inc(Math.Pow(2, i));
        }

        backend.Flush();
        for (var i = 0; i < fresh.Count; i++)
        {
            ctx.ExpectExact(Math.Pow(2, i), ctx.Get(fresh[i].Value, fresh[i].What), $"{fresh[i].What} after its own Inc({F(Math.Pow(2, i))}), with values of the old store updated too", Global);
        }

        // Two configurations, when the author's CreateConfig gives distinct ones (every shared backend must; an in-process one may).
        var one = ctx.NewConfig();
        var two = ctx.NewConfig();
        if (one.Equals(two))
        {
            return;
        }

        var first = ctx.Open(one);
        var second = ctx.Open(two);
        var metric = Counter(ctx.Name("two_stores_total"));
        var x = ctx.Create(metric, backend: first);
        var y = ctx.Create(metric, backend: second);
        x.Inc(1);
        y.Inc(2);
        first.Flush();
        second.Flush();
        ctx.ExpectExact(1, ctx.Get(x, "the value of the first configuration"), $"The same series under two configurations ({one} and {two}), the first after Inc(1) and the second after Inc(2)",
            "Two configurations must never share a value: key each configuration's store apart.");
        ctx.Step = "ShutdownAsync of the second configuration";
        second.ShutdownAsync().AsTask().GetAwaiter().GetResult();
        var z = ctx.Create(Counter(ctx.Name("two_stores_other_total")), backend: second);
        z.Inc(4);
        second.Flush();
        ctx.ExpectExact(1, ctx.Get(x, "the value of the first configuration"), "A value of the first configuration after the second was shut down and initialized again",
            "Shutting down or initializing one configuration must leave every other configuration's store alone. " + Global);
        x.Inc(8);
        first.Flush();
        ctx.ExpectExact(9, ctx.Get(x, "the value of the first configuration"), "After Inc(8) on the first configuration's value, once the second was shut down",
            "Shutting down one configuration must not release another's store. " + Global);
    }

    private static List<(string What, IMetricBackend Value)> LifetimeValues(CheckContext ctx, ConfiguredBackend backend, string when)
    {
        var counter = Counter(ctx.Name("lifetime_" + when + "_total"), ["l"]);
        var histogram = Histogram(ctx.Name("lifetime_" + when + "_seconds"), [1, double.PositiveInfinity]);
        var gauge = Gauge(ctx.Name("lifetime_" + when));
        var values = new List<(string, IMetricBackend)>();
        foreach (var label in new[] { "a", "b", "c" })
        {
            var series = counter.WithLabelValues([label]);
            values.Add(($"{series} (created {when} shutdown)", ctx.Create(series, backend: backend)));
        }

        values.Add(($"{histogram} bucket le=1 (created {when} shutdown)", ctx.Create(histogram, HistogramBucket.ForUpperBound(1), backend)));
        values.Add(($"{histogram} sum (created {when} shutdown)", ctx.Create(histogram, HistogramBucket.Sum, backend)));
        values.Add(($"{gauge} (created {when} shutdown)", ctx.Create(gauge, backend: backend)));
        return values;
    }

    /// <summary>Adds a distinct power of two to each value, then reads each: a sum reveals exactly which values share storage.</summary>
    internal static void ExpectIsolated(CheckContext ctx, IReadOnlyList<(string What, IMetricBackend Value)> values, string subject, string likelyBug)
    {
        for (var start = 0; start < values.Count; start += 50)
        {
            var batch = values.Skip(start).Take(50).ToList();
            for (var i = 0; i < batch.Count; i++)
            {
                ctx.Step = $"Inc on {batch[i].What}";
                batch[i].Value.Inc(Math.Pow(2, i));
            }

            ctx.Backend.Flush();
            for (var i = 0; i < batch.Count; i++)
            {
                var read = ctx.Get(batch[i].Value, batch[i].What);
                var own = Math.Pow(2, i);
                if (read == own)
                {
                    continue;
                }

                var partners = Decompose(read, batch.Count).Where(j => j != i).Select(j => batch[j].What).ToList();
                var detail = partners.Count > 0 && Decompose(read, batch.Count).Contains(i)
                    ? $" That is its own {F(own)} plus the increments made to {string.Join(" and ", partners)}: these share one stored value."
                    : partners.Count > 0
                        ? $" That is the increments made to {string.Join(" and ", partners)}, without its own: it reads another series' value."
                        : string.Empty;
                throw ctx.Fail($"{subject} must never share a value. {batch[i].What} read {F(read)}, expected {F(own)} (its own increments).{detail} {likelyBug}");
            }
        }
    }

    private static List<int> Decompose(double value, int count)
    {
        var result = new List<int>();
        if (!(value > 0) || value != Math.Floor(value) || value >= Math.Pow(2, count))
        {
            return result;
        }

        var bits = (long)value;
        for (var j = 0; j < count; j++)
        {
            if ((bits & (1L << j)) != 0)
            {
                result.Add(j);
            }
        }

        return result;
    }
}
