namespace Metrics.Tests;

public class RegistryTests
{
    [Fact]
    public void Duplicate_names_are_refused_with_a_clear_message()
    {
        var registry = new MetricRegistry();
        _ = new Counter("jobs_total", "Jobs.", registry: registry);
        var ex = Assert.Throws<ArgumentException>(() => new Gauge("jobs_total", "Jobs.", registry: registry));
        Assert.Contains("'jobs_total' is already used by a counter 'jobs_total'", ex.Message, StringComparison.Ordinal);

        // The same name in another registry is fine.
        _ = new Counter("jobs_total", "Jobs.", registry: new MetricRegistry());
    }

    [Theory]
    [InlineData("counter:x", "gauge:x_total")]
    [InlineData("gauge:x", "counter:x_total")]
    [InlineData("counter:y_total", "gauge:y_created")]
    [InlineData("counter:y", "gauge:y_total")]
    [InlineData("histogram:h", "gauge:h_count")]
    [InlineData("histogram:h", "gauge:h_bucket")]
    [InlineData("summary:s", "counter:s_sum")]
    [InlineData("gauge:s_sum", "summary:s")]
    public void Names_that_would_collide_in_either_format_are_refused(string first, string second)
    {
        var registry = new MetricRegistry();
        Create(registry, first);
        var ex = Assert.Throws<ArgumentException>(() => Create(registry, second));
        Assert.Contains("already used", ex.Message, StringComparison.Ordinal);

        static void Create(MetricRegistry registry, string spec)
        {
            var (type, name) = (spec.Split(':')[0], spec.Split(':')[1]);
            _ = type switch
            {
                "counter" => (Metric)new Counter(name, "x", registry: registry),
                "gauge" => new Gauge(name, "x", registry: registry),
                "histogram" => new Histogram(name, "x", registry: registry),
                _ => new Summary(name, "x", registry: registry),
            };
        }
    }

    [Fact]
    public void Counter_is_exposed_with_total_in_both_formats_whatever_its_name()
    {
        var registry = new MetricRegistry();
        new Counter("requests", "Requests.", registry: registry).Inc();
        Assert.Contains("# TYPE requests_total counter\nrequests_total 1\n", registry.Render(), StringComparison.Ordinal);
        Assert.Contains("# TYPE requests counter\nrequests_total 1\n", registry.Render(ExpositionFormat.OpenMetrics), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new Counter("_total", "Nothing but the suffix.", registry: registry));
    }

    [Fact]
    public void Duplicate_detection_uses_the_prefixed_name()
    {
        var registry = new MetricRegistry("app");
        _ = new Counter("x_total", "X.", registry: registry);
        registry.Register(new FixedCollector("y"));
        Assert.Throws<ArgumentException>(() => new Gauge("y", "Y.", registry: registry));
        Assert.Throws<ArgumentException>(() => registry.Register(new FixedCollector("x_total")));
    }

    [Fact]
    public void Unregister_removes_the_metric_from_exposition_and_frees_the_name()
    {
        var registry = new MetricRegistry();
        var counter = new Counter("a_total", "A.", ["l"], registry: registry);
        counter.Labels("x").Inc();
        Assert.Contains("a_total", registry.Render(), StringComparison.Ordinal);
        Assert.True(registry.Unregister(counter.Labels("x")));
        Assert.False(registry.Unregister(counter));
        Assert.DoesNotContain("a_total", registry.Render(), StringComparison.Ordinal);
        var again = new Counter("a_total", "A again.", registry: registry);
        again.Inc(5);
        Assert.Contains("a_total 5\n", registry.Render(), StringComparison.Ordinal);

        var collector = new FixedCollector("c");
        registry.Register(collector);
        Assert.Contains("c 1\n", registry.Render(), StringComparison.Ordinal);
        Assert.True(registry.Unregister(collector));
        Assert.True(registry.Unregister(again));
        Assert.Equal(string.Empty, registry.Render());
    }

    [Fact]
    public void Default_registry_is_used_when_none_is_given()
    {
        var name = $"default_registry_test_{Guid.NewGuid():N}";
        var gauge = new Gauge(name, "Uses the default registry.");
        gauge.Set(1);
        Assert.Contains($"{name} 1\n", MetricRegistry.Default.Render(), StringComparison.Ordinal);
        Assert.True(MetricRegistry.Default.Unregister(gauge));
        Assert.DoesNotContain(name, MetricRegistry.Default.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public void Metric_names_lists_what_is_registered()
    {
        var registry = new MetricRegistry("app");
        _ = new Counter("a_total", "A.", registry: registry);
        registry.Register(new FixedCollector("b"));
        Assert.Equal(["app_a_total", "app_b"], registry.MetricNames);
    }

    [Fact]
    public void Collector_samples_with_null_label_values_are_refused_when_built() =>
        Assert.Contains("'q'", Assert.Throws<ArgumentException>(() => new MetricSnapshot("m", "M.", MetricType.Gauge, ["q"], [new Sample([null!], 1)])).Message, StringComparison.Ordinal);

    [Fact]
    public void Invalid_prefix_is_refused() => Assert.Throws<ArgumentException>(() => new MetricRegistry("bad-prefix"));

    [Fact]
    public void Collector_yielding_an_undeclared_name_fails_the_scrape()
    {
        var registry = new MetricRegistry();
        registry.Register(new LyingCollector());
        var ex = Assert.Throws<InvalidOperationException>(() => registry.Render());
        Assert.Contains("does not declare", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Failing_collector_fails_the_whole_scrape_without_partial_output()
    {
        var registry = new MetricRegistry();
        new Counter("before_total", "Before.", registry: registry).Inc();
        registry.Register(new ThrowingCollector());
        using var stream = new MemoryStream();
        Assert.Throws<IOException>(() => registry.WriteAsync(stream, cancellationToken: TestContext.Current.CancellationToken).GetAwaiter().GetResult());
        Assert.Equal(0, stream.Length);
    }

    private sealed class FixedCollector(string name) : ICollector
    {
        public IReadOnlyList<string> MetricNames => [name];

        public IEnumerable<MetricSnapshot> Collect() => [MetricSnapshot.Gauge(name, "Fixed.", 1)];
    }

    private sealed class LyingCollector : ICollector
    {
        public IReadOnlyList<string> MetricNames => ["declared"];

        public IEnumerable<MetricSnapshot> Collect() => [MetricSnapshot.Gauge("other", "Other.", 1)];
    }

    private sealed class ThrowingCollector : ICollector
    {
        public IReadOnlyList<string> MetricNames => ["boom"];

        public IEnumerable<MetricSnapshot> Collect() => throw new IOException("source unavailable");
    }
}
