using Metrics.Backends.SharedMemory;
using Metrics.Tests;

namespace Metrics.SharedMemory.Tests;

/// <summary>Native histogram buckets in a shared store: writers at different schemas merge exactly at a scrape.</summary>
public sealed class NativeHistogramTests
{
    [Fact]
    public async Task Writers_at_different_schemas_merge_into_the_coarsest_exactly()
    {
        using var store = new Store();
        var backend = ConfiguredBackend.Create<SharedMemoryBackend>(store.Config, "SharedMemory");
        await using var fine = new MetricRegistry(backend: backend);
        await using var coarse = new MetricRegistry(backend: backend);
        var a = new Histogram("shm_native_seconds", "Latency.", ["route"], registry: fine, native: new NativeHistogramOptions { BucketFactor = 1.01 });
        var b = new Histogram("shm_native_seconds", "Latency.", ["route"], registry: coarse, native: new NativeHistogramOptions { BucketFactor = 1.5 });
        Assert.Equal(7, a.Labels("/").NativeSchema);
        Assert.Equal(1, b.Labels("/").NativeSchema);
        var random = new Random(11);
        var values = Enumerable.Range(0, 400).Select(_ => (random.NextDouble() - 0.2) * 50).Append(0).ToArray();
        for (var i = 0; i < values.Length; i++)
        {
            (i % 2 == 0 ? a : b).Labels("/").Observe(values[i]);
        }

        using var stream = new MemoryStream();
        await fine.WriteAsync(stream, ExpositionFormat.Protobuf, TestContext.Current.CancellationToken);
        var h = ProtoMessage.ReadDelimited(stream.ToArray()).Single(f => f.String(1) == "shm_native_seconds").Messages(4).Single().Message(7)!;
        Assert.Equal(1, h.SInt(5));
        Assert.Equal((ulong)values.Length, h.Varint(1));
        Assert.Equal(1UL, h.Varint(7));
        Assert.Equal(Expected(values.Where(v => v > 0)), Decode(h, 12, 13));
        Assert.Equal(Expected(values.Where(v => v < 0).Select(v => -v)), Decode(h, 9, 10));
    }

    private static KeyValuePair<int, long>[] Expected(IEnumerable<double> magnitudes) =>
        [.. magnitudes.GroupBy(v => (int)Math.Ceiling(Math.Log2(v) * 2)).Select(g => KeyValuePair.Create(g.Key, (long)g.Count())).OrderBy(p => p.Key)];

    private static KeyValuePair<int, long>[] Decode(ProtoMessage h, int spanField, int deltaField)
    {
        var result = new SortedDictionary<int, long>();
        var deltas = h.SInts(deltaField);
        int index = 0, d = 0;
        long count = 0;
        foreach (var span in h.Messages(spanField))
        {
            index += (int)span.SInt(1);
            for (var j = 0; j < (int)span.Varint(2); j++, index++)
            {
                count += deltas[d++];
                if (count != 0)
                {
                    result[index] = count;
                }
            }
        }

        return [.. result];
    }
}
