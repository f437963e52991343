using System.Linq.Expressions;
using System.Reflection;

namespace Metrics;

/// <summary>Calls a backend type's static members and constructor without per-call reflection.</summary>
internal interface IBackendAdapter
{
    Type Type { get; }

    BackendCapabilities Capabilities { get; }

    void Initialize(BackendConfig config);

    IMetricBackend Create(BackendConfig config, MetricDescriptor metric, HistogramBucket? bucket);

    ValueTask<IReadOnlyList<CollectedValue>[]?> CollectAsync(BackendConfig config, IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken);

    ValueTask FlushAsync(BackendConfig config, CancellationToken cancellationToken);

    ValueTask ShutdownAsync(BackendConfig config, CancellationToken cancellationToken);

    IReadOnlyList<BackendStatistic> Statistics(BackendConfig config);

    void RemoveSeries(BackendConfig config, MetricDescriptor series);

    long SeriesCount(BackendConfig config, MetricDescriptor family);
}

/// <summary>The adapter closed over one backend type, once, when the backend is selected.</summary>
internal sealed class BackendAdapter<T> : IBackendAdapter
    where T : IMetricBackend<T>
{
    private readonly Func<BackendConfig, MetricDescriptor, HistogramBucket?, IMetricBackend> _create;

    public BackendAdapter() => _create = CompileConstructor();

    public Type Type => typeof(T);

    public BackendCapabilities Capabilities => T.Capabilities;

    public void Initialize(BackendConfig config) => T.Initialize(config);

    public IMetricBackend Create(BackendConfig config, MetricDescriptor metric, HistogramBucket? bucket) => _create(config, metric, bucket);

    public ValueTask<IReadOnlyList<CollectedValue>[]?> CollectAsync(BackendConfig config, IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken) =>
        T.CollectAsync(config, families, cancellationToken);

    public ValueTask FlushAsync(BackendConfig config, CancellationToken cancellationToken) => T.FlushAsync(config, cancellationToken);

    public ValueTask ShutdownAsync(BackendConfig config, CancellationToken cancellationToken) => T.ShutdownAsync(config, cancellationToken);

    public IReadOnlyList<BackendStatistic> Statistics(BackendConfig config) => T.Statistics(config);

    public void RemoveSeries(BackendConfig config, MetricDescriptor series) => T.RemoveSeries(config, series);

    public long SeriesCount(BackendConfig config, MetricDescriptor family) => T.SeriesCount(config, family);

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
