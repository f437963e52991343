namespace Metrics.Tests;

/// <summary>Native histograms: bucket indices, schema reduction and its exact merge, and their protobuf exposition.</summary>
public class NativeHistogramTests
{
    private const string PrometheusAccept =
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

    public static TheoryData<double, double[], int, double, (int Offset, int Length)[], long[], bool> ClientGolangCases() => new()
    {
        // From client_golang's TestNativeHistogram: factor, observations, schema, zero count, spans, deltas, negative.
        { 1.1, [0, 1, 2, 3], 3, 1, [(0, 1), (7, 1), (4, 1)], [1, 0, 0], false },
        { 1.2, [0, 1, 1.2, 1.4, 1.8, 2], 2, 1, [(0, 5)], [1, -1, 2, -2, 2], false },
        { 4, [0.0156251, 0.0625, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 3.5, 5, 6, 7, 33.33], -1, 0, [(-2, 6)], [2, 0, 0, 2, -1, -2], false },
        { 17, [0.0156251, 0.0625, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 3.5, 5, 6, 7, 33.33], -2, 0, [(-1, 4)], [2, 2, 3, -6], false },
        { 1.2, [0, -1, -1.2, -1.4, -1.8, -2], 2, 1, [(0, 5)], [1, -1, 2, -2, 2], true },
    };

    [Theory]
    [MemberData(nameof(ClientGolangCases))]
    public async Task Buckets_spans_and_deltas_match_client_golang(double factor, double[] observations, int schema, double zeroCount, (int Offset, int Length)[] spans, long[] deltas, bool negative)
    {
        var registry = new MetricRegistry();
        var histogram = new Histogram("h", "H.", registry: registry, native: new NativeHistogramOptions { BucketFactor = factor });
        foreach (var v in observations)
        {
            histogram.Observe(v);
        }

        var h = (await ScrapeAsync(registry)).Single().Messages(4).Single().Message(7)!;
        Assert.Equal(schema, h.SInt(5));
        Assert.Equal((ulong)observations.Length, h.Varint(1));
        Assert.Equal(observations.Sum(), h.Double(2), 9);
        Assert.Equal(NativeHistogramOptions.DefaultZeroThreshold, h.Double(6));
        Assert.Equal((ulong)zeroCount, h.Varint(7));
        var (spanField, deltaField, otherSpan) = negative ? (9, 10, 12) : (12, 13, 9);
        Assert.Equal(spans, h.Messages(spanField).Select(s => ((int)s.SInt(1), (int)s.Varint(2))).ToArray());
        Assert.Equal(deltas, h.SInts(deltaField).ToArray());
        Assert.Empty(h.Messages(otherSpan));
        Assert.Empty(h.Messages(3)); // declared without classic buckets: none but the implied +Inf
    }

    [Theory]
    [InlineData(1.0, 3, 0)]
    [InlineData(2.0, 3, 8)]
    [InlineData(3.0, 3, 13)] // 2^(12/8) = 2.83 < 3 <= 2^(13/8) = 3.08
    [InlineData(1.0, 0, 0)]
    [InlineData(1.5, 0, 1)]
    [InlineData(0.5, -1, 0)] // (0.25, 1]
    [InlineData(4.0, -1, 1)] // (1, 4]
    [InlineData(5.0, -2, 1)] // (1, 16]
    [InlineData(double.MaxValue, 0, 1024)]
    [InlineData(double.PositiveInfinity, 0, 1025)]
    [InlineData(double.Epsilon, 0, -1073)] // 2^-1074 is the upper bound of bucket -1074 at schema 0
    public void Bucket_index_of_known_values(double value, int schema, int expected)
    {
        var actual = NativeBuckets.Index(value, schema);
        // double.Epsilon is 2^-1074: a power of two closes the bucket below.
        Assert.Equal(value == double.Epsilon ? -1074 : expected, actual);
    }

    [Fact]
    public void Bucket_index_is_the_bucket_whose_bounds_hold_the_value()
    {
        var random = new Random(42);
        for (var schema = HistogramBucket.MinNativeSchema; schema <= HistogramBucket.MaxNativeSchema; schema++)
        {
            for (var i = 0; i < 2000; i++)
            {
                var value = Math.Exp((random.NextDouble() - 0.5) * 80);
                var index = NativeBuckets.Index(value, schema);
                var upper = Math.Pow(2, index * Math.Pow(2, -schema));
                var lower = Math.Pow(2, (index - 1) * Math.Pow(2, -schema));
                // Bounds computed with Pow may be one ulp off the table's: allow that much at the edges.
                Assert.True(value <= upper * (1 + 1e-15) && value > lower * (1 - 1e-15), $"{value} in bucket {index} of schema {schema}: ({lower}, {upper}]");
            }
        }
    }

    [Fact]
    public void The_table_lookup_agrees_with_the_binary_search_on_every_bound_its_neighbours_and_random_values()
    {
        var random = new Random(7);
        for (var schema = 0; schema <= HistogramBucket.MaxNativeSchema; schema++)
        {
            var values = new List<double>();
            foreach (var bound in NativeBucketBounds.BySchema[schema].Append(1.0))
            {
                // Exactly on a bound (it closes its bucket), one ulp either side, in several octaves.
                foreach (var scale in new[] { 1.0, 2.0, 0.125, 1024.0, Math.Pow(2, -1000), Math.Pow(2, 1000) })
                {
                    values.AddRange([bound * scale, Math.BitIncrement(bound * scale), Math.BitDecrement(bound * scale)]);
                }
            }

            for (var i = 0; i < 20_000; i++)
            {
                values.Add(Math.Exp((random.NextDouble() - 0.5) * 1400));
            }

            values.AddRange([double.MaxValue, double.Epsilon, 2.2250738585072014E-308, Math.BitDecrement(2.2250738585072014E-308)]);
            foreach (var value in values)
            {
                Assert.True(NativeBuckets.IndexBySearch(value, schema) == NativeBuckets.Index(value, schema), $"{value:R} at schema {schema}");
            }
        }
    }

    [Fact]
    public void Reducing_a_bucket_to_a_coarser_schema_is_exact_for_every_value()
    {
        var random = new Random(7);
        var values = Enumerable.Range(0, 5000).Select(_ => Math.Exp((random.NextDouble() - 0.5) * 100))
            .Concat(Enumerable.Range(-40, 80).Select(e => Math.Pow(2, e))) // powers of two: every schema's boundaries
            .Concat(NativeBucketBounds.BySchema[8].Select(b => b * 8)) // finest boundaries
            .ToArray();
        for (var fine = HistogramBucket.MinNativeSchema; fine <= HistogramBucket.MaxNativeSchema; fine++)
        {
            for (var coarse = HistogramBucket.MinNativeSchema; coarse <= fine; coarse++)
            {
                foreach (var v in values)
                {
                    Assert.Equal(NativeBuckets.Index(v, coarse), NativeBuckets.Reduce(NativeBuckets.Index(v, fine), fine, coarse));
                }
            }
        }
    }

    [Fact]
    public void Buckets_written_at_several_schemas_merge_into_the_coarsest_exactly()
    {
        var random = new Random(3);
        var values = Enumerable.Range(0, 3000).Select(_ => (random.NextDouble() - 0.3) * 1000).ToArray();
        var merged = new NativeHistogramData(3, 0);
        var expected = new Dictionary<(bool, int), double>();
        for (var i = 0; i < values.Length; i++)
        {
            var v = values[i];
            var schema = i % 3 == 0 ? 5 : i % 3 == 1 ? 2 : 0; // three "processes" at three schemas
            var negative = v < 0;
            var index = NativeBuckets.Index(Math.Abs(v), schema);
            merged.Add(negative ? HistogramBucket.NativeNegative(schema, index) : HistogramBucket.NativePositive(schema, index), 1);
            var key = (negative, NativeBuckets.Index(Math.Abs(v), 0));
            expected[key] = expected.GetValueOrDefault(key) + 1;
        }

        merged.Complete();
        Assert.Equal(0, merged.Schema);
        Assert.Equal(values.Length, merged.Count);
        var actual = merged.Positive.Select(p => ((false, p.Index), p.Count)).Concat(merged.Negative.Select(n => ((true, n.Index), n.Count))).ToDictionary(p => p.Item1, p => p.Count);
        Assert.Equal(expected.OrderBy(p => p.Key).ToArray(), actual.OrderBy(p => p.Key).ToArray());
    }

    [Fact]
    public async Task Exceeding_the_bucket_limit_halves_the_resolution_and_loses_no_observation()
    {
        var registry = new MetricRegistry();
        var histogram = new Histogram("h", "H.", registry: registry, native: new NativeHistogramOptions { BucketFactor = 1.01, MaxBucketNumber = 10 });
        Assert.Equal(7, histogram.NativeSchema);
        var values = Enumerable.Range(1, 200).Select(i => i * 0.37).ToArray();
        foreach (var v in values)
        {
            histogram.Observe(v);
        }

        Assert.True(histogram.NativeSchema < 7, $"schema {histogram.NativeSchema}");
        var h = (await ScrapeAsync(registry)).Single().Messages(4).Single().Message(7)!;
        var schema = (int)h.SInt(5);
        Assert.Equal(histogram.NativeSchema, schema);
        // Rebuild the buckets from spans and deltas and compare with an independent bucketing at the exposed schema.
        var decoded = new Dictionary<int, long>();
        var deltas = h.SInts(13);
        int index = 0, d = 0;
        long count = 0;
        foreach (var span in h.Messages(12))
        {
            index += (int)span.SInt(1);
            for (var j = 0; j < (int)span.Varint(2); j++, index++)
            {
                count += deltas[d++];
                if (count != 0)
                {
                    decoded[index] = count;
                }
            }
        }

        var expected = values.GroupBy(v => (int)Math.Ceiling(Math.Log2(v) * Math.Pow(2, schema))).ToDictionary(g => g.Key, g => (long)g.Count());
        Assert.Equal(expected.OrderBy(p => p.Key).ToArray(), decoded.OrderBy(p => p.Key).ToArray());
        Assert.Equal(200UL, h.Varint(1));
        Assert.True(decoded.Count <= 10, $"{decoded.Count} buckets exposed");
    }

    [Theory]
    [InlineData(new[] { 0.001, 0.002, 0.05, 0.3, 2.5, 0.0011 })] // close together: looked up in a dense array
    [InlineData(new[] { 1e-30, 0.5, 1e300, -1e-20, -3.0, 7.0 })] // keys thousands apart: looked up by hashing (all above the zero threshold)
    [InlineData(new[] { 0.5, 0.6, 1e250, 0.7, -0.5, 0.8 })] // dense first, then hashing once a far bucket arrives
    public void Every_observation_finds_its_own_bucket_whether_keys_are_close_or_far_apart(double[] values)
    {
        var histogram = new Histogram("h", "H.", registry: new MetricRegistry(), native: new NativeHistogramOptions { BucketFactor = 1.1 });
        for (var round = 1; round <= 3; round++)
        {
            foreach (var v in values)
            {
                histogram.Observe(v);
            }
        }

        var expected = values.GroupBy(v => (v < 0, NativeBuckets.Index(Math.Abs(v), 3))).ToDictionary(g => g.Key, g => 3.0 * g.Count());
        var actual = histogram.NativeValues!.Entries.ToDictionary(e => (e.Bucket.Part == HistogramPart.NativeNegative, e.Bucket.Index), e => e.Value.Get());
        Assert.Equal(expected.OrderBy(p => p.Key).ToArray(), actual.OrderBy(p => p.Key).ToArray());
    }

    [Theory]
    [InlineData(0, 0.001, 1000.0)]
    [InlineData(3, 0.001, 1000.0)]
    [InlineData(5, 0.05, 20.0)]
    [InlineData(8, 1.0, 2.0)] // one power of two: the finest schema's direct table covers no more
    [InlineData(8, 0.25, 4.0)] // too wide for the direct table: every observation takes the other paths
    public void Observations_on_bounds_and_their_neighbours_count_in_the_bucket_the_binary_search_gives(int schema, double low, double high)
    {
        // Every bound in [low, high] and one ulp either side, plus random values: the first round creates the buckets,
        // the next two find them through the direct table (values in existing buckets) and must agree with the search.
        var values = new List<double>();
        var perOctave = NativeBucketBounds.BySchema[schema];
        for (var octave = Math.Floor(Math.Log2(low)); octave <= Math.Ceiling(Math.Log2(high)); octave++)
        {
            foreach (var fraction in perOctave)
            {
                var bound = fraction * Math.Pow(2, octave);
                if (bound >= low && bound <= high)
                {
                    values.AddRange([bound, Math.BitIncrement(bound), Math.BitDecrement(bound)]);
                }
            }
        }

        var random = new Random(schema);
        for (var i = 0; i < 2000; i++)
        {
            values.Add(low * Math.Pow(high / low, random.NextDouble()));
        }

        var histogram = new Histogram("h", "H.", registry: new MetricRegistry(),
            native: new NativeHistogramOptions { BucketFactor = Math.Pow(2, Math.Pow(2, -schema)) * (1 + 1e-9), MaxBucketNumber = 0 });
        Assert.Equal(schema, histogram.NativeSchema);
        for (var round = 0; round < 3; round++)
        {
            foreach (var value in values)
            {
                histogram.Observe(value);
            }
        }

        var expected = values.GroupBy(v => NativeBuckets.IndexBySearch(v, schema)).ToDictionary(g => g.Key, g => 3.0 * g.Count());
        var actual = histogram.NativeValues!.Entries.ToDictionary(e => e.Bucket.Index, e => e.Value.Get());
        Assert.Equal(expected.OrderBy(p => p.Key).ToArray(), actual.OrderBy(p => p.Key).ToArray());
        Assert.All(histogram.NativeValues.Entries, e => Assert.Equal(HistogramPart.NativePositive, e.Bucket.Part));
    }

    [Fact]
    public void Native_bucket_parts_round_trip_through_text_and_number()
    {
        HistogramBucket[] parts =
        [
            HistogramBucket.NativePositive(3, -12), HistogramBucket.NativeNegative(3, -12), HistogramBucket.NativePositive(-4, int.MaxValue),
            HistogramBucket.NativeNegative(8, int.MinValue), HistogramBucket.NativeZero, HistogramBucket.NativePositive(0, 0),
        ];
        foreach (var part in parts)
        {
            Assert.Equal(part, HistogramBucket.Parse(part.ToString()));
            Assert.Equal(part, HistogramBucket.FromNativeKey(part.NativeKey));
            Assert.True(part.IsNative);
        }

        Assert.Equal(parts.Length, parts.Select(p => p.ToString()).Distinct().Count());
        Assert.Equal(parts.Length, parts.Select(p => p.NativeKey).Distinct().Count());
        Assert.Equal("pos:3:-12", HistogramBucket.NativePositive(3, -12).ToString());
        Assert.NotEqual(HistogramBucket.NativePositive(3, 1), HistogramBucket.NativePositive(2, 1));
        Assert.NotEqual(HistogramBucket.ForUpperBound(0), HistogramBucket.NativeZero);
        Assert.False(HistogramBucket.Sum.IsNative);
        Assert.Equal(0, HistogramBucket.ForUpperBound(1).NativeKey);
        Assert.Throws<FormatException>(() => HistogramBucket.Parse("pos:9:1"));
        Assert.Throws<FormatException>(() => HistogramBucket.Parse("pos:03:1"));
        Assert.Throws<FormatException>(() => HistogramBucket.FromNativeKey(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => HistogramBucket.NativePositive(-5, 0));
    }

    [Theory]
    [InlineData(true)] // native + classic
    [InlineData(false)] // native only: no +Inf write either
    public void Native_observe_on_an_existing_bucket_allocates_nothing(bool classic)
    {
        var registry = new MetricRegistry();
        var histogram = new Histogram("h", "H.", registry: registry, buckets: classic ? [0.1, 1] : null, native: new NativeHistogramOptions());
        double[] values = [0.3, -2, 0, 17.5];
        foreach (var v in values)
        {
            histogram.Observe(v);
        }

        var calls = 0;
        Allocations.AssertNone("native observe", () => histogram.Observe(values[calls++ & 3]));
        Assert.Equal(4 + calls, histogram.NativeValues!.Count());
        Assert.Contains($"h_count {4 + calls}\n", registry.Render(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1.1, NativeHistogramOptions.DefaultZeroThreshold)] // schema 3
    [InlineData(2.0, NativeHistogramOptions.DefaultZeroThreshold)] // schema 0
    [InlineData(4.0, 0.0)] // schema -1: no mantissa table; subnormal numbers in buckets
    [InlineData(1.0001, 0.0)] // schema 8
    [InlineData(1.1, 0.5)] // wide zero bucket
    public async Task Native_only_count_comes_from_the_native_buckets_in_every_format(double factor, double zeroThreshold)
    {
        var registry = new MetricRegistry();
        var histogram = new Histogram("h", "H.", registry: registry, native: new NativeHistogramOptions { BucketFactor = factor, ZeroThreshold = zeroThreshold });
        double[] values = [0, 1e-300, 5e-324, 0.003, 0.003, 1, 2, -2, -0.7, 1e300, double.PositiveInfinity, double.NegativeInfinity];
        for (var round = 0; round < 3; round++)
        {
            foreach (var v in values)
            {
                histogram.Observe(v);
            }
        }

        // NaN takes the zero bucket's comparison path (it is not above the threshold) and must still be refused.
        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.Observe(double.NaN));

        // The +Inf bucket itself is never written; every observation is in exactly one native bucket.
        Assert.Equal(0, histogram.BucketValues![0].Get());
        var schema = histogram.NativeSchema!.Value;
        var expected = values.GroupBy(v => Math.Abs(v) <= zeroThreshold ? (0, 0) : (v < 0 ? -1 : 1, NativeBuckets.IndexBySearch(Math.Abs(v), schema)))
            .ToDictionary(g => g.Key, g => 3.0 * g.Count());
        var actual = histogram.NativeValues!.Entries.ToDictionary(
            e => e.Bucket.Part switch { HistogramPart.NativeZero => (0, 0), HistogramPart.NativeNegative => (-1, e.Bucket.Index), _ => (1, e.Bucket.Index) },
            e => e.Value.Get());
        Assert.Equal(expected.OrderBy(p => p.Key).ToArray(), actual.OrderBy(p => p.Key).ToArray());

        var count = 3 * values.Length;
        Assert.Contains($"h_bucket{{le=\"+Inf\"}} {count}\n", registry.Render(), StringComparison.Ordinal);
        Assert.Contains($"h_count {count}\n", registry.Render(), StringComparison.Ordinal);
        Assert.Contains($"h_count {count}\n", registry.Render(ExpositionFormat.OpenMetrics), StringComparison.Ordinal);
        var h = (await ScrapeAsync(registry)).Single().Messages(4).Single().Message(7)!;
        Assert.Equal((ulong)count, h.Varint(1));
    }

    [Fact]
    public void Threads_observing_while_buckets_are_created_and_the_schema_halves_lose_no_observation()
    {
        // Every thread creates new buckets as it goes, so the published tables change (and the schema drops) while the
        // others count through them: each observation must still land exactly once, in its own bucket.
        var histogram = new Histogram("h", "H.", registry: new MetricRegistry(), native: new NativeHistogramOptions { BucketFactor = 1.01, MaxBucketNumber = 40 });
        const int threads = 4;
        const int perThread = 20_000;
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (var i = 0; i < perThread; i++)
            {
                histogram.Observe(Value(t, i));
            }
        })).ToArray();
        foreach (var worker in workers)
        {
            worker.Start();
        }

        foreach (var worker in workers)
        {
            worker.Join();
        }

        Assert.True(histogram.NativeSchema < 7, $"schema {histogram.NativeSchema}");
        Assert.Equal(threads * perThread, histogram.NativeValues!.Count());

        // Merged to the final schema, the buckets hold exactly what an independent bucketing of the same values gives.
        var schema = histogram.NativeSchema!.Value;
        var merged = new NativeHistogramData(schema, NativeHistogramOptions.DefaultZeroThreshold);
        foreach (var entry in histogram.NativeValues.Entries)
        {
            merged.Add(entry.Bucket, entry.Value.Get());
        }

        merged.Complete();
        var values = Enumerable.Range(0, threads).SelectMany(t => Enumerable.Range(0, perThread).Select(i => Value(t, i)));
        var expected = values.GroupBy(v => (v < 0, NativeBuckets.IndexBySearch(Math.Abs(v), merged.Schema))).ToDictionary(g => g.Key, g => (double)g.Count());
        var actual = merged.Positive.Select(p => ((false, p.Index), p.Count)).Concat(merged.Negative.Select(n => ((true, n.Index), n.Count))).ToDictionary(p => p.Item1, p => p.Count);
        Assert.Equal(expected.OrderBy(p => p.Key).ToArray(), actual.OrderBy(p => p.Key).ToArray());

        // Spread over six powers of two on both sides, each thread walking them in its own order.
        static double Value(int thread, int i) => (((i * 7919) + (thread * 104_729)) % 2 == 0 ? 1 : -1) * Math.Pow(2, ((i * 7919) + (thread * 104_729)) % 6000 / 1000.0);
    }

    [Fact]
    public async Task Protobuf_carries_every_metric_type_with_labels_and_classic_buckets()
    {
        var registry = new MetricRegistry();
        new Counter("requests_total", "Requests.", ["method"], registry: registry).Labels("GET").Inc(3);
        new Gauge("temperature", "Temp \"C\".", registry: registry).Set(-1.5);
        new Summary("latency", "L.", registry: registry).Observe(2.5);
        var classic = new Histogram("size", "S.", registry: registry, buckets: [1, 10]);
        classic.Observe(0.5);
        classic.Observe(5);
        classic.Observe(50);
        var both = new Histogram("both", "B.", ["route"], registry: registry, buckets: [1], native: new NativeHistogramOptions());
        both.Labels("/a").Observe(0.5);
        both.Labels("/a").Observe(3);

        var families = (await ScrapeAsync(registry)).ToDictionary(f => f.String(1));
        Assert.Equal(["requests_total", "temperature", "latency", "size", "both"], families.Keys);

        var counter = families["requests_total"];
        Assert.Equal(0UL, counter.Varint(3));
        Assert.Equal("Requests.", counter.String(2));
        var metric = counter.Messages(4).Single();
        Assert.Equal(("method", "GET"), metric.Messages(1).Select(l => (l.String(1), l.String(2))).Single());
        Assert.Equal(3, metric.Message(3)!.Double(1));
        Assert.True(metric.Message(3)!.Message(3)!.Varint(1) > 1_600_000_000); // created timestamp

        Assert.Equal(1UL, families["temperature"].Varint(3));
        Assert.Equal("Temp \"C\".", families["temperature"].String(2));
        Assert.Equal(-1.5, families["temperature"].Messages(4).Single().Message(2)!.Double(1));

        Assert.Equal(2UL, families["latency"].Varint(3));
        var summary = families["latency"].Messages(4).Single().Message(4)!;
        Assert.Equal((1UL, 2.5), (summary.Varint(1), summary.Double(2)));

        Assert.Equal(4UL, families["size"].Varint(3));
        var size = families["size"].Messages(4).Single().Message(7)!;
        Assert.Equal((3UL, 55.5), (size.Varint(1), size.Double(2)));
        Assert.Equal([(1UL, 1.0), (2UL, 10.0)], size.Messages(3).Select(b => (b.Varint(1), b.Double(2))));
        Assert.False(size.Has(5)); // classic only: no schema

        var mixed = families["both"].Messages(4).Single().Message(7)!;
        Assert.Equal(2UL, mixed.Varint(1));
        Assert.Equal([(1UL, 1.0)], mixed.Messages(3).Select(b => (b.Varint(1), b.Double(2))));
        Assert.Equal(3, mixed.SInt(5));
        // 0.5 is the upper bound of bucket -8 at schema 3, 3 lies in bucket 13: two spans, the gap too wide to fill.
        Assert.Equal([(-8L, 1UL), (20L, 1UL)], mixed.Messages(12).Select(s => (s.SInt(1), s.Varint(2))));
        Assert.Equal([1L, 0L], mixed.SInts(13));
    }

    [Fact]
    public void Accept_header_chooses_protobuf_only_when_asked_for_the_delimited_MetricFamily()
    {
        Assert.Equal(ExpositionFormat.Protobuf, Exposition.Negotiate(PrometheusAccept));
        Assert.Equal(ExpositionFormat.PrometheusText, Exposition.Negotiate("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"));
        Assert.Equal(ExpositionFormat.OpenMetrics, Exposition.Negotiate("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.4,application/openmetrics-text;version=1.0.0;q=0.5"));
        Assert.Equal(ExpositionFormat.PrometheusText, Exposition.Negotiate(null));
        Assert.Equal(Exposition.ProtobufContentType, Exposition.ContentType(ExpositionFormat.Protobuf));
    }

    [Fact]
    public async Task Text_formats_show_the_classic_buckets_of_a_native_histogram()
    {
        var registry = new MetricRegistry();
        var histogram = new Histogram("h", "H.", registry: registry, native: new NativeHistogramOptions());
        histogram.Observe(3);
        histogram.Observe(-1);
        var text = registry.Render();
        Assert.Contains("h_bucket{le=\"+Inf\"} 2\n", text, StringComparison.Ordinal);
        Assert.Contains("h_count 2\n", text, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => registry.Render(ExpositionFormat.Protobuf));
        using var response = await Metrics.Hosting.ScrapeResponse.RenderAsync(registry, PrometheusAccept, null, TestContext.Current.CancellationToken);
        Assert.Equal(Exposition.ProtobufContentType, response.ContentType);
        Assert.Equal("h", ProtoMessage.ReadDelimited(response.Body.Span).Single().String(1));
    }

    private static async Task<List<ProtoMessage>> ScrapeAsync(MetricRegistry registry)
    {
        using var stream = new MemoryStream();
        await registry.WriteAsync(stream, ExpositionFormat.Protobuf, TestContext.Current.CancellationToken);
        return ProtoMessage.ReadDelimited(stream.ToArray());
    }
}
