using System.Diagnostics;

namespace Metrics.Tests;

public class ExemplarTests
{
    [Fact]
    public void Exemplar_of_128_characters_is_accepted_and_129_refused_naming_the_limit()
    {
        var fits = new Exemplar(("trace_id", new string('a', 128 - "trace_id".Length)));
        Assert.Equal(1, fits.Count);

        var e = Assert.Throws<ArgumentException>(() => new Exemplar(("trace_id", new string('a', 129 - "trace_id".Length))));
        Assert.Contains("129 characters", e.Message);
        Assert.Contains("128", e.Message);
    }

    [Fact]
    public void Exemplar_counts_characters_not_utf16_units_or_bytes()
    {
        // 60 emoji are 120 UTF-16 units and 240 UTF-8 bytes, but 60 characters: with the name, 62 in all.
        var emoji = string.Concat(Enumerable.Repeat("😀", 60));
        Assert.Equal(2, new Exemplar(("id", emoji), ("s", "x")).Count);
        Assert.Throws<ArgumentException>(() => new Exemplar(("id", string.Concat(Enumerable.Repeat("😀", 127)))));
    }

    [Fact]
    public void Exemplar_refuses_bad_names_repeats_nulls_and_nothing()
    {
        Assert.Contains("'1trace'", Assert.Throws<ArgumentException>(() => new Exemplar(("1trace", "x"))).Message);
        Assert.Contains("'trace-id'", Assert.Throws<ArgumentException>(() => Exemplar.Of("trace-id", "x")).Message);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => Exemplar.Of("a", "1", "a", "2")).Message);
        Assert.Contains("'a'", Assert.Throws<ArgumentNullException>(() => Exemplar.Of("a", null!)).Message);
        Assert.Contains("at least one label", Assert.Throws<ArgumentException>(() => new Exemplar(ReadOnlySpan<(string, string)>.Empty)).Message);
        Assert.True(default(Exemplar).IsEmpty);
    }

    [Fact]
    public void Exemplar_reads_the_same_whether_its_labels_are_inline_or_in_an_array()
    {
        // One or two labels are kept in the struct, three or more and FromPairs in an array: both read alike.
        var one = Exemplar.Of("trace_id", "t1");
        var two = new Exemplar(("trace_id", "t1"), ("span_id", "s1"));
        var three = new Exemplar(("trace_id", "t1"), ("span_id", "s1"), ("user", "u"));
        Assert.Equal(["trace_id", "t1"], one.Pairs().ToArray());
        Assert.Equal(["trace_id", "t1", "span_id", "s1"], two.Pairs().ToArray());
        Assert.Equal(["trace_id", "t1", "span_id", "s1", "user", "u"], three.Pairs().ToArray());
        Assert.Equal((1, 2, 3), (one.Count, two.Count, three.Count));
        Assert.Equal(("span_id", "s1"), two[1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => two[2]);

        Assert.Equal(Exemplar.FromPairs(["trace_id", "t1", "span_id", "s1"]), two);
        Assert.Equal(Exemplar.FromPairs(["trace_id", "t1", "span_id", "s1"]).GetHashCode(), two.GetHashCode());
        Assert.NotEqual(Exemplar.Of("trace_id", "t2"), one);
        Assert.NotEqual(default, one);
        Assert.Equal(default(Exemplar), default);
        Assert.Equal(0, default(Exemplar).Pairs().Length);
        Assert.False(one.IsEmpty);
        Assert.Equal("{trace_id=\"t1\",span_id=\"s1\"}", two.ToString());
    }

    [Fact]
    public void Counter_exemplar_shows_in_openmetrics_only()
    {
        var registry = new MetricRegistry();
        var counter = new Counter("jobs_total", "Jobs.", ["queue"], registry: registry);
        counter.Labels("a").Inc(2, Exemplar.Of("trace_id", "abc\"d"));

        var om = registry.Render(ExpositionFormat.OpenMetrics);
        var line = om.Split('\n').Single(l => l.StartsWith("jobs_total{", StringComparison.Ordinal));
        Assert.Matches("""^jobs_total\{queue="a"\} 2 # \{trace_id="abc\\"d"\} 2 \d+(\.\d+)?$""", line);

        var text = registry.Render(ExpositionFormat.PrometheusText);
        Assert.DoesNotContain("trace_id", text);
        Assert.Contains("jobs_total{queue=\"a\"} 2\n", text);
    }

    [Fact]
    public void Histogram_exemplar_is_on_the_bucket_the_observation_falls_in()
    {
        var registry = new MetricRegistry();
        var histogram = new Histogram("latency_seconds", "Latency.", registry: registry, buckets: [0.1, 1, 10]);
        histogram.Observe(0.5, Exemplar.Of("trace_id", "t1"));
        histogram.Observe(5);

        var lines = registry.Render(ExpositionFormat.OpenMetrics).Split('\n');
        Assert.Matches("""^latency_seconds_bucket\{le="1.0"\} 1 # \{trace_id="t1"\} 0.5 \d+""", lines.Single(l => l.Contains("le=\"1.0\"", StringComparison.Ordinal)));
        Assert.All(lines.Where(l => l.Contains("_bucket", StringComparison.Ordinal) && !l.Contains("le=\"1.0\"", StringComparison.Ordinal)), l => Assert.DoesNotContain(" # ", l));
    }

    [Fact]
    public void Latest_exemplar_wins()
    {
        var registry = new MetricRegistry();
        var counter = new Counter("hits_total", "Hits.", registry: registry);
        counter.Inc(1, Exemplar.Of("trace_id", "first"));
        counter.Inc(3, Exemplar.Of("trace_id", "second"));

        var om = registry.Render(ExpositionFormat.OpenMetrics);
        Assert.Contains("hits_total 4 # {trace_id=\"second\"} 3 ", om);
        Assert.DoesNotContain("first", om);
    }

    [Fact]
    public void Update_without_exemplar_keeps_the_stored_exemplar_and_an_empty_one_records_nothing()
    {
        var registry = new MetricRegistry();
        var counter = new Counter("hits_total", "Hits.", registry: registry);
        counter.Inc(1, default);
        Assert.DoesNotContain(" # ", registry.Render(ExpositionFormat.OpenMetrics));
        counter.Inc(1, Exemplar.Of("trace_id", "kept"));
        counter.Inc(5);
        Assert.Contains("hits_total 7 # {trace_id=\"kept\"} 1 ", registry.Render(ExpositionFormat.OpenMetrics));
    }

    [Fact]
    public void Exemplar_with_invalid_amount_throws_and_records_nothing()
    {
        var registry = new MetricRegistry();
        var counter = new Counter("hits_total", "Hits.", registry: registry);
        Assert.Throws<ArgumentOutOfRangeException>(() => counter.Inc(-1, Exemplar.Of("trace_id", "x")));
        var histogram = new Histogram("h", "H.", registry: registry);
        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.Observe(double.NaN, Exemplar.Of("trace_id", "x")));
        Assert.DoesNotContain("trace_id", registry.Render(ExpositionFormat.OpenMetrics));
    }

    [Fact]
    public void Automatic_exemplars_come_from_sampled_activities_only()
    {
        using var source = new ActivitySource("Metrics.Tests.Exemplars." + Guid.NewGuid().ToString("N"));
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s == source,
            // "sampled" is a tag the test sets on the parent context: only those are recorded.
            Sample = (ref ActivityCreationOptions<ActivityContext> o) => o.Name == "sampled" ? ActivitySamplingResult.AllDataAndRecorded : ActivitySamplingResult.PropagationData,
        };
        ActivitySource.AddActivityListener(listener);
        var registry = new MetricRegistry { AutomaticExemplars = true, AutomaticExemplarInterval = TimeSpan.Zero };
        var counter = new Counter("auto_total", "Auto.", registry: registry);
        var histogram = new Histogram("auto_seconds", "Auto.", registry: registry, buckets: [1]);

        using (var unsampled = source.StartActivity("unsampled"))
        {
            Assert.NotNull(unsampled);
            Assert.False(unsampled.Recorded);
            counter.Inc();
            histogram.Observe(0.5);
        }

        Assert.DoesNotContain(" # ", registry.Render(ExpositionFormat.OpenMetrics));

        string traceId, spanId;
        using (var sampled = source.StartActivity("sampled"))
        {
            Assert.NotNull(sampled);
            traceId = sampled.TraceId.ToHexString();
            spanId = sampled.SpanId.ToHexString();
            counter.Inc();
            histogram.Observe(0.5);
        }

        var om = registry.Render(ExpositionFormat.OpenMetrics);
        Assert.Contains($"auto_total 2 # {{trace_id=\"{traceId}\",span_id=\"{spanId}\"}} 1 ", om);
        Assert.Contains($"auto_seconds_bucket{{le=\"1.0\"}} 2 # {{trace_id=\"{traceId}\",span_id=\"{spanId}\"}} 0.5 ", om);
    }

    [Fact]
    public void Automatic_exemplars_are_limited_per_series_by_the_interval()
    {
        using var source = new ActivitySource("Metrics.Tests.Exemplars." + Guid.NewGuid().ToString("N"));
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s == source,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);

        // An hour: the second update comes well within it on any machine, so only the first exemplar is kept.
        var registry = new MetricRegistry { AutomaticExemplars = true, AutomaticExemplarInterval = TimeSpan.FromHours(1) };
        var counter = new Counter("limited_total", "Limited.", ["k"], registry: registry);
        string first, second;
        using (var a = source.StartActivity("a"))
        {
            first = a!.TraceId.ToHexString();
            counter.Labels("x").Inc();
        }

        using (var b = source.StartActivity("b"))
        {
            second = b!.TraceId.ToHexString();
            counter.Labels("x").Inc();
            // Another series has its own allowance.
            counter.Labels("y").Inc();
        }

        var om = registry.Render(ExpositionFormat.OpenMetrics);
        Assert.Contains($"limited_total{{k=\"x\"}} 2 # {{trace_id=\"{first}\"", om);
        Assert.Contains($"limited_total{{k=\"y\"}} 1 # {{trace_id=\"{second}\"", om);
        Assert.DoesNotContain($"k=\"x\"}} 2 # {{trace_id=\"{second}\"", om);
    }

    [Fact]
    public void Automatic_exemplars_are_off_by_default()
    {
        using var source = new ActivitySource("Metrics.Tests.Exemplars." + Guid.NewGuid().ToString("N"));
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s == source,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        var registry = new MetricRegistry();
        var counter = new Counter("off_total", "Off.", registry: registry);
        using (source.StartActivity("a"))
        {
            counter.Inc();
        }

        Assert.False(registry.AutomaticExemplars);
        Assert.DoesNotContain(" # ", registry.Render(ExpositionFormat.OpenMetrics));
    }

    [Fact]
    public void Backend_without_exemplars_drops_them_and_counts_the_drops()
    {
        var backend = ConfiguredBackend.Create<NoExemplarBackend>(name: "NoExemplars");
        Assert.False(backend.Capabilities.HasFlag(BackendCapabilities.Exemplars));
        using var registry = new MetricRegistry(backend: backend);
        var counter = new Counter("plain_total", "Plain.", registry: registry);
        counter.Inc(1, Exemplar.Of("trace_id", "x"));
        new Histogram("plain_seconds", "Plain.", registry: registry).Observe(1, Exemplar.Of("trace_id", "y"));

        Assert.Equal(1, counter.Value);
        Assert.Equal(2, backend.DroppedExemplars);
        Assert.DoesNotContain("trace_id", registry.Render(ExpositionFormat.OpenMetrics));
    }

    [Fact]
    public void Collector_sample_exemplar_shows_in_openmetrics_only()
    {
        var registry = new MetricRegistry();
        var exemplar = new RecordedExemplar(Exemplar.Of("trace_id", "c1"), 1, 1_700_000_000.5);
        registry.Register(new FixedCollector(new MetricSnapshot("events_total", "Events.", MetricType.Counter, [], [new Sample([], 5) { Exemplar = exemplar }])));

        Assert.Contains("events_total 5 # {trace_id=\"c1\"} 1 1700000000.5\n", registry.Render(ExpositionFormat.OpenMetrics));
        Assert.DoesNotContain("c1", registry.Render(ExpositionFormat.PrometheusText));
    }

    [Fact]
    public void Promtool_parses_an_openmetrics_exposition_with_exemplars()
    {
        var registry = new MetricRegistry("app");
        var counter = new Counter("requests_total", "Requests.", ["path"], registry: registry);
        counter.Labels("/a\"}b # c").Inc(1, Exemplar.Of("trace_id", "0af7651916cd43dd8448eb211c80319c", "span_id", "b7ad6b7169203331"));
        var histogram = new Histogram("request_duration_seconds", "Latency.", ["path"], registry: registry, buckets: [0.1, 1]);
        histogram.Labels("/x").Observe(0.05, Exemplar.Of("trace_id", "日本語 \"quoted\" \\ # {}"));
        histogram.Labels("/x").Observe(3, Exemplar.Of("trace_id", "inf"));

        var om = registry.Render(ExpositionFormat.OpenMetrics);
        Assert.Contains(" # {trace_id=\"inf\"} 3 ", om);
        var (exit, output) = Promtool.CheckOpenMetrics(om);
        Assert.True(exit == 0, $"promtool failed to parse ({exit}):\n{output}\n--- exposition ---\n{om}");

        // And the broken form is refused by the same check, so the check can fail.
        var broken = om.Replace(" # {trace_id=\"inf\"}", " # {trace_id=\"inf\"", StringComparison.Ordinal);
        Assert.NotEqual(0, Promtool.CheckOpenMetrics(broken).Exit);

        var text = registry.Render(ExpositionFormat.PrometheusText);
        var (textExit, textOutput) = Promtool.Check(text);
        Assert.True(textExit == 0, $"promtool check metrics failed ({textExit}):\n{textOutput}\n--- exposition ---\n{text}");
    }

    [Fact]
    public async Task Protobuf_carries_counter_and_bucket_exemplars_and_a_native_histograms_exemplars()
    {
        var registry = new MetricRegistry();
        new Counter("hits_total", "Hits.", registry: registry).Inc(2, Exemplar.Of("trace_id", "c", "span_id", "s"));
        var classic = new Histogram("size", "S.", registry: registry, buckets: [1, 10]);
        classic.Observe(5, Exemplar.Of("trace_id", "b"));
        classic.Observe(50, Exemplar.Of("trace_id", "inf"));
        new Histogram("native", "N.", registry: registry, native: new NativeHistogramOptions()).Observe(3, Exemplar.Of("trace_id", "n"));

        using var stream = new MemoryStream();
        await registry.WriteAsync(stream, ExpositionFormat.Protobuf, TestContext.Current.CancellationToken);
        var families = ProtoMessage.ReadDelimited(stream.ToArray()).ToDictionary(f => f.String(1));

        var counter = families["hits_total"].Messages(4).Single().Message(3)!;
        var exemplar = counter.Message(2)!;
        Assert.Equal([("trace_id", "c"), ("span_id", "s")], exemplar.Messages(1).Select(l => (l.String(1), l.String(2))));
        Assert.Equal(2, exemplar.Double(2));
        Assert.True(exemplar.Message(3)!.Varint(1) > 1_600_000_000);

        var buckets = families["size"].Messages(4).Single().Message(7)!.Messages(3);
        Assert.False(buckets[0].Has(3));
        Assert.Equal("b", buckets[1].Message(3)!.Messages(1).Single().String(2));
        Assert.Equal(5, buckets[1].Message(3)!.Double(2));

        var native = families["native"].Messages(4).Single().Message(7)!.Messages(16).Single();
        Assert.Equal(("trace_id", "n"), native.Messages(1).Select(l => (l.String(1), l.String(2))).Single());
        Assert.Equal(3, native.Double(2));
    }

    private sealed class FixedCollector(MetricSnapshot snapshot) : ICollector
    {
        public IReadOnlyList<string> MetricNames { get; } = [snapshot.Name];

        public IEnumerable<MetricSnapshot> Collect() => [snapshot];
    }

    /// <summary>A backend built before exemplars: it declares nothing and keeps the contract's defaults.</summary>
    public sealed class NoExemplarBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<NoExemplarBackend>
    {
        private readonly object _unused = (config, metric, histogramBucket);
        private double _value;

        public static void Initialize(BackendConfig config)
        {
        }

        public void Inc(double value)
        {
            lock (_unused)
            {
                _value += value;
            }
        }

        public void Dec(double value) => Inc(-value);

        public void Set(double value)
        {
            lock (_unused)
            {
                _value = value;
            }
        }

        public double Get()
        {
            lock (_unused)
            {
                return _value;
            }
        }
    }
}
