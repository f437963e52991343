using System.Collections.Concurrent;
using Metrics.Hosting;

namespace Metrics.Tests;

/// <summary>The host's side of contract 1.1: lifecycle, async single-flight scrapes, value cells, definitions, misfit values.</summary>
public class ContractTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Shutdown_runs_once_per_initialized_configuration_and_the_next_use_initializes_again()
    {
        var config = new BackendConfig([new("Test", nameof(Shutdown_runs_once_per_initialized_configuration_and_the_next_use_initializes_again))]);
        var backend = ConfiguredBackend.Create<LifecycleBackend>(config);
        Assert.Equal(1, LifecycleBackend.Count(LifecycleBackend.Initialized, config));

        await backend.ShutdownAsync(Token);
        await backend.ShutdownAsync(Token);
        Assert.Equal(1, LifecycleBackend.Count(LifecycleBackend.ShutDown, config));

        var value = backend.CreateValue(new MetricDescriptor("again_total", "Again.", MetricType.Counter));
        value.Inc(2);
        Assert.Equal(2, value.Get());
        Assert.Equal(2, LifecycleBackend.Count(LifecycleBackend.Initialized, config));
    }

    [Fact]
    public async Task The_last_registry_created_with_a_backend_shuts_it_down_when_disposed()
    {
        var config = new BackendConfig([new("Test", nameof(The_last_registry_created_with_a_backend_shuts_it_down_when_disposed))]);
        var backend = ConfiguredBackend.Create<LifecycleBackend>(config);
        var first = new MetricRegistry(backend: backend);
        var second = new MetricRegistry(backend: backend);

        await first.DisposeAsync();
        await first.DisposeAsync();
        Assert.Equal(0, LifecycleBackend.Count(LifecycleBackend.ShutDown, config));

        await second.DisposeAsync();
        Assert.Equal(1, LifecycleBackend.Count(LifecycleBackend.ShutDown, config));
    }

    [Fact]
    public async Task Concurrent_scrapes_share_one_backend_read()
    {
        var config = new BackendConfig([new("Test", nameof(Concurrent_scrapes_share_one_backend_read))]);
        var registry = new MetricRegistry(backend: ConfiguredBackend.Create<GatedBackend>(config));
        new Counter("shared_total", "Shared.", registry: registry);
        var gate = GatedBackend.Gate(config);

        var scrapes = Enumerable.Range(0, 50).Select(_ => ScrapeResponse.RenderAsync(registry, "text/plain", null, Token)).ToArray();
        await gate.Started.Task.WaitAsync(Token);
        gate.Release.SetResult();
        var responses = await Task.WhenAll(scrapes);

        Assert.All(responses, r => Assert.Equal(200, r.StatusCode));
        Assert.All(responses, r => Assert.Contains("shared_total 42\n", System.Text.Encoding.UTF8.GetString(r.Body.Span), StringComparison.Ordinal));
        Assert.Equal(1, registry.BackendReads);
        Assert.Equal(1, gate.Reads);
        foreach (var response in responses)
        {
            response.Dispose();
        }

        // A scrape after the shared read finished reads again: a finished read is stale.
        var gateAgain = GatedBackend.Gate(config);
        gateAgain.Release.SetResult();
        using var later = await ScrapeResponse.RenderAsync(registry, "text/plain", null, Token);
        Assert.Equal(2, registry.BackendReads);
    }

    [Fact]
    public async Task A_read_nobody_waits_for_any_more_is_cancelled()
    {
        var config = new BackendConfig([new("Test", nameof(A_read_nobody_waits_for_any_more_is_cancelled))]);
        var registry = new MetricRegistry(backend: ConfiguredBackend.Create<GatedBackend>(config));
        new Counter("abandoned_total", "Abandoned.", registry: registry);
        var gate = GatedBackend.Gate(config);
        using var client = CancellationTokenSource.CreateLinkedTokenSource(Token);

        var scrape = registry.WriteAsync(Stream.Null, cancellationToken: client.Token);
        await gate.Started.Task.WaitAsync(Token);
        await client.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => scrape);
        await gate.Cancelled.Task.WaitAsync(Token);
    }

    [Fact]
    public async Task Values_of_another_definition_are_left_out_and_counted_without_failing_the_scrape()
    {
        var registry = new MetricRegistry(backend: ConfiguredBackend.Create<BackendTests.CollectingBackend>(new BackendConfig([new("Test", "misfit")])));
        var histogram = new Histogram("latency_seconds", "Latency.", buckets: [1, 2], registry: registry);
        var counter = new Counter("requests_total", "Requests.", ["code"], registry: registry);
        BackendTests.CollectingBackend.Remote =
        [
            [
                new([], HistogramBucket.ForUpperBound(1), 3),
                new([], HistogramBucket.ForUpperBound(5), 7),
                new([], HistogramBucket.ForUpperBound(double.PositiveInfinity), 1),
                new([], HistogramBucket.Sum, 4),
            ],
            [new(["200"], null, 9), new(["200", "GET"], null, 11)],
        ];

        using var response = await ScrapeResponse.RenderAsync(registry, "text/plain", null, Token);
        var text = System.Text.Encoding.UTF8.GetString(response.Body.Span);
        Assert.Equal(200, response.StatusCode);
        Assert.Contains("latency_seconds_bucket{le=\"+Inf\"} 4\n", text, StringComparison.Ordinal);
        Assert.Contains("requests_total{code=\"200\"} 9\n", text, StringComparison.Ordinal);
        Assert.Contains("metrics_scrape_skipped_values_total 2\n", text, StringComparison.Ordinal);
        Assert.NotNull(histogram);
        Assert.NotNull(counter);
    }

    [Fact]
    public async Task A_backend_failure_quoting_a_secret_setting_reaches_the_scrape_masked_with_the_backend_named()
    {
        var config = new BackendConfig([new("Password", "hunter2-correct-horse"), new("Test", "secret-quote")]);
        var registry = new MetricRegistry(backend: ConfiguredBackend.Create<LeakyBackend>(config, "Leaky"));
        new Counter("leaky_total", "Leaky.", registry: registry).Inc();

        using var response = await ScrapeResponse.RenderAsync(registry, "text/plain", null, Token);
        var body = System.Text.Encoding.UTF8.GetString(response.Body.Span);
        Assert.Equal(500, response.StatusCode);
        Assert.Contains("The metrics backend 'Leaky' failed (IOException): login as metrics with hunter2-correct-horse refused", body.Replace("***", "hunter2-correct-horse", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2-correct-horse", body, StringComparison.Ordinal);
        Assert.Contains("with *** refused", body, StringComparison.Ordinal);
    }

    [Fact]
    public void Counter_histogram_and_summary_update_the_memory_value_cell_in_place()
    {
        var registry = new MetricRegistry();
        var counter = new Counter("cell_total", "Cell.", registry: registry);
        var histogram = new Histogram("cell_seconds", "Cell.", buckets: [1], registry: registry);
        var summary = new Summary("cell_bytes", "Cell.", registry: registry);
        Assert.NotEqual(0, counter.Backing!.ValueCell);
        Assert.NotEqual(0, histogram.SumValue!.ValueCell);

        counter.Inc(2.5);
        histogram.Observe(0.5);
        histogram.Observe(3);
        summary.Observe(7);

        Assert.Equal(2.5, counter.Value);
        Assert.Equal(1, histogram.BucketValues![0].Get());
        Assert.Equal(1, histogram.BucketValues![1].Get());
        Assert.Equal(3.5, histogram.SumValue.Get());
        Assert.Equal((1, 7), (summary.Count, summary.Sum));
    }

    [Fact]
    public void Memory_fractional_sums_under_contention_equal_sequential_addition()
    {
        var registry = new MetricRegistry();
        var counter = new Counter("fraction_total", "Fractions.", registry: registry);
        var count = new Counter("whole_total", "Whole numbers.", registry: registry);
        const int Threads = 4, PerThread = 200_000;
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(_ => new Thread(() =>
        {
            start.SignalAndWait();
            for (var i = 0; i < PerThread; i++)
            {
                counter.Inc(0.1);
                count.Inc();
            }
        })).ToArray();
        foreach (var thread in threads)
        {
            thread.Start();
        }

        foreach (var thread in threads)
        {
            thread.Join();
        }

        var sequential = 0.0;
        for (var i = 0; i < Threads * PerThread; i++)
        {
            sequential += 0.1;
        }

        Assert.Equal(sequential, counter.Value);
        Assert.Equal(Threads * PerThread, count.Value);
    }

    [Fact]
    public void The_same_series_in_two_registries_is_two_memory_values()
    {
        var first = new Counter("twice_total", "Twice.", registry: new MetricRegistry());
        var second = new Counter("twice_total", "Twice.", registry: new MetricRegistry());
        first.Inc(5);
        Assert.Equal(0, second.Value);
    }

    [Fact]
    public void A_definition_names_type_labels_buckets_and_aggregation_and_its_id_is_stable()
    {
        var histogram = new MetricDescriptor("h", "H.", MetricType.Histogram, ["route"], buckets: [0.5, 1, double.PositiveInfinity]);
        Assert.Equal("histogram;labels=route;buckets=0.5,1,+Inf", histogram.Definition);
        var gauge = new MetricDescriptor("g", "G.", MetricType.Gauge, gaugeAggregation: GaugeAggregation.Max);
        Assert.Equal("gauge;labels=;aggregation=Max", gauge.Definition);

        // FNV-1a 64 of the UTF-8 text (computed independently): the same in every process, so a shared store can key by it.
        Assert.Equal("efc4b1a4c4400c26", new MetricDescriptor("x", "X.", MetricType.Counter).DefinitionId);
        Assert.NotEqual(histogram.DefinitionId, new MetricDescriptor("h", "H.", MetricType.Histogram, ["route"], buckets: [0.25, 1, double.PositiveInfinity]).DefinitionId);
        Assert.Equal(histogram.DefinitionId, histogram.WithLabelValues(["/"]).DefinitionId);
    }

    [Fact]
    public void Atomic_double_round_trips_every_bit_pattern_and_adds()
    {
        long bits = 0;
        AtomicDouble.Write(ref bits, -0.0);
        Assert.True(double.IsNegative(AtomicDouble.Read(ref bits)));
        Assert.Equal(0.30000000000000004, AtomicDouble.Add(ref bits, 0.1) + 0.2);
        Assert.True(AtomicDouble.TryAdd(ref bits, 1));
        Assert.Equal(1.1, AtomicDouble.Read(ref bits));
        Assert.Equal(2.2, AtomicDouble.Update(ref bits, v => v * 2));
    }

    /// <summary>A shared backend whose collection fails with a message quoting its password, as client libraries' errors can.</summary>
    public sealed class LeakyBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<LeakyBackend>
    {
        public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses;

        public BackendConfig Config { get; } = config;

        public MetricDescriptor Metric { get; } = metric;

        public HistogramBucket? Bucket { get; } = histogramBucket;

        public static void Initialize(BackendConfig config)
        {
        }

        public static ValueTask<IReadOnlyList<CollectedValue>[]?> CollectAsync(BackendConfig config, IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken) =>
            throw new IOException($"login as metrics with {config["Password"]} refused");

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

    /// <summary>Counts Initialize and ShutdownAsync per configuration.</summary>
    public sealed class LifecycleBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<LifecycleBackend>
    {
        private double _value;

        public static ConcurrentDictionary<BackendConfig, int> Initialized { get; } = new();

        public static ConcurrentDictionary<BackendConfig, int> ShutDown { get; } = new();

        public BackendConfig Config { get; } = config;

        public MetricDescriptor Metric { get; } = metric;

        public HistogramBucket? Bucket { get; } = histogramBucket;

        public static int Count(ConcurrentDictionary<BackendConfig, int> counts, BackendConfig config) => counts.TryGetValue(config, out var n) ? n : 0;

        public static void Initialize(BackendConfig config) => Initialized.AddOrUpdate(config, 1, (_, n) => n + 1);

        public static ValueTask ShutdownAsync(BackendConfig config, CancellationToken cancellationToken)
        {
            ShutDown.AddOrUpdate(config, 1, (_, n) => n + 1);
            return ValueTask.CompletedTask;
        }

        public void Inc(double value) => _value += value;

        public void Dec(double value) => _value -= value;

        public void Set(double value) => _value = value;

        public double Get() => _value;
    }

    /// <summary>A shared backend whose collection waits for the test to release it, counting reads and cancellations.</summary>
    public sealed class GatedBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<GatedBackend>
    {
        private static readonly ConcurrentDictionary<BackendConfig, ReadGate> Gates = new();

        public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses;

        public BackendConfig Config { get; } = config;

        public MetricDescriptor Metric { get; } = metric;

        public HistogramBucket? Bucket { get; } = histogramBucket;

        public static ReadGate Gate(BackendConfig config) => Gates[config] = new ReadGate();

        public static void Initialize(BackendConfig config)
        {
        }

        public static async ValueTask<IReadOnlyList<CollectedValue>[]?> CollectAsync(BackendConfig config, IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken)
        {
            var gate = Gates[config];
            Interlocked.Increment(ref gate.ReadCount);
            gate.Started.TrySetResult();
            try
            {
                await gate.Release.Task.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                gate.Cancelled.TrySetResult();
                throw;
            }

            return [.. families.Select(_ => (IReadOnlyList<CollectedValue>)[new CollectedValue([], null, 42)])];
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

        public double Get() => 42;
    }

    public sealed class ReadGate
    {
        public int ReadCount;

        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Cancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Reads => Volatile.Read(ref ReadCount);
    }
}
