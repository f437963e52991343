namespace Metrics.Tests;

public class MetricTests
{
    private readonly MetricRegistry _registry = new();

    [Fact]
    public void Counter_counts_and_refuses_to_go_down()
    {
        var counter = new Counter("jobs_total", "Jobs.", registry: _registry);
        Assert.Equal(0, counter.Value);
        counter.Inc();
        counter.Inc(2.5);
        Assert.Equal(3.5, counter.Value);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => counter.Inc(-1));
        Assert.Contains("only go up", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => counter.Inc(double.NaN));
        Assert.Equal(3.5, counter.Value);
    }

    [Fact]
    public void Gauge_goes_up_down_and_is_set()
    {
        var gauge = new Gauge("queue_length", "Queue.", registry: _registry);
        gauge.Inc(5);
        gauge.Dec(2);
        Assert.Equal(3, gauge.Value);
        gauge.Set(-7.25);
        Assert.Equal(-7.25, gauge.Value);
        gauge.Inc();
        gauge.Dec();
        Assert.Equal(-7.25, gauge.Value);
    }

    [Fact]
    public void Gauge_set_to_current_time_is_unix_seconds()
    {
        var gauge = new Gauge("last_run_timestamp_seconds", "Last run.", registry: _registry);
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        gauge.SetToCurrentTime();
        var after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        Assert.InRange(gauge.Value, before, after);
    }

    [Fact]
    public async Task Gauge_tracks_in_progress_with_using_and_await_using()
    {
        var gauge = new Gauge("in_progress", "In progress.", registry: _registry);
        using (gauge.TrackInProgress())
        {
            Assert.Equal(1, gauge.Value);
            await using (gauge.TrackInProgress())
            {
                await Task.Yield();
                Assert.Equal(2, gauge.Value);
            }

            Assert.Equal(1, gauge.Value);
        }

        Assert.Equal(0, gauge.Value);
    }

    [Fact]
    public async Task Timers_record_elapsed_seconds()
    {
        var histogram = new Histogram("op_seconds", "Op.", registry: _registry);
        var summary = new Summary("op2_seconds", "Op.", registry: _registry);
        var gauge = new Gauge("op3_seconds", "Op.", registry: _registry);
        await using (histogram.NewTimer())
        using (summary.NewTimer())
        using (gauge.NewTimer())
        {
            await Task.Delay(30, TestContext.Current.CancellationToken);
        }

        Assert.InRange(summary.Sum, 0.025, 5);
        Assert.Equal(1, summary.Count);
        Assert.InRange(gauge.Value, 0.025, 5);
        var text = _registry.Render();
        Assert.Contains("op_seconds_count 1\n", text, StringComparison.Ordinal);
        Assert.Contains("op_seconds_bucket{le=\"0.025\"} 0\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Timer_observe_duration_returns_the_elapsed_time_once_recorded()
    {
        var summary = new Summary("t_seconds", "T.", registry: _registry);
        var timer = summary.NewTimer();
        var elapsed = timer.ObserveDuration();
        Assert.True(elapsed >= TimeSpan.Zero);
        Assert.Equal(1, summary.Count);
        Assert.Equal(elapsed.TotalSeconds, summary.Sum, 9);
    }

    [Fact]
    public async Task Count_exceptions_counts_and_rethrows_filtered_by_type()
    {
        var failures = new Counter("failures_total", "Failures.", registry: _registry);
        Assert.Throws<InvalidOperationException>(() => failures.CountExceptions(() => throw new InvalidOperationException()));
        failures.CountExceptions(() => { });
        Assert.Equal(1, failures.Value);

        Assert.Throws<ArgumentException>(() => failures.CountExceptions<IOException>(() => throw new ArgumentException("x")));
        Assert.Equal(1, failures.Value);
        Assert.Throws<FileNotFoundException>(() => failures.CountExceptions<IOException>(() => throw new FileNotFoundException()));
        Assert.Equal(2, failures.Value);

        await Assert.ThrowsAsync<TimeoutException>(() => failures.CountExceptionsAsync<TimeoutException>(async () =>
        {
            await Task.Yield();
            throw new TimeoutException();
        }));
        await Assert.ThrowsAsync<InvalidOperationException>(() => failures.CountExceptionsAsync<TimeoutException>(() => throw new InvalidOperationException()));
        await failures.CountExceptionsAsync(() => Task.CompletedTask);
        Assert.Equal(3, failures.Value);
    }

    [Fact]
    public void Histogram_counts_into_buckets_inclusively()
    {
        var histogram = new Histogram("h", "H.", registry: _registry, buckets: [1, 2, 4]);
        foreach (var v in new[] { 0.5, 1, 1.5, 2, 3, 4, 5, double.PositiveInfinity, -3 })
        {
            histogram.Observe(v);
        }

        var text = _registry.Render();
        Assert.Contains("h_bucket{le=\"1\"} 3\nh_bucket{le=\"2\"} 5\nh_bucket{le=\"4\"} 7\nh_bucket{le=\"+Inf\"} 9\nh_sum +Inf\nh_count 9\n", text, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.Observe(double.NaN));
    }

    [Fact]
    public void Histogram_with_many_buckets_uses_binary_search_correctly()
    {
        var bounds = Histogram.LinearBuckets(1, 1, 40);
        var histogram = new Histogram("many", "Many.", registry: _registry, buckets: bounds);
        for (var v = 0.5; v < 45; v += 1)
        {
            histogram.Observe(v);
        }

        histogram.Observe(7);
        var text = _registry.Render();
        Assert.Contains("many_bucket{le=\"1\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("many_bucket{le=\"7\"} 8\n", text, StringComparison.Ordinal);
        Assert.Contains("many_bucket{le=\"40\"} 41\n", text, StringComparison.Ordinal);
        Assert.Contains("many_bucket{le=\"+Inf\"} 46\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Bucket_helpers_and_validation()
    {
        Assert.Equal([0.5, 1.5, 2.5], Histogram.LinearBuckets(0.5, 1, 3));
        Assert.Equal([1, 10, 100, 1000], Histogram.ExponentialBuckets(1, 10, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => Histogram.LinearBuckets(0, 0, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => Histogram.LinearBuckets(0, 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Histogram.ExponentialBuckets(0, 2, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => Histogram.ExponentialBuckets(1, 1, 3));

        var unsorted = Assert.Throws<ArgumentException>(() => new Histogram("u", "U.", registry: _registry, buckets: [1, 3, 2]));
        Assert.Contains("sorted and unique", unsorted.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new Histogram("d", "D.", registry: _registry, buckets: [1, 1]));
        Assert.Throws<ArgumentException>(() => new Histogram("e", "E.", registry: _registry, buckets: []));
        Assert.Throws<ArgumentException>(() => new Histogram("n", "N.", registry: _registry, buckets: [double.NaN]));

        var withInf = new Histogram("i", "I.", registry: _registry, buckets: [1, double.PositiveInfinity]);
        Assert.Equal([1, double.PositiveInfinity], withInf.Buckets);
        var withoutInf = new Histogram("j", "J.", registry: _registry, buckets: [1]);
        Assert.Equal([1, double.PositiveInfinity], withoutInf.Buckets);
        Assert.Equal([.. Histogram.DefaultBuckets, double.PositiveInfinity], new Histogram("k", "K.", registry: _registry).Buckets);
    }

    [Fact]
    public void Summary_keeps_count_and_sum()
    {
        var summary = new Summary("s", "S.", registry: _registry);
        summary.Observe(1.5);
        summary.Observe(-0.5);
        Assert.Equal(2, summary.Count);
        Assert.Equal(1, summary.Sum);
        Assert.Throws<ArgumentOutOfRangeException>(() => summary.Observe(double.NaN));
    }
}
