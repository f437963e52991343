namespace Metrics.Tests;

public class LabelTests
{
    private readonly MetricRegistry _registry = new();

    [Fact]
    public void Same_label_set_is_the_same_child_however_it_was_reached()
    {
        var counter = new Counter("req_total", "Requests.", ["method", "code"], registry: _registry);
        var a = counter.Labels("GET", "200");
        var b = counter.Labels(("code", "200"), ("method", "GET"));
        var c = counter.Labels(new Dictionary<string, string> { ["method"] = "GET", ["code"] = "200" });
        var d = counter.Labels(("method", "GET")).Labels("200");
        Assert.Same(a, b);
        Assert.Same(a, c);
        Assert.Same(a, d);
        a.Inc();
        d.Inc();
        Assert.Equal(2, counter.Labels("GET", "200").Value);
        Assert.Equal(["GET", "200"], a.LabelValues);
    }

    [Fact]
    public void Partial_child_is_cacheable_and_not_observable()
    {
        var counter = new Counter("req_total", "Requests.", ["method", "code"], registry: _registry);
        var get = counter.Labels(("method", "GET"));
        Assert.False(get.IsObservable);
        Assert.Null(get.LabelValues);
        var ex = Assert.Throws<InvalidOperationException>(() => get.Inc());
        Assert.Contains("'code'", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("'method'", ex.Message, StringComparison.Ordinal);

        get.Labels("200").Inc();
        get.Labels("404").Inc(2);
        Assert.Equal(1, counter.Labels("GET", "200").Value);
        Assert.Equal(2, counter.Labels("GET", "404").Value);
    }

    [Fact]
    public void Metric_with_required_labels_is_not_observable_itself()
    {
        var gauge = new Gauge("g", "G.", ["a"], registry: _registry);
        var histogram = new Histogram("h", "H.", ["a"], registry: _registry);
        var summary = new Summary("s", "S.", ["a"], registry: _registry);
        Assert.Throws<InvalidOperationException>(() => gauge.Set(1));
        Assert.Throws<InvalidOperationException>(() => gauge.TrackInProgress());
        Assert.Throws<InvalidOperationException>(() => histogram.Observe(1));
        Assert.Throws<InvalidOperationException>(() => histogram.NewTimer());
        Assert.Throws<InvalidOperationException>(() => summary.Observe(1));
        Assert.Throws<InvalidOperationException>(() => summary.Count);
    }

    [Fact]
    public void Default_labels_apply_and_can_be_overridden()
    {
        var defaults = new Dictionary<string, string> { ["service"] = "api", ["region"] = "eu" };
        var counter = new Counter("calls_total", "Calls.", ["service", "region", "op"], defaults, _registry);

        counter.Labels("read").Inc();
        counter.Labels(("op", "read")).Inc();
        counter.Labels(("op", "write"), ("region", "us")).Inc();
        counter.Labels("web", "ap", "read").Inc();

        Assert.Equal(2, counter.Labels("api", "eu", "read").Value);
        Assert.Equal(1, counter.Labels("api", "us", "write").Value);
        Assert.Equal(1, counter.Labels("web", "ap", "read").Value);

        var text = _registry.Render();
        Assert.Contains("calls_total{service=\"api\",region=\"eu\",op=\"read\"} 2\n", text, StringComparison.Ordinal);
        Assert.Contains("calls_total{service=\"api\",region=\"us\",op=\"write\"} 1\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Metric_whose_labels_all_have_defaults_is_observable_directly()
    {
        var histogram = new Histogram("lat_seconds", "Latency.", ["route"], new Dictionary<string, string> { ["route"] = "/" }, _registry, [1]);
        histogram.Observe(0.5);
        Assert.Same(histogram, histogram.Labels("/"));
        histogram.Labels("/").Observe(2);
        histogram.Labels("/x").Observe(2);
        var text = _registry.Render();
        Assert.Contains("lat_seconds_count{route=\"/\"} 2\n", text, StringComparison.Ordinal);
        Assert.Contains("lat_seconds_count{route=\"/x\"} 1\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_number_of_values_names_the_expected_labels()
    {
        var counter = new Counter("c_total", "C.", ["a", "b", "c"], new Dictionary<string, string> { ["b"] = "x" }, _registry);
        var ex = Assert.Throws<ArgumentException>(() => counter.Labels("1"));
        Assert.Contains("a, b, c", ex.Message, StringComparison.Ordinal);
        Assert.Contains("a, c", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => counter.Labels("1", "2", "3", "4"));
        Assert.Equal(["1", "x", "3"], counter.Labels("1", "3").LabelValues);
        Assert.Equal(["1", "2", "3"], counter.Labels("1", "2", "3").LabelValues);
    }

    [Fact]
    public void Labels_by_name_replace_given_and_default_values()
    {
        var counter = new Counter("c_total", "C.", ["tenant", "region"], new Dictionary<string, string> { ["region"] = "main" }, _registry);
        var t1 = counter.Labels(("tenant", "t1"));
        Assert.Equal(["t1", "main"], t1.LabelValues);
        Assert.Equal(["t1", "eu"], t1.Labels(("region", "eu")).LabelValues);
        Assert.Equal(["t2", "main"], t1.Labels(("tenant", "t2")).LabelValues);
        Assert.Same(counter.Labels("t2", "main"), t1.Labels(("tenant", "t2")));
    }

    [Fact]
    public void Empty_labels_call_returns_the_same_object()
    {
        var counter = new Counter("c_total", "C.", ["a"], registry: _registry);
        var partial = counter.Labels();
        Assert.Same(counter, partial);
        var child = counter.Labels("x");
        Assert.Same(child, child.Labels());
        Assert.Same(child, child.Labels(new Dictionary<string, string>()));
        var ex = Assert.Throws<ArgumentException>(() => child.Labels("y"));
        Assert.Contains("every label set already", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Lookups_of_existing_children_allocate_nothing_on_every_path()
    {
        var counter = new Counter("c_total", "C.", ["a", "b", "c"], new Dictionary<string, string> { ["b"] = "d" }, _registry);
        var gauge = new Gauge("g", "G.", ["a"], registry: _registry, aggregation: GaugeAggregation.PerProcess);
        var partial = counter.Labels(("a", "1"));
        counter.Labels("1", "3").Inc();
        gauge.Labels("x").Set(1);
        AssertNoAllocation("positional with a default", () => counter.Labels("1", "3").Inc());
        AssertNoAllocation("by name", () => counter.Labels(("a", "1"), ("c", "3")).Inc());
        AssertNoAllocation("completing a partial child", () => partial.Labels("3").Inc());
        AssertNoAllocation("per-process gauge", () => gauge.Labels("x").Set(2));
    }

    private static void AssertNoAllocation(string what, Action action) => Allocations.AssertNone(what, action, 1000);

    [Fact]
    public void Unpaired_surrogates_in_label_values_are_refused()
    {
        var counter = new Counter("c_total", "C.", ["a"], registry: _registry);
        var ex = Assert.Throws<ArgumentException>(() => counter.Labels("a\uD800"));
        Assert.Contains("surrogate", ex.Message, StringComparison.Ordinal);
        counter.Labels("ok \uD83D\uDE00").Inc();
    }

    [Fact]
    public void Unknown_duplicate_and_null_labels_are_refused()
    {
        var counter = new Counter("c_total", "C.", ["a", "b"], registry: _registry);
        var unknown = Assert.Throws<ArgumentException>(() => counter.Labels(("z", "1")));
        Assert.Contains("no label named 'z'", unknown.Message, StringComparison.Ordinal);
        Assert.Contains("[a, b]", unknown.Message, StringComparison.Ordinal);
        var twice = Assert.Throws<ArgumentException>(() => counter.Labels(("a", "1"), ("a", "2")));
        Assert.Contains("named twice", twice.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentNullException>(() => counter.Labels("x", null!));
        Assert.Throws<ArgumentNullException>(() => counter.Labels(("a", null!)));
        Assert.Throws<ArgumentException>(() => new Counter("d_total", "D.", ["a"], new Dictionary<string, string> { ["b"] = "1" }, _registry));
    }

    [Theory]
    [InlineData("")]
    [InlineData("with \"quotes\"")]
    [InlineData("back\\slash")]
    [InlineData("new\nline")]
    [InlineData("日本語 ✓ 😀")]
    [InlineData("a,b=c|d:e")]
    public void Label_values_can_be_any_string(string value)
    {
        var counter = new Counter("c_total", "C.", ["v"], registry: _registry);
        counter.Labels(value).Inc();
        Assert.Equal(1, counter.Labels(value).Value);
        Assert.Equal(value, counter.Labels(value).LabelValues![0]);
    }

    [Fact]
    public void Label_sets_that_join_alike_stay_distinct()
    {
        var counter = new Counter("c_total", "C.", ["x", "y"], registry: _registry);
        counter.Labels("a,b", "c").Inc();
        counter.Labels("a", "b,c").Inc(2);
        counter.Labels("", "ab").Inc(3);
        counter.Labels("ab", "").Inc(4);
        Assert.Equal(1, counter.Labels("a,b", "c").Value);
        Assert.Equal(2, counter.Labels("a", "b,c").Value);
        Assert.Equal(3, counter.Labels("", "ab").Value);
        Assert.Equal(4, counter.Labels("ab", "").Value);
    }

    [Fact]
    public void More_than_eight_labels_work()
    {
        var names = Enumerable.Range(0, 10).Select(i => $"l{i}").ToArray();
        var defaults = new Dictionary<string, string> { ["l9"] = "d" };
        var counter = new Counter("wide_total", "Wide.", names, defaults, _registry);
        var values = Enumerable.Range(0, 9).Select(i => $"v{i}").ToArray();
        counter.Labels(values).Inc();
        Assert.Equal(1, counter.Labels([.. values, "d"]).Value);
    }

    [Theory]
    [InlineData("1abc")]
    [InlineData("a-b")]
    [InlineData("a b")]
    [InlineData("")]
    [InlineData("__reserved")]
    [InlineData("é")]
    public void Invalid_metric_names_are_refused(string name)
    {
        var ex = Assert.Throws<ArgumentException>(() => new Counter(name, "x", registry: _registry));
        Assert.Contains(name, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a:b")]
    [InlineData("_x")]
    [InlineData(":x")]
    [InlineData("A9_")]
    public void Valid_metric_names_are_accepted(string name) => Assert.Equal(name, new Gauge(name, "x", registry: _registry).Name);

    [Theory]
    [InlineData("a:b")]
    [InlineData("1a")]
    [InlineData("__name")]
    [InlineData("a-b")]
    [InlineData("")]
    public void Invalid_label_names_are_refused(string label)
    {
        var ex = Assert.Throws<ArgumentException>(() => new Counter("c_total", "x", [label], registry: _registry));
        Assert.Contains("Label name", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reserved_label_names_per_type_are_refused()
    {
        Assert.Contains("'le'", Assert.Throws<ArgumentException>(() => new Histogram("h", "x", ["le"], registry: _registry)).Message, StringComparison.Ordinal);
        Assert.Contains("'quantile'", Assert.Throws<ArgumentException>(() => new Summary("s", "x", ["quantile"], registry: _registry)).Message, StringComparison.Ordinal);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => new Counter("c", "x", ["a", "a"], registry: _registry)).Message, StringComparison.Ordinal);

        // le and quantile are fine elsewhere.
        _ = new Gauge("g", "x", ["le", "quantile"], registry: _registry);
    }

    [Fact]
    public void Per_process_gauge_adds_a_pid_label_that_cannot_be_set()
    {
        var gauge = new Gauge("workers", "Workers.", ["pool"], registry: _registry, aggregation: GaugeAggregation.PerProcess);
        Assert.Equal(["pool", "pid"], gauge.LabelNames);
        gauge.Labels("a").Set(3);
        Assert.Contains($"workers{{pool=\"a\",pid=\"{Environment.ProcessId}\"}} 3\n", _registry.Render(), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => gauge.Labels(("pid", "1")));
        Assert.Throws<ArgumentException>(() => new Gauge("w2", "W.", ["pid"], registry: _registry, aggregation: GaugeAggregation.LivePerProcess));
    }
}
