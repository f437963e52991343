using Metrics.Backends.SharedMemory;
using Metrics.Tests;

namespace Metrics.SharedMemory.Tests;

public sealed class ExemplarTests
{
    [Fact]
    public void Exemplar_recorded_in_one_process_is_collected_in_another_and_the_latest_by_timestamp_wins()
    {
        using var store = new Store();
        Worker.Run(store.FilePath, "exemplar", "first", "1700000100");
        Worker.Run(store.FilePath, "exemplar", "latest", "1700000300");
        // Written after "latest" but stamped earlier: it must not replace it.
        Worker.Run(store.FilePath, "exemplar", "older", "1700000200");

        var counter = Assert.Single(store.Collect(Store.Counter));
        Assert.Equal(3, counter.Value);
        var exemplar = Assert.IsType<RecordedExemplar>(counter.Exemplar);
        Assert.Equal(Exemplar.Of("trace_id", "latest"), exemplar.Labels);
        Assert.Equal(1, exemplar.Value);
        Assert.Equal(1_700_000_300, exemplar.TimestampUnixSeconds);

        var histogram = store.Collect(Store.Histogram);
        var bucket = Assert.Single(histogram, v => v.Bucket == HistogramBucket.ForUpperBound(0.5));
        Assert.Equal("latest", bucket.Exemplar!.Value.Labels[0].Value);
        Assert.Equal(0.25, bucket.Exemplar!.Value.Value);
        Assert.Null(Assert.Single(histogram, v => v.Bucket == HistogramBucket.Sum).Exemplar);
    }

    [Fact]
    public void Exemplar_recorded_here_is_read_by_a_second_value_object_of_the_same_series()
    {
        using var store = new Store();
        var writer = store.Create(Store.Counter.WithLabelValues(["GET", "/"]));
        var reader = store.Create(Store.Counter.WithLabelValues(["GET", "/"]));
        Assert.Null(reader.GetExemplar());

        writer.Inc(1);
        writer.RecordExemplar(new RecordedExemplar(Exemplar.Of("trace_id", "t1", "span_id", "s1"), 1, 1_700_000_000.25));

        var read = Assert.IsType<RecordedExemplar>(reader.GetExemplar());
        Assert.Equal(Exemplar.Of("trace_id", "t1", "span_id", "s1"), read.Labels);
        Assert.Equal(1_700_000_000.25, read.TimestampUnixSeconds);
        Assert.True(SharedMemoryBackend.Capabilities.HasFlag(BackendCapabilities.Exemplars));
    }

    [Fact]
    public void Longest_exemplar_round_trips_through_the_store()
    {
        using var store = new Store();
        var value = store.Create(Store.Counter.WithLabelValues(["GET", "/"]));
        // 128 characters, each a surrogate pair in UTF-16: the largest label set the record must hold.
        var longest = Exemplar.Of("t", string.Concat(Enumerable.Repeat("😀", 127)));
        value.RecordExemplar(new RecordedExemplar(longest, 1, 1));
        Assert.Equal(longest, value.GetExemplar()!.Value.Labels);
    }

    [Fact]
    public void Second_exemplar_of_a_value_allocates_nothing_and_takes_no_store_space()
    {
        using var store = new Store();
        var value = store.Create(Store.Counter.WithLabelValues(["GET", "/"]));
        var exemplar = new RecordedExemplar(Exemplar.Of("trace_id", "x"), 1, 1);
        value.RecordExemplar(exemplar);
        var used = store.Mapped.UsedBytes;
        var i = 0;
        Allocations.AssertNone("RecordExemplar", () => value.RecordExemplar(exemplar with { TimestampUnixSeconds = i++ }), calls: 1000);
        Assert.Equal(used, store.Mapped.UsedBytes);
    }
}
