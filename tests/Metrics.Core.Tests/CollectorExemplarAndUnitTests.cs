namespace Metrics.Tests;

/// <summary>Exemplars from custom collectors, and the unit in the protobuf exposition.</summary>
public class CollectorExemplarAndUnitTests
{
    private static readonly RecordedExemplar CounterExemplar = new(Exemplar.Of("trace_id", "c1"), 1, 1_700_000_000.5);
    private static readonly RecordedExemplar BucketExemplar = new(Exemplar.Of("trace_id", "b1", "span_id", "s1"), 0.5, 1_700_000_001);
    private static readonly RecordedExemplar InfExemplar = new(Exemplar.Of("trace_id", "inf"), 7, 1_700_000_002.25);

    [Fact]
    public void Collector_counter_and_bucket_exemplars_show_in_openmetrics_only_and_parse()
    {
        var registry = new MetricRegistry();
        registry.Register(new ExemplarCollector());

        var om = registry.Render(ExpositionFormat.OpenMetrics);
        Assert.Contains("collected_hits_total{route=\"/a\"} 3 # {trace_id=\"c1\"} 1 1700000000.5\n", om, StringComparison.Ordinal);
        Assert.Contains("collected_hits_total{route=\"/b\"} 4\n", om, StringComparison.Ordinal);
        Assert.Contains("collected_wait_seconds_bucket{le=\"0.5\"} 1\n", om, StringComparison.Ordinal);
        Assert.Contains("collected_wait_seconds_bucket{le=\"1.0\"} 2 # {trace_id=\"b1\",span_id=\"s1\"} 0.5 1700000001\n", om, StringComparison.Ordinal);
        Assert.Contains("collected_wait_seconds_bucket{le=\"+Inf\"} 3 # {trace_id=\"inf\"} 7 1700000002.25\n", om, StringComparison.Ordinal);
        var (exit, output) = Promtool.CheckOpenMetrics(om);
        Assert.True(exit == 0, $"promtool failed to parse ({exit}):\n{output}\n--- exposition ---\n{om}");

        var text = registry.Render(ExpositionFormat.PrometheusText);
        Assert.DoesNotContain(" # {", text, StringComparison.Ordinal);
        Assert.Contains("collected_wait_seconds_bucket{le=\"1\"} 2\n", text, StringComparison.Ordinal);
        Assert.Contains("collected_hits_total{route=\"/a\"} 3\n", text, StringComparison.Ordinal);
        var (textExit, textOutput) = Promtool.Check(text);
        Assert.True(textExit == 0, $"promtool check metrics failed ({textExit}):\n{textOutput}\n--- exposition ---\n{text}");
    }

    [Fact]
    public async Task Collector_exemplars_are_in_protobuf_on_the_counter_and_the_buckets()
    {
        var registry = new MetricRegistry();
        registry.Register(new ExemplarCollector());
        using var stream = new MemoryStream();
        await registry.WriteAsync(stream, ExpositionFormat.Protobuf, TestContext.Current.CancellationToken);
        var families = ProtoMessage.ReadDelimited(stream.ToArray()).ToDictionary(f => f.String(1));

        var counters = families["collected_hits_total"].Messages(4);
        var exemplar = counters[0].Message(3)!.Message(2)!;
        Assert.Equal(("trace_id", "c1"), exemplar.Messages(1).Select(l => (l.String(1), l.String(2))).Single());
        Assert.Equal(1, exemplar.Double(2));
        Assert.Equal((1_700_000_000UL, 500_000_000UL), (exemplar.Message(3)!.Varint(1), exemplar.Message(3)!.Varint(2)));
        Assert.False(counters[1].Message(3)!.Has(2));

        // The +Inf bucket is implied by the count in protobuf, so only the finite buckets carry theirs.
        var buckets = families["collected_wait_seconds"].Messages(4).Single().Message(7)!.Messages(3);
        Assert.Equal(2, buckets.Count);
        Assert.False(buckets[0].Has(3));
        var bucket = buckets[1].Message(3)!;
        Assert.Equal([("trace_id", "b1"), ("span_id", "s1")], bucket.Messages(1).Select(l => (l.String(1), l.String(2))));
        Assert.Equal(0.5, bucket.Double(2));
    }

    [Fact]
    public void Bucket_exemplars_must_match_the_bounds()
    {
        var error = Assert.Throws<ArgumentException>(() => MetricSnapshot.Histogram("h", "H.", [], [1], [new HistogramSample([], [1, 2], 1) { Exemplars = [BucketExemplar] }]));
        Assert.Contains("1 bucket exemplars for 2 bounds", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Protobuf_writes_the_unit_of_every_family_that_has_one()
    {
        var registry = new MetricRegistry();
        new Counter("sent_bytes_total", "Sent.", registry: registry, unit: "bytes").Inc(7);
        new Histogram("wait_seconds", "Waits.", registry: registry, buckets: [1], unit: "seconds").Observe(0.5);
        new Gauge("temperature_celsius", "Temperature.", registry: registry, unit: "celsius").Set(21);
        new Gauge("plain", "No unit.", registry: registry).Set(1);
        registry.Register(new UnitCollector());
        using var stream = new MemoryStream();
        await registry.WriteAsync(stream, ExpositionFormat.Protobuf, TestContext.Current.CancellationToken);
        var families = ProtoMessage.ReadDelimited(stream.ToArray()).ToDictionary(f => f.String(1));

        // MetricFamily.unit is field 5 of client_model's metrics.proto.
        Assert.Equal("bytes", families["sent_bytes_total"].String(5));
        Assert.Equal("seconds", families["wait_seconds"].String(5));
        Assert.Equal("celsius", families["temperature_celsius"].String(5));
        Assert.Equal("bytes", families["collected_size_bytes"].String(5));
        Assert.False(families["plain"].Has(5));
        Assert.False(families["collected_plain"].Has(5));

        // The unit does not disturb the other fields.
        Assert.Equal(7, families["sent_bytes_total"].Messages(4).Single().Message(3)!.Double(1));
        Assert.Equal(1UL, families["wait_seconds"].Messages(4).Single().Message(7)!.Varint(1));
    }

    private sealed class ExemplarCollector : ICollector
    {
        public IReadOnlyList<string> MetricNames => ["collected_hits_total", "collected_wait_seconds"];

        public IEnumerable<MetricSnapshot> Collect()
        {
            yield return new MetricSnapshot("collected_hits_total", "Hits.", MetricType.Counter, ["route"], [new Sample(["/a"], 3) { Exemplar = CounterExemplar }, new Sample(["/b"], 4)]);
            yield return MetricSnapshot.Histogram("collected_wait_seconds", "Waits.", [], [0.5, 1], [new HistogramSample([], [1, 2, 3], 8) { Exemplars = [null, BucketExemplar, InfExemplar] }], unit: "seconds");
        }
    }

    private sealed class UnitCollector : ICollector
    {
        public IReadOnlyList<string> MetricNames => ["collected_size_bytes", "collected_plain"];

        public IEnumerable<MetricSnapshot> Collect()
        {
            yield return new MetricSnapshot("collected_size_bytes", "Size.", MetricType.Gauge, [], [new Sample([], 5)], unit: "bytes");
            yield return MetricSnapshot.Gauge("collected_plain", "Plain.", 1);
        }
    }
}
