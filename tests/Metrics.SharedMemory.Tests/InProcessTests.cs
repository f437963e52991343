using Metrics.Backends.SharedMemory;
using Metrics.Tests;

namespace Metrics.SharedMemory.Tests;

public sealed class InProcessTests
{
    private static readonly MetricDescriptor Gauge = new("inproc_gauge", "", MetricType.Gauge, ["k"]);

    [Fact]
    public void Updates_on_an_existing_value_allocate_nothing()
    {
        using var store = new Store();
        var counter = store.Create(new MetricDescriptor("alloc_counter_total", "", MetricType.Counter));
        var liveSum = store.Create(new MetricDescriptor("alloc_livesum", "", MetricType.Gauge, gaugeAggregation: GaugeAggregation.LiveSum));
        var mostRecent = store.Create(new MetricDescriptor("alloc_recent", "", MetricType.Gauge, gaugeAggregation: GaugeAggregation.LiveMostRecent));
        var backends = new[] { counter, liveSum, mostRecent };
        var i = 0;
        Allocations.AssertNone("Inc, Dec and Set", () => Exercise(backends, i++), calls: 100_000);

        // The last call set i - 1, then added 1.
        Assert.Equal(i, counter.Get());

        static void Exercise(SharedMemoryBackend[] backends, int i)
        {
            foreach (var backend in backends)
            {
                backend.Inc(1);
                backend.Dec(0.5);
                backend.Set(i);
                backend.Inc(1);
            }
        }
    }

    [Fact]
    public void A_large_collection_stays_off_the_large_object_heap()
    {
        // Each chunk of collected values must stay under the 85,000-byte threshold: a large object every scrape brings full
        // collections, which cost the scrape several times its own work.
        using var store = new Store();
        var family = new MetricDescriptor("loh_requests_total", "", MetricType.Counter, ["k"]);
        const int series = 3_000;
        for (var i = 0; i < series; i++)
        {
            store.Create(family.WithLabelValues([i.ToString(System.Globalization.CultureInfo.InvariantCulture)])).Inc(i);
        }

        var collected = store.Collect(family);
        Assert.Equal(series, collected.Count);
        Assert.Equal((series - 1) * series / 2.0, collected.Sum(v => v.Value));
        var chunks = (CollectedValue[][])typeof(SharedMemoryBackend).Assembly.GetType("Metrics.Backends.CollectedValueList", throwOnError: true)!
            .GetField("_chunks", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(collected)!;
        var used = chunks.Where(c => c is not null).ToArray();
        Assert.True(used.Length >= 2, $"{series} values fit in {used.Length} chunk(s); the test needs several");
        foreach (var chunk in used)
        {
            var bytes = chunk.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<CollectedValue>();
            Assert.True(chunk.Length >= 256 && bytes < 85_000, $"a chunk of {chunk.Length} values takes {bytes} bytes");
        }
    }

    [Fact]
    public void Doubles_round_trip_exactly()
    {
        using var store = new Store();
        double[] specials = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, -0.0, 1e-300, 1e300, double.Epsilon, 0.1 + 0.2];
        foreach (var mode in Enum.GetValues<GaugeAggregation>())
        {
            var gauge = store.Create(new MetricDescriptor($"exact_{mode}", "", MetricType.Gauge, gaugeAggregation: mode));
            foreach (var value in specials)
            {
                gauge.Set(value);
                Assert.Equal(BitConverter.DoubleToInt64Bits(value), BitConverter.DoubleToInt64Bits(gauge.Get()));
            }
        }

        var counter = store.Create(new MetricDescriptor("exact_total", "", MetricType.Counter));
        var expected = 0.0;
        for (var i = 0; i < 10; i++)
        {
            counter.Inc(0.1);
            expected += 0.1;
        }

        Assert.Equal(expected, counter.Get());
        Assert.Equal(expected, Assert.Single(store.Collect(new MetricDescriptor("exact_total", "", MetricType.Counter))).Value);
    }

    [Fact]
    public void A_new_value_reads_zero_and_reads_its_own_writes()
    {
        using var store = new Store();
        var gauge = store.Create(Gauge.WithLabelValues(["x"]));
        Assert.Equal(0, gauge.Get());
        gauge.Inc(5);
        gauge.Dec(2);
        Assert.Equal(3, gauge.Get());
        // A second instance of the same series in this process is the same value.
        Assert.Equal(3, store.Create(Gauge.WithLabelValues(["x"])).Get());
    }

    [Fact]
    public void Label_values_never_collide_whatever_their_characters()
    {
        using var store = new Store();
        var family = new MetricDescriptor("collide_total", "", MetricType.Counter, ["a", "b"]);
        string[][] labelSets =
        [
            ["", ""], ["", ","], [",", ""], ["a,b", ""], ["a", ",b"], ["a\"", "b"], ["a", "\"b"], ["a\nb", ""], ["a", "\nb"],
            ["ü", "日本"], ["\uD800", ""], ["\uDC00", ""], ["\uFFFD", ""], ["a=b", "c"], ["a", "=b,c"], ["\0", ""], ["", "\0"],
        ];
        for (var i = 0; i < labelSets.Length; i++)
        {
            store.Create(family.WithLabelValues(labelSets[i])).Inc(i + 1);
        }

        for (var i = 0; i < labelSets.Length; i++)
        {
            Assert.Equal(i + 1, store.Create(family.WithLabelValues(labelSets[i])).Get());
        }

        var collected = store.Collect(family);
        Assert.Equal(labelSets.Length, collected.Count);
        for (var i = 0; i < labelSets.Length; i++)
        {
            Assert.Equal(i + 1, Assert.Single(collected, v => v.LabelValues.SequenceEqual(labelSets[i])).Value);
        }

        // Name/label boundaries, buckets and metric kinds are separate values too.
        store.Create(new MetricDescriptor("collide", "", MetricType.Counter, ["a"], ["_total"])).Inc(100);
        Assert.Equal(1, store.Create(family.WithLabelValues(labelSets[0])).Get());
        var histogram = new MetricDescriptor("collide_hist", "", MetricType.Histogram, [], buckets: [0.0, 1, double.PositiveInfinity]);
        store.Create(histogram, HistogramBucket.ForUpperBound(0)).Inc(1);
        store.Create(histogram, HistogramBucket.ForUpperBound(1)).Inc(2);
        store.Create(histogram, HistogramBucket.ForUpperBound(double.PositiveInfinity)).Inc(3);
        store.Create(histogram, HistogramBucket.Sum).Inc(4);
        Assert.Equal(1, store.Create(histogram, HistogramBucket.ForUpperBound(-0.0)).Get());
        Assert.Equal(4, store.Collect(histogram).Count);
    }

    [Fact]
    public void Concurrent_threads_lose_no_increment()
    {
        using var store = new Store();
        var counter = store.Create(new MetricDescriptor("threads_total", "", MetricType.Counter));
        var liveSum = store.Create(new MetricDescriptor("threads_livesum", "", MetricType.Gauge, gaugeAggregation: GaugeAggregation.LiveSum));
        var threads = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
        {
            for (var i = 0; i < 250_000; i++)
            {
                counter.Inc(1);
                liveSum.Inc(1);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal(1_000_000, counter.Get());
        Assert.Equal(1_000_000, liveSum.Get());
    }

    [Fact]
    public void A_full_store_refuses_new_series_with_a_clear_error_and_stays_consistent()
    {
        var size = SharedMemoryStore.DataStart(4, 64) + (64 * 1024);
        using var store = new Store(new Dictionary<string, string?>
        {
            ["MaxSize"] = size.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["InitialSize"] = size.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["MaxProcesses"] = "4",
            ["IndexBuckets"] = "64",
        });
        var family = new MetricDescriptor("full_total", "", MetricType.Counter, ["i"]);
        var refusedBefore = SharedMemoryBackend.RefusedSeries;
        var created = new List<SharedMemoryBackend>();
        var error = Assert.Throws<SharedMemoryStoreFullException>((Action)(() =>
        {
            for (var i = 0; ; i++)
            {
                created.Add(store.Create(family.WithLabelValues([i.ToString(System.Globalization.CultureInfo.InvariantCulture)])));
                created[^1].Inc(i);
            }
        }));

        Assert.Equal("Metrics:BackendConfig:MaxSize", error.SettingKey);
        Assert.Contains("Metrics:BackendConfig:MaxSize", error.Message, StringComparison.Ordinal);
        Assert.Contains("full_total{i=", error.Message, StringComparison.Ordinal);
        Assert.True(SharedMemoryBackend.RefusedSeries > refusedBefore);
        Assert.True(created.Count > 100);

        // Existing series keep working, can be found again, and the scrape reads all of them.
        created[0].Inc(10);
        Assert.Equal(10, store.Create(family.WithLabelValues(["0"])).Get());
        var collected = store.Collect(family);
        Assert.Equal(created.Count, collected.Count);
        Assert.Equal(Enumerable.Range(0, created.Count).Sum(i => (double)i) + 10, collected.Sum(v => v.Value));
        Assert.Throws<SharedMemoryStoreFullException>(() => store.Create(family.WithLabelValues(["again"])));
    }

    [Theory]
    [InlineData("MaxSize", "lots", "Metrics:BackendConfig:MaxSize")]
    [InlineData("MaxSize", "1000", "Metrics:BackendConfig:MaxSize")]
    [InlineData("InitialSize", "1", "Metrics:BackendConfig:InitialSize")]
    [InlineData("MaxProcesses", "0", "Metrics:BackendConfig:MaxProcesses")]
    [InlineData("IndexBuckets", "1000", "Metrics:BackendConfig:IndexBuckets")]
    public void Bad_settings_fail_naming_the_key(string key, string value, string fullKey)
    {
        using var store = new Store(new Dictionary<string, string?> { [key] = value });
        var error = Assert.Throws<BackendConfigException>(() => SharedMemoryBackend.Initialize(store.Config));
        Assert.Equal(fullKey, error.Key);
        Assert.Contains(fullKey, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Declares_itself_shared_with_a_schema_and_uses_tmpfs_by_default_on_Linux()
    {
        // Updates are written through at once: nothing is batched.
        Assert.Equal(BackendCapabilities.SharedAcrossProcesses | BackendCapabilities.RecordsSchema | BackendCapabilities.NativeHistogramBuckets | BackendCapabilities.AllGaugeAggregations | BackendCapabilities.RemovesSeries | BackendCapabilities.CountsSeries | BackendCapabilities.Exemplars, SharedMemoryBackend.Capabilities);
        if (OperatingSystem.IsLinux() && Directory.Exists("/dev/shm"))
        {
            Assert.StartsWith("/dev/shm/", SharedMemoryBackend.DefaultPath, StringComparison.Ordinal);
        }
        else
        {
            Assert.StartsWith(Path.GetTempPath(), SharedMemoryBackend.DefaultPath, StringComparison.Ordinal);
        }
    }
}
