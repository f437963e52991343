using System.Collections.Concurrent;
using System.Linq.Expressions;
using System.Reflection;

namespace Metrics;

/// <summary>Calls a backend type's static members and constructor without per-call reflection.</summary>
internal interface IBackendType
{
    Type Type { get; }

    BackendCapabilities Capabilities { get; }

    void Initialize(BackendConfig config);

    IMetricBackend Create(BackendConfig config, MetricDescriptor metric, HistogramBucket? bucket);

    IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families);

    void Flush(BackendConfig config);

    IReadOnlyList<BackendStatistic> Statistics(BackendConfig config);
}

/// <summary>The adapter closed over one backend type, once, when the backend is selected.</summary>
internal sealed class BackendType<T> : IBackendType
    where T : IMetricBackend<T>
{
    private readonly Func<BackendConfig, MetricDescriptor, HistogramBucket?, IMetricBackend> _create;

    public BackendType() => _create = CompileConstructor();

    public Type Type => typeof(T);

    public BackendCapabilities Capabilities => T.Capabilities;

    public void Initialize(BackendConfig config) => T.Initialize(config);

    public IMetricBackend Create(BackendConfig config, MetricDescriptor metric, HistogramBucket? bucket) => _create(config, metric, bucket);

    public IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) => T.Collect(config, families);

    public void Flush(BackendConfig config) => T.Flush(config);

    public IReadOnlyList<BackendStatistic> Statistics(BackendConfig config) => T.Statistics(config);

    private static Func<BackendConfig, MetricDescriptor, HistogramBucket?, IMetricBackend> CompileConstructor()
    {
        var ctor = typeof(T).GetConstructor(BindingFlags.Public | BindingFlags.Instance, [typeof(BackendConfig), typeof(MetricDescriptor), typeof(HistogramBucket?)])
            ?? throw new MetricsConfigurationException(
                $"Backend type '{typeof(T).FullName}' in '{typeof(T).Assembly.GetName().Name}' has no public constructor ({nameof(BackendConfig)} config, {nameof(MetricDescriptor)} metric, {nameof(HistogramBucket)}? histogramBucket). Add one: the host creates one instance per metric value through it.");
        var config = Expression.Parameter(typeof(BackendConfig), "config");
        var metric = Expression.Parameter(typeof(MetricDescriptor), "metric");
        var bucket = Expression.Parameter(typeof(HistogramBucket?), "bucket");
        var body = Expression.Convert(Expression.New(ctor, config, metric, bucket), typeof(IMetricBackend));
        return Expression.Lambda<Func<BackendConfig, MetricDescriptor, HistogramBucket?, IMetricBackend>>(body, config, metric, bucket).Compile();
    }
}

/// <summary>Ensures <c>Initialize</c> runs once per backend type and configuration, process-wide.</summary>
internal static class BackendInitialization
{
    private static readonly ConcurrentDictionary<(Type Type, BackendConfig Config), Lazy<bool>> Initialized = new();

    public static void EnsureInitialized(IBackendType type, BackendConfig config)
    {
        var lazy = Initialized.GetOrAdd((type.Type, config), key => new Lazy<bool>(() =>
        {
            type.Initialize(config);
            return true;
        }, LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            _ = lazy.Value;
        }
        catch
        {
            // A failed initialization is not cached: the next attempt (after fixing the store, say) runs it again.
            Initialized.TryRemove(new KeyValuePair<(Type, BackendConfig), Lazy<bool>>((type.Type, config), lazy));
            throw;
        }
    }
}
