using System.Collections.Concurrent;

namespace Metrics.Tests;

public class BackendTests
{
    [Fact]
    public void Every_value_is_created_through_the_backend_with_a_complete_descriptor()
    {
        var config = new BackendConfig([new("Id", Guid.NewGuid().ToString())]);
        var backend = ConfiguredBackend.Create<RecordingBackend>(config);
        var registry = new MetricRegistry("p", backend);
        var histogram = new Histogram("lat", "Latency help.", ["a", "b"], new Dictionary<string, string> { ["b"] = "dflt" }, registry, [1, 2]);
        histogram.Labels("x").Observe(1.5);
        var summary = new Summary("sz", "Size help.", registry: registry);
        summary.Observe(3);

        var created = RecordingBackend.Created.Where(c => c.Config == config).ToList();
        var histogramValues = created.Where(c => c.Metric.Name == "p_lat").ToList();
        Assert.Equal(4, histogramValues.Count); // 3 buckets (1, 2, +Inf) and the sum: the count is derived from the buckets.
        foreach (var (_, metric, _) in histogramValues)
        {
            Assert.Equal("Latency help.", metric.Help);
            Assert.Equal(MetricType.Histogram, metric.Type);
            Assert.Equal(["a", "b"], metric.LabelNames);
            Assert.Equal(["x", "dflt"], metric.LabelValues);
            Assert.Equal([1, 2, double.PositiveInfinity], metric.Buckets);
        }

        Assert.Equal(
            ["1", "2", "+Inf", "sum"],
            histogramValues.Select(c => c.Bucket!.Value.ToString()).ToArray());
        Assert.Equal(["count", "sum"], created.Where(c => c.Metric.Name == "p_sz").Select(c => c.Bucket!.Value.ToString()).ToArray());
        Assert.Equal(1, RecordingBackend.Initializations[config]);
    }

    [Fact]
    public void Initialize_runs_once_per_type_and_configuration()
    {
        var id = Guid.NewGuid().ToString();
        var one = new BackendConfig([new("Id", id)]);
        var same = new BackendConfig([new("id", id)]);
        var other = new BackendConfig([new("Id", id + "x")]);
        _ = ConfiguredBackend.Create<RecordingBackend>(one);
        _ = ConfiguredBackend.Create<RecordingBackend>(same);
        Parallel.For(0, 8, _ => ConfiguredBackend.Create<RecordingBackend>(one));
        _ = ConfiguredBackend.Create<RecordingBackend>(other);
        Assert.Equal(1, RecordingBackend.Initializations[one]);
        Assert.Equal(1, RecordingBackend.Initializations[other]);
    }

    [Fact]
    public void Batch_collection_exposes_series_other_processes_created()
    {
        var backend = ConfiguredBackend.Create<CollectingBackend>();
        var registry = new MetricRegistry(backend: backend);
        var counter = new Counter("jobs_total", "Jobs.", ["worker"], registry: registry);
        var histogram = new Histogram("lat", "Lat.", ["worker"], registry: registry, buckets: [1]);
        counter.Labels("local").Inc(2);
        CollectingBackend.Remote = [
            [new CollectedValue(["remote"], null, 40)],
            [
                new CollectedValue(["remote"], HistogramBucket.ForUpperBound(1), 3),
                new CollectedValue(["remote"], HistogramBucket.ForUpperBound(double.PositiveInfinity), 1),
                new CollectedValue(["remote"], HistogramBucket.Sum, 5.5),
                new CollectedValue(["remote"], HistogramBucket.Count, 999),
            ],
        ];

        var text = registry.Render();
        Assert.Contains("jobs_total{worker=\"remote\"} 40\n", text, StringComparison.Ordinal);
        Assert.Contains("lat_bucket{worker=\"remote\",le=\"1\"} 3\nlat_bucket{worker=\"remote\",le=\"+Inf\"} 4\nlat_sum{worker=\"remote\"} 5.5\nlat_count{worker=\"remote\"} 4\n", text, StringComparison.Ordinal);
        ConcurrencyTests.CheckHistogramConsistency(text);
    }

    [Fact]
    public void A_collected_series_this_process_creates_later_shows_its_own_creation_time()
    {
        var backend = ConfiguredBackend.Create<CollectingBackend>();
        var registry = new MetricRegistry(backend: backend);
        var counter = new Counter("made_total", "Made.", ["worker"], registry: registry);
        var family = counter.Family;
        // The same label array every scrape, as the shared backends return: the second scrape finds it where the first left it.
        CollectingBackend.Remote = [[new CollectedValue(new[] { "w" }, null, 3)]];
        var familyCreated = Created(registry.Render(ExpositionFormat.OpenMetrics));
        Assert.Equal(1, family.CollectedValues);
        Assert.Equal(family.CreatedUnixSeconds, familyCreated);

        // Busy until the clock moves on, so the child's creation time differs from the family's.
        SpinWait.SpinUntil(() => MetricFamily.UnixNow() > familyCreated);
        var child = counter.Labels("w");
        Assert.NotEqual(familyCreated, child.CreatedUnixSeconds);
        Assert.Equal(child.CreatedUnixSeconds, Created(registry.Render(ExpositionFormat.OpenMetrics)));

        static double Created(string text) =>
            double.Parse(text.Split('\n').Single(l => l.StartsWith("made_created{", StringComparison.Ordinal)).Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void Stable_label_arrays_returned_in_another_order_keep_each_value_under_its_own_labels()
    {
        var backend = ConfiguredBackend.Create<CollectingBackend>();
        var registry = new MetricRegistry(backend: backend);
        _ = new Counter("moved_total", "Moved.", ["worker"], registry: registry);
        _ = new Histogram("moved_seconds", "Moved.", ["worker"], registry: registry, buckets: [1]);
        string[] a = ["a"], b = ["b"], c = ["c"];
        CollectingBackend.Remote = [
            [new CollectedValue(a, null, 1), new CollectedValue(b, null, 2)],
            [new CollectedValue(a, HistogramBucket.ForUpperBound(1), 1), new CollectedValue(a, HistogramBucket.Sum, 0.5), new CollectedValue(b, HistogramBucket.ForUpperBound(1), 2), new CollectedValue(b, HistogramBucket.Sum, 1.5)],
        ];
        var first = registry.Render();
        Assert.Contains("moved_total{worker=\"a\"} 1\nmoved_total{worker=\"b\"} 2\n", first, StringComparison.Ordinal);

        // The same arrays at other positions, a new label set where "a" was, and a histogram whose parts interleave.
        CollectingBackend.Remote = [
            [new CollectedValue(c, null, 30), new CollectedValue(b, null, 20), new CollectedValue(a, null, 10)],
            [new CollectedValue(b, HistogramBucket.ForUpperBound(1), 4), new CollectedValue(a, HistogramBucket.ForUpperBound(1), 3), new CollectedValue(b, HistogramBucket.Sum, 7.5), new CollectedValue(a, HistogramBucket.Sum, 2.5)],
        ];
        var text = registry.Render();
        Assert.Contains("moved_total{worker=\"c\"} 30\nmoved_total{worker=\"b\"} 20\nmoved_total{worker=\"a\"} 10\n", text, StringComparison.Ordinal);
        Assert.Contains("moved_seconds_bucket{worker=\"b\",le=\"1\"} 4\n", text, StringComparison.Ordinal);
        Assert.Contains("moved_seconds_sum{worker=\"b\"} 7.5\n", text, StringComparison.Ordinal);
        Assert.Contains("moved_seconds_bucket{worker=\"a\",le=\"1\"} 3\n", text, StringComparison.Ordinal);
        Assert.Contains("moved_seconds_sum{worker=\"a\"} 2.5\n", text, StringComparison.Ordinal);
        ConcurrencyTests.CheckHistogramConsistency(text);
    }

    [Fact]
    public void Label_arrays_a_backend_returns_anew_every_scrape_are_not_all_kept()
    {
        var backend = ConfiguredBackend.Create<CollectingBackend>();
        var registry = new MetricRegistry(backend: backend);
        var counter = new Counter("fresh_total", "Fresh.", ["worker"], registry: registry);
        const int series = 3000;
        for (var scrape = 0; scrape < 10; scrape++)
        {
            CollectingBackend.Remote = [[.. Enumerable.Range(0, series).Select(i => new CollectedValue(new[] { i.ToString(System.Globalization.CultureInfo.InvariantCulture) }, null, i))]];
            var text = registry.Render();
            Assert.Contains("fresh_total{worker=\"2999\"} 2999\n", text, StringComparison.Ordinal);
        }

        // Each scrape's arrays are new: one entry per label set, and no index holds a few scrapes' worth of arrays.
        Assert.Equal(series, counter.Family.CollectedValues);
        Assert.InRange(counter.Family.CollectedReferences, 0, (3 * series) + 1024);
    }

    [Fact]
    public void Label_arrays_a_backend_returns_anew_in_another_order_are_not_all_kept()
    {
        var backend = ConfiguredBackend.Create<CollectingBackend>();
        var registry = new MetricRegistry(backend: backend);
        var counter = new Counter("shuffled_total", "Shuffled.", ["worker"], registry: registry);
        const int series = 3000;
        for (var scrape = 0; scrape < 10; scrape++)
        {
            // Rotated by one each scrape: no series is where it was, so each is found by its labels.
            CollectingBackend.Remote = [[.. Enumerable.Range(0, series).Select(i => (i + scrape) % series).Select(i => new CollectedValue(new[] { i.ToString(System.Globalization.CultureInfo.InvariantCulture) }, null, i))]];
            var text = registry.Render();
            var lines = text.Split('\n').Where(l => l.StartsWith("shuffled_total{", StringComparison.Ordinal)).ToArray();
            Assert.Equal(series, lines.Length);
            Assert.All(lines, line => Assert.Equal(line.Split('"')[1], line.Split(' ')[1]));
        }

        Assert.Equal(series, counter.Family.CollectedValues);
        Assert.InRange(counter.Family.CollectedReferences, 0, (3 * series) + 1024);
    }

    [Fact]
    public void Label_sets_that_left_the_store_are_dropped_from_the_collected_series()
    {
        var backend = ConfiguredBackend.Create<CollectingBackend>();
        var registry = new MetricRegistry(backend: backend);
        var counter = new Counter("churn_total", "Churn.", ["worker"], registry: registry);
        const int series = 3000;
        for (var scrape = 0; scrape < 10; scrape++)
        {
            // Every scrape a new set of series: the store forgot the last ones (removed, expired).
            var first = scrape * series;
            CollectingBackend.Remote = [[.. Enumerable.Range(first, series).Select(i => new CollectedValue(new[] { i.ToString(System.Globalization.CultureInfo.InvariantCulture) }, null, i))]];
            var text = registry.Render();
            Assert.Contains($"churn_total{{worker=\"{first}\"}} {first}\n", text, StringComparison.Ordinal);
        }

        Assert.InRange(counter.Family.CollectedValues, series, (3 * series) + 1024);
        Assert.InRange(counter.Family.CollectedReferences, 0, (3 * series) + 1024);
    }

    [Fact]
    public async Task Label_sets_that_left_the_store_are_dropped_from_the_collected_series_when_scraped_as_protobuf()
    {
        var backend = ConfiguredBackend.Create<CollectingBackend>();
        var registry = new MetricRegistry(backend: backend);
        var counter = new Counter("churn_proto_total", "Churn.", ["worker"], registry: registry);
        const int series = 3000;
        for (var scrape = 0; scrape < 10; scrape++)
        {
            var first = scrape * series;
            CollectingBackend.Remote = [[.. Enumerable.Range(first, series).Select(i => new CollectedValue(new[] { i.ToString(System.Globalization.CultureInfo.InvariantCulture) }, null, i))]];
            using var stream = new MemoryStream();
            await registry.WriteAsync(stream, ExpositionFormat.Protobuf, TestContext.Current.CancellationToken);
            var label = System.Text.Encoding.UTF8.GetBytes(first.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(stream.ToArray().AsSpan().IndexOf(label) >= 0, $"the protobuf scrape lacks the label value {first}");
        }

        Assert.InRange(counter.Family.CollectedValues, series, (3 * series) + 1024);
        Assert.InRange(counter.Family.CollectedReferences, 0, (3 * series) + 1024);
    }

    [Fact]
    public async Task Protobuf_groups_collected_histogram_parts_by_series_when_series_move_between_scrapes()
    {
        var backend = ConfiguredBackend.Create<CollectingBackend>();
        var registry = new MetricRegistry(backend: backend);
        _ = new Histogram("moving_seconds", "Moving.", ["worker"], registry: registry, buckets: [1]);
        IReadOnlyList<CollectedValue> Parts(string worker, double below, double above, double sum)
        {
            // Each part in its own array, as a backend that decodes every value afresh returns them.
            return [
                new CollectedValue(new[] { worker }, HistogramBucket.ForUpperBound(1), below),
                new CollectedValue(new[] { worker }, HistogramBucket.ForUpperBound(double.PositiveInfinity), above),
                new CollectedValue(new[] { worker }, HistogramBucket.Sum, sum),
                new CollectedValue(new[] { worker }, HistogramBucket.Count, 999),
            ];
        }

        // The second scrape puts each series where the other was, and splits one series' parts around the other's.
        IReadOnlyList<CollectedValue>[] scrapes =
        [
            [.. Parts("a", 1, 2, 10), .. Parts("b", 3, 4, 20)],
            [.. Parts("b", 3, 4, 20).Take(2), .. Parts("a", 5, 6, 30), .. Parts("b", 0, 1, 5).Skip(1)],
        ];
        (string Worker, ulong Count, double Sum, ulong BelowOne)[][] expected =
        [
            [("a", 3, 10, 1), ("b", 7, 20, 3)],
            [("b", 8, 5, 3), ("a", 11, 30, 5)],
        ];

        for (var scrape = 0; scrape < scrapes.Length; scrape++)
        {
            CollectingBackend.Remote = [scrapes[scrape]];
            using var stream = new MemoryStream();
            await registry.WriteAsync(stream, ExpositionFormat.Protobuf, TestContext.Current.CancellationToken);
            var family = ProtoMessage.ReadDelimited(stream.ToArray()).Single(f => f.String(1) == "moving_seconds");
            var series = family.Messages(4).Select(metric =>
            {
                var histogram = metric.Message(7)!;
                return (metric.Messages(1).Single().String(2), histogram.Varint(1), histogram.Double(2), histogram.Messages(3).Single().Varint(1));
            });
            Assert.Equal(expected[scrape], series.ToArray());
        }

        Assert.Equal(0, registry.SkippedValues);
    }

    [Fact]
    public void Backend_statistics_are_exposed_once_per_backend()
    {
        var backend = ConfiguredBackend.Create<CollectingBackend>(new BackendConfig([new("Stats", "yes")]));
        var registry = new MetricRegistry(backend: backend);
        CollectingBackend.Remote = [[], []];
        _ = new Counter("a_total", "A.", registry: registry);
        _ = new Counter("b_total", "B.", registry: registry);
        var text = registry.Render();
        Assert.Equal(1, text.Split('\n').Count(l => l == "metrics_backend_dropped_updates_total 7"));
        Assert.Contains("# TYPE metrics_backend_dropped_updates counter\nmetrics_backend_dropped_updates_total 7\n", registry.Render(ExpositionFormat.OpenMetrics), StringComparison.Ordinal);
    }

    [Fact]
    public void Collection_failure_fails_the_scrape_before_any_byte_is_written()
    {
        var backend = ConfiguredBackend.Create<CollectingBackend>(new BackendConfig([new("Fail", "true")]));
        var registry = new MetricRegistry(backend: backend);
        new Counter("x_total", "X.", registry: registry).Inc();
        using var stream = new MemoryStream();
        var ex = Assert.Throws<MetricsBackendException>(() => registry.WriteAsync(stream, cancellationToken: TestContext.Current.CancellationToken).GetAwaiter().GetResult());
        Assert.Contains("failed (InvalidOperationException): store unreachable", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, stream.Length);
    }

    [Fact]
    public void Default_backend_cannot_change_once_used()
    {
        // The default registry has been used by other tests, or is now.
        var gauge = new Gauge($"default_backend_probe_{Guid.NewGuid():N}", "Probe.");
        MetricRegistry.Default.Unregister(gauge);
        var ex = Assert.Throws<InvalidOperationException>(() => ConfiguredBackend.Default = ConfiguredBackend.Create<RecordingBackend>(new BackendConfig([new("Id", "late")])));
        Assert.Contains("before the first metric is created", ex.Message, StringComparison.Ordinal);
        Assert.Same(ConfiguredBackend.Memory, ConfiguredBackend.Default);
    }

    [Fact]
    public void Backend_config_typed_reads_name_the_key_and_hide_secrets()
    {
        var config = new BackendConfig(
        [
            new("FlushInterval", "soon"),
            new("Size", "12x"),
            new("Password", "hunter2"),
            new("Ok", "250ms"),
            new("Mode", "Max"),
            new("Pool:Size", "4"),
        ]);
        var interval = Assert.Throws<BackendConfigException>(() => config.GetTimeSpan("FlushInterval", TimeSpan.Zero));
        Assert.Equal("Metrics:BackendConfig:FlushInterval", interval.Key);
        Assert.Contains("'soon'", interval.Message, StringComparison.Ordinal);
        Assert.Contains("duration", interval.Message, StringComparison.Ordinal);
        Assert.Contains("integer", Assert.Throws<BackendConfigException>(() => config.GetInt32("Size", 0)).Message, StringComparison.Ordinal);
        var secret = Assert.Throws<BackendConfigException>(() => config.GetInt32("Password", 0));
        Assert.DoesNotContain("hunter2", secret.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", config.ToString(), StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromMilliseconds(250), config.GetTimeSpan("Ok", TimeSpan.Zero));
        Assert.Equal(TimeSpan.FromSeconds(3), config.GetTimeSpan("Missing", TimeSpan.FromSeconds(3)));
        Assert.Equal(GaugeAggregation.Max, config.GetEnum("Mode", GaugeAggregation.Sum));
        Assert.Equal(4, config.GetSection("Pool").GetInt32("size", 0));
        Assert.Equal("Metrics:BackendConfig:Pool", config.GetSection("Pool").Path);
        Assert.Contains("required", Assert.Throws<BackendConfigException>(() => config.GetRequiredString("Host")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Histogram_bucket_text_round_trips()
    {
        foreach (var bucket in new[] { HistogramBucket.Sum, HistogramBucket.Count, HistogramBucket.ForUpperBound(0.1), HistogramBucket.ForUpperBound(1e-300), HistogramBucket.ForUpperBound(double.PositiveInfinity), HistogramBucket.ForUpperBound(-5), HistogramBucket.ForUpperBound(double.NegativeInfinity), HistogramBucket.ForUpperBound(-0.0) })
        {
            Assert.Equal(bucket, HistogramBucket.Parse(bucket.ToString()));
        }

        Assert.NotEqual(HistogramBucket.Sum, HistogramBucket.Count);
        Assert.Equal("0", HistogramBucket.ForUpperBound(-0.0).ToString());
        Assert.Throws<FormatException>(() => HistogramBucket.Parse("nope"));
        Assert.Throws<ArgumentOutOfRangeException>(() => HistogramBucket.ForUpperBound(double.NaN));
    }

    [Fact]
    public void A_backend_refusing_the_first_value_leaves_the_name_free()
    {
        var registry = new MetricRegistry(backend: ConfiguredBackend.Create<RefusingBackend>());
        var ex = Assert.Throws<InvalidOperationException>(() => new Gauge("g", "G.", registry: registry));
        Assert.Contains("store full", ex.Message, StringComparison.Ordinal);
        Assert.Empty(registry.Entries);
    }

    [Fact]
    public void Missing_constructor_is_a_clear_configuration_error()
    {
        var ex = Assert.Throws<MetricsConfigurationException>(() => ConfiguredBackend.Create<NoConstructorBackend>());
        Assert.Contains("no public constructor", ex.Message, StringComparison.Ordinal);
    }

    public sealed class RecordingBackend : IMetricBackend<RecordingBackend>
    {
        private double _value;

        public RecordingBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) =>
            Created.Enqueue((config, metric, histogramBucket));

        public static ConcurrentQueue<(BackendConfig Config, MetricDescriptor Metric, HistogramBucket? Bucket)> Created { get; } = new();

        public static ConcurrentDictionary<BackendConfig, int> Initializations { get; } = new();

        public static void Initialize(BackendConfig config) => Initializations.AddOrUpdate(config, 1, (_, n) => n + 1);

        public void Inc(double value) => _value += value;

        public void Dec(double value) => _value -= value;

        public void Set(double value) => _value = value;

        public double Get() => _value;
    }

    public sealed class CollectingBackend : IMetricBackend<CollectingBackend>
    {
        private readonly BackendConfig _config;

        public CollectingBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) => _config = config;

        public static IReadOnlyList<CollectedValue>[] Remote { get; set; } = [];

        public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses;

        public static void Initialize(BackendConfig config)
        {
        }

        // Families past those the test gave values for (the registry's cardinality overflow counter, read last) hold nothing.
        public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) =>
            config.GetBoolean("Fail", false)
                ? throw new InvalidOperationException("store unreachable at 127.0.0.1:1")
                : [.. Remote, .. Enumerable.Repeat<IReadOnlyList<CollectedValue>>([], Math.Max(0, families.Count - Remote.Length))];

        public static IReadOnlyList<BackendStatistic> Statistics(BackendConfig config) =>
            config.GetString("Stats") is null ? [] : [new("metrics_backend_dropped_updates_total", "Dropped.", MetricType.Counter, 7)];

        public void Inc(double value) => _ = _config;

        public void Dec(double value)
        {
        }

        public void Set(double value)
        {
        }

        public double Get() => 0;
    }

    public sealed class RefusingBackend : IMetricBackend<RefusingBackend>
    {
        public RefusingBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) =>
            throw new InvalidOperationException("store full: raise MaxSize");

        public static void Initialize(BackendConfig config)
        {
        }

        public void Inc(double value)
        {
        }

        public void Dec(double value)
        {
        }

        public void Set(double value)
        {
        }

        public double Get() => 0;
    }

    public sealed class NoConstructorBackend : IMetricBackend<NoConstructorBackend>
    {
        public static void Initialize(BackendConfig config)
        {
        }

        public void Inc(double value)
        {
        }

        public void Dec(double value)
        {
        }

        public void Set(double value)
        {
        }

        public double Get() => 0;
    }

    [Theory]
    [InlineData("AUTH s3cret failed", "s3cret", "AUTH *** failed")]
    [InlineData("a user's password a was refused", "a", "*** user's password *** was refused")]
    [InlineData("Redisson and Redis", "Redis", "Redisson and ***")]
    [InlineData("error 424242 for 4242", "4242", "error 424242 for ***")]
    [InlineData("abc,def then abc,def,", "abc,def", "*** then ***,")]
    [InlineData("nothing here", "", "nothing here")]
    public void MaskSecret_masks_whole_occurrences_only(string text, string secret, string expected)
    {
        Assert.Equal(expected, BackendConfig.MaskSecret(text, secret));
    }
}
