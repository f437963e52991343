namespace Metrics.Tests;

public class InfoStateSetUnitTests
{
    private static MetricRegistry Registry()
    {
        var registry = new MetricRegistry();
        var build = new Info("build_info", "Build of this service.", ["version", "commit"], registry: registry);
        build.Set("1.4.2", "9f1c2e7");
        var flags = new StateSet("feature_flags", "Feature flags in force.", ["dark_mode", "beta_search"], ["env"], registry: registry);
        flags.Labels("prod").Set("beta_search", true);
        var state = new EnumMetric("service_state", "Lifecycle state.", ["starting", "running", "stopping"], registry: registry);
        state.State("running");
        var latency = new Histogram("request_duration_seconds", "Latency.", buckets: [0.5], registry: registry, unit: "seconds");
        latency.Observe(0.25);
        var sent = new Counter("sent_bytes_total", "Bytes sent.", registry: registry, unit: "bytes");
        sent.Inc(10);
        return registry;
    }

    [Fact]
    public void OpenMetrics_shows_info_stateset_and_units()
    {
        var text = Registry().Render(ExpositionFormat.OpenMetrics);
        Assert.Contains("# HELP build Build of this service.\n# TYPE build info\nbuild_info{version=\"1.4.2\",commit=\"9f1c2e7\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains(
            "# TYPE feature_flags stateset\nfeature_flags{env=\"prod\",feature_flags=\"dark_mode\"} 0\nfeature_flags{env=\"prod\",feature_flags=\"beta_search\"} 1\n",
            text,
            StringComparison.Ordinal);
        Assert.Contains(
            "# TYPE service_state stateset\nservice_state{service_state=\"starting\"} 0\nservice_state{service_state=\"running\"} 1\nservice_state{service_state=\"stopping\"} 0\n",
            text,
            StringComparison.Ordinal);
        Assert.Contains("# TYPE request_duration_seconds histogram\n# UNIT request_duration_seconds seconds\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE sent_bytes counter\n# UNIT sent_bytes bytes\nsent_bytes_total 10\n", text, StringComparison.Ordinal);
        Assert.EndsWith("# EOF\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Text_format_shows_info_and_state_sets_as_gauges_and_no_unit()
    {
        var text = Registry().Render(ExpositionFormat.PrometheusText);
        Assert.Contains("# HELP build_info Build of this service.\n# TYPE build_info gauge\nbuild_info{version=\"1.4.2\",commit=\"9f1c2e7\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE feature_flags gauge\nfeature_flags{env=\"prod\",feature_flags=\"dark_mode\"} 0\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE service_state gauge\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("# UNIT", text, StringComparison.Ordinal);
        Assert.DoesNotContain("stateset", text, StringComparison.Ordinal);
        var (exit, output) = Promtool.Check(text);
        Assert.True(exit == 0, $"promtool check metrics failed ({exit}):\n{output}\n--- exposition ---\n{text}");
    }

    [Fact]
    public async Task Protobuf_shows_info_and_state_sets_as_gauges()
    {
        using var stream = new MemoryStream();
        await Registry().WriteAsync(stream, ExpositionFormat.Protobuf, TestContext.Current.CancellationToken);
        var families = ProtoMessage.ReadDelimited(stream.ToArray()).ToDictionary(f => f.String(1));
        var build = families["build_info"];
        Assert.Equal(1UL, build.Varint(3));
        var series = Assert.Single(build.Messages(4));
        Assert.Equal(["version=1.4.2", "commit=9f1c2e7"], series.Messages(1).Select(p => p.String(1) + "=" + p.String(2)));
        Assert.Equal(1, series.Message(2)!.Double(1));

        var flags = families["feature_flags"];
        Assert.Equal(1UL, flags.Varint(3));
        Assert.Equal(
            ["env=prod,feature_flags=dark_mode:0", "env=prod,feature_flags=beta_search:1"],
            flags.Messages(4).Select(m => string.Join(',', m.Messages(1).Select(p => p.String(1) + "=" + p.String(2))) + ":" + m.Message(2)!.Double(1)));
    }

    [Fact]
    public void Enum_State_sets_one_state_and_clears_the_others()
    {
        var registry = new MetricRegistry();
        var state = new EnumMetric("job_phase", "Phase.", ["queued", "running", "done"], ["job"], registry: registry);
        var job = state.Labels("a");
        Assert.Null(job.CurrentState);
        Assert.Contains("job_phase{job=\"a\",job_phase=\"queued\"} 0\n", registry.Render(), StringComparison.Ordinal);
        job.State("running");
        Assert.Equal("running", job.CurrentState);
        job.State("done");
        Assert.Equal("done", job.CurrentState);
        var text = registry.Render();
        Assert.Contains("job_phase{job=\"a\",job_phase=\"queued\"} 0\njob_phase{job=\"a\",job_phase=\"running\"} 0\njob_phase{job=\"a\",job_phase=\"done\"} 1\n", text, StringComparison.Ordinal);
        var error = Assert.Throws<ArgumentException>(() => job.State("failed"));
        Assert.Contains("'failed' is not a state of 'job_phase'", error.Message, StringComparison.Ordinal);
        Assert.Contains("[queued, running, done]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StateSet_keeps_each_state_on_its_own()
    {
        var registry = new MetricRegistry();
        var flags = new StateSet("flags", "Flags.", ["a", "b"], registry: registry);
        flags.Set("a", true);
        flags.Set("b", true);
        Assert.True(flags.Get("a"));
        flags.Set("a", false);
        Assert.False(flags.Get("a"));
        Assert.True(flags.Get("b"));
        Assert.Equal(["a", "b"], flags.States);
    }

    [Fact]
    public void Info_name_with_or_without_suffix_is_the_same_family()
    {
        var registry = new MetricRegistry("app");
        var info = new Info("runtime", "Runtime.", ["version"], registry: registry);
        info.Set("10.0");
        var again = new Info("runtime_info", "Runtime.", ["version"], registry: registry);
        Assert.Equal("app_runtime_info", again.Name);
        Assert.Same(info.Set("10.0"), again.Set("10.0"));
        var text = registry.Render(ExpositionFormat.OpenMetrics);
        Assert.Contains("# TYPE app_runtime info\napp_runtime_info{version=\"10.0\"} 1\n", text, StringComparison.Ordinal);
        var error = Assert.Throws<ArgumentException>(() => new Gauge("runtime", "Clash.", registry: registry));
        Assert.Contains("an info", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("request_duration", "seconds", "'request_duration_seconds'")]
    [InlineData("seconds", "seconds", "'seconds_seconds'")]
    [InlineData("latency_seconds_total", "milliseconds", "'latency_seconds_milliseconds_total'")]
    public void A_name_without_its_unit_suffix_is_refused_with_the_fix(string name, string unit, string fix)
    {
        var registry = new MetricRegistry();
        var error = Assert.Throws<ArgumentException>(() => name.EndsWith("_total", StringComparison.Ordinal)
            ? new Counter(name, "Help.", registry: registry, unit: unit)
            : new Gauge(name, "Help.", registry: registry, unit: unit));
        Assert.Contains($"Metric '{name}' has unit '{unit}'", error.Message, StringComparison.Ordinal);
        Assert.Contains(fix, error.Message, StringComparison.Ordinal);
        Assert.Equal("unit", error.ParamName);
        Assert.Empty(registry.MetricNames);
    }

    [Theory]
    [InlineData("")]
    [InlineData("sec onds")]
    [InlineData("_seconds")]
    [InlineData("m/s")]
    public void A_malformed_unit_is_refused(string unit)
    {
        var error = Assert.Throws<ArgumentException>(() => new Gauge("x", "Help.", registry: new MetricRegistry(), unit: unit));
        Assert.Contains($"Unit '{unit}'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Counter_unit_goes_before_total_and_the_name_may_leave_total_out()
    {
        var registry = new MetricRegistry();
        new Counter("cpu_seconds", "CPU.", registry: registry, unit: "seconds").Inc(2);
        var text = registry.Render(ExpositionFormat.OpenMetrics);
        Assert.Contains("# TYPE cpu_seconds counter\n# UNIT cpu_seconds seconds\ncpu_seconds_total 2\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_redeclaration_with_another_unit_is_refused_naming_both()
    {
        var registry = new MetricRegistry();
        _ = new Gauge("queue_bytes", "Queue.", registry: registry, unit: "bytes");
        new Gauge("queue_bytes", "Queue.", registry: registry, unit: "bytes").Set(5);
        Assert.Equal(5, new Gauge("queue_bytes", "Queue.", registry: registry, unit: "bytes").Value);
        var error = Assert.Throws<ArgumentException>(() => new Gauge("queue_bytes", "Queue.", registry: registry));
        Assert.Contains("unit bytes vs none", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unit_and_exposed_type_are_part_of_the_definition()
    {
        var plain = new MetricDescriptor("x_seconds", "", MetricType.Gauge, ["a"]);
        var withUnit = new MetricDescriptor("x_seconds", "", MetricType.Gauge, ["a"]) { Unit = "seconds" };
        var info = new MetricDescriptor("x_seconds", "", MetricType.Gauge, ["a"]) { ExposedAs = "info" };
        Assert.Equal("gauge;labels=a;aggregation=Sum", plain.Definition);
        Assert.Equal("gauge;labels=a;aggregation=Sum;unit=seconds", withUnit.Definition);
        Assert.Equal("gauge;labels=a;aggregation=Sum;exposed=info", info.Definition);
        Assert.Equal(3, new[] { plain.DefinitionId, withUnit.DefinitionId, info.DefinitionId }.Distinct().Count());
        var series = withUnit.WithLabelValues(["v"]);
        Assert.Equal("seconds", series.Unit);
        Assert.Equal(withUnit.DefinitionId, series.DefinitionId);
        Assert.Throws<ArgumentException>(() => new MetricDescriptor("x", "", MetricType.Gauge) { Unit = "a;b" });
    }

    [Fact]
    public void A_state_set_definition_holds_its_states_unambiguously()
    {
        var registry = new MetricRegistry();
        var one = new StateSet("s_one", "S.", ["a,b", "c"], registry: registry);
        var two = new StateSet("s_two", "S.", ["a", "b,c"], registry: registry);
        Assert.Equal(@"gauge;labels=s_one;aggregation=MostRecent;exposed=stateset:a\,b,c", one.Family.Descriptor.Definition);
        Assert.Equal(@"gauge;labels=s_two;aggregation=MostRecent;exposed=stateset:a,b\,c", two.Family.Descriptor.Definition);
    }

    [Fact]
    public void State_set_declarations_are_checked()
    {
        var registry = new MetricRegistry();
        Assert.Contains("declares no states", Assert.Throws<ArgumentException>(() => new StateSet("s", "S.", [], registry: registry)).Message, StringComparison.Ordinal);
        Assert.Contains("State 'a' appears twice", Assert.Throws<ArgumentException>(() => new EnumMetric("s", "S.", ["a", "a"], registry: registry)).Message, StringComparison.Ordinal);
        Assert.Contains("label holding the state", Assert.Throws<ArgumentException>(() => new StateSet("s", "S.", ["a"], ["s"], registry: registry)).Message, StringComparison.Ordinal);
        Assert.Contains("Label name 'a:b'", Assert.Throws<ArgumentException>(() => new StateSet("a:b", "S.", ["a"], registry: registry)).Message, StringComparison.Ordinal);
        Assert.Contains("unpaired", Assert.Throws<ArgumentException>(() => new StateSet("s", "S.", ["\uD800"], registry: registry)).Message, StringComparison.Ordinal);
        var flags = new StateSet("flags", "S.", ["on"], registry: registry);
        Assert.Throws<ArgumentException>(() => new StateSet("flags", "S.", ["on", "off"], registry: registry));
        Assert.Contains("states [on] vs [on, off]", Assert.Throws<ArgumentException>(() => new StateSet("flags", "S.", ["on", "off"], registry: registry)).Message, StringComparison.Ordinal);
        Assert.Contains("'x' is not a state of 'flags'", Assert.Throws<ArgumentException>(() => flags.Set("x", true)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Collectors_yield_every_type()
    {
        var registry = new MetricRegistry("app");
        registry.Register(new EveryTypeCollector());
        var text = registry.Render(ExpositionFormat.OpenMetrics);
        Assert.Equal(
            """
            # HELP app_wait_seconds Waits.
            # TYPE app_wait_seconds histogram
            # UNIT app_wait_seconds seconds
            app_wait_seconds_bucket{queue="q",le="0.5"} 1
            app_wait_seconds_bucket{queue="q",le="+Inf"} 3
            app_wait_seconds_sum{queue="q"} 7.5
            app_wait_seconds_count{queue="q"} 3
            # HELP app_sizes Sizes.
            # TYPE app_sizes summary
            app_sizes_sum 12
            app_sizes_count 4
            # HELP app_host Host facts.
            # TYPE app_host info
            app_host_info{os="linux"} 1
            # HELP app_mode Modes.
            # TYPE app_mode stateset
            app_mode{app_mode="a"} 1
            app_mode{app_mode="b"} 0
            # HELP app_events Events.
            # TYPE app_events counter
            app_events_total 5
            # EOF

            """.ReplaceLineEndings("\n"),
            text);
        var plain = registry.Render(ExpositionFormat.PrometheusText);
        Assert.Contains("# TYPE app_host_info gauge\napp_host_info{os=\"linux\"} 1\n", plain, StringComparison.Ordinal);
        Assert.Contains("# TYPE app_mode gauge\n", plain, StringComparison.Ordinal);
        Assert.Contains("app_wait_seconds_bucket{queue=\"q\",le=\"0.5\"} 1\n", plain, StringComparison.Ordinal);
        var (exit, output) = Promtool.Check(plain);
        Assert.True(exit == 0, $"promtool check metrics failed ({exit}):\n{output}\n--- exposition ---\n{plain}");
    }

    [Fact]
    public async Task Collector_histograms_and_summaries_reach_protobuf()
    {
        var registry = new MetricRegistry();
        registry.Register(new EveryTypeCollector());
        using var stream = new MemoryStream();
        await registry.WriteAsync(stream, ExpositionFormat.Protobuf, TestContext.Current.CancellationToken);
        var families = ProtoMessage.ReadDelimited(stream.ToArray()).ToDictionary(f => f.String(1));
        var histogram = Assert.Single(families["wait_seconds"].Messages(4)).Message(7)!;
        Assert.Equal(4UL, families["wait_seconds"].Varint(3));
        Assert.Equal(3UL, histogram.Varint(1));
        Assert.Equal(7.5, histogram.Double(2));
        var bucket = Assert.Single(histogram.Messages(3));
        Assert.Equal((1UL, 0.5), (bucket.Varint(1), bucket.Double(2)));
        var summary = Assert.Single(families["sizes"].Messages(4)).Message(4)!;
        Assert.Equal((4UL, 12.0), (summary.Varint(1), summary.Double(2)));
        Assert.Equal(1UL, families["host_info"].Varint(3));
        Assert.Equal(2, families["mode"].Messages(4).Count);
        Assert.Equal(0UL, families["events_total"].Varint(3));
    }

    [Fact]
    public void Collector_snapshots_are_checked_when_made()
    {
        Assert.Contains("cumulative", Assert.Throws<ArgumentException>(() => MetricSnapshot.Histogram("h", "H.", [], [1], [new HistogramSample([], [2, 1], 0)])).Message, StringComparison.Ordinal);
        Assert.Contains("2 bucket counts for 3 bounds", Assert.Throws<ArgumentException>(() => MetricSnapshot.Histogram("h", "H.", [], [1, 2], [new HistogramSample([], [1, 2], 0)])).Message, StringComparison.Ordinal);
        Assert.Contains("'le'", Assert.Throws<ArgumentException>(() => MetricSnapshot.Histogram("h", "H.", ["le"], [1], [])).Message, StringComparison.Ordinal);
        Assert.Contains("end with '_bytes'", Assert.Throws<ArgumentException>(() => MetricSnapshot.Summary("sizes", "S.", [], [], unit: "bytes")).Message, StringComparison.Ordinal);
        Assert.Contains("has no states", Assert.Throws<ArgumentException>(() => MetricSnapshot.StateSet("s", "S.", [], [new StateSetSample([], new Dictionary<string, bool>())])).Message, StringComparison.Ordinal);
        Assert.Contains("1 label values for 0", Assert.Throws<ArgumentException>(() => MetricSnapshot.Info("i", "I.", [], [["x"]])).Message, StringComparison.Ordinal);
    }

    private sealed class EveryTypeCollector : ICollector
    {
        public IReadOnlyList<string> MetricNames => ["wait_seconds", "sizes", "host_info", "mode", "events_total"];

        public IEnumerable<MetricSnapshot> Collect()
        {
            yield return MetricSnapshot.Histogram("wait_seconds", "Waits.", ["queue"], [0.5], [new HistogramSample(["q"], [1, 3], 7.5)], unit: "seconds");
            yield return MetricSnapshot.Summary("sizes", "Sizes.", [], [new SummarySample([], 4, 12)]);
            yield return MetricSnapshot.Info("host_info", "Host facts.", ["os"], [["linux"]]);
            yield return MetricSnapshot.StateSet("mode", "Modes.", [], [new StateSetSample([], new Dictionary<string, bool> { ["a"] = true, ["b"] = false })]);
            yield return MetricSnapshot.Counter("events_total", "Events.", 5);
        }
    }
}
