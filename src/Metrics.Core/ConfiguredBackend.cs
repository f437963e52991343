using Metrics.Backends.Memory;
using Metrics.Configuration;
using Microsoft.Extensions.Configuration;

namespace Metrics;

/// <summary>
/// A configured backend: a backend type together with the configuration its values are created with. Registries
/// create every backend value through one of these.
/// </summary>
/// <remarks>
/// <para>
/// Applications rarely touch this type: configure the backend by name (see <c>MetricsConfiguration</c>) and use
/// metrics. Tools, tests and the conformance suite use <see cref="Create{TBackend}"/> and <see cref="CreateValue"/>.
/// </para>
/// <para>
/// The backend's <c>Initialize</c> runs once per type and configuration before the first value. Its
/// <c>ShutdownAsync</c> runs once: when <see cref="ShutdownAsync"/> is called, when the last registry created with this
/// backend is disposed, or at process exit (bounded by <see cref="ProcessExitTimeout"/>). A configured backend used
/// again after shutdown initializes its store again.
/// </para>
/// </remarks>
public sealed class ConfiguredBackend
{
    private static readonly Lock DefaultLock = new();
    private static ConfiguredBackend? _default;
    private static bool _defaultUsed;
    private readonly BackendLifetime _lifetime;

    internal ConfiguredBackend(IBackendAdapter adapter, BackendConfig config, string name)
    {
        Adapter = adapter;
        Config = config;
        Name = name;
        _lifetime = BackendLifetime.For(adapter, config);
        _lifetime.EnsureInitialized();
        Capabilities = adapter.Capabilities;
    }

    /// <summary>The in-process Memory backend, the default when nothing is configured.</summary>
    public static ConfiguredBackend Memory { get; } = new(new BackendAdapter<MemoryBackend>(), BackendConfig.Empty, "Memory");

    /// <summary>
    /// The backend that metrics use when their registry names none: <see cref="Memory"/> unless configured.
    /// Set it once at startup, before the first metric is created.
    /// </summary>
    /// <exception cref="InvalidOperationException">Set after a metric was created with the previous default.</exception>
    public static ConfiguredBackend Default
    {
        get
        {
            var current = Volatile.Read(ref _default);
            if (current is not null)
            {
                return current;
            }

            Interlocked.CompareExchange(ref _default, Memory, null);
            return _default!;
        }

        set
        {
            ArgumentNullException.ThrowIfNull(value);
            lock (DefaultLock)
            {
                if (ReferenceEquals(Volatile.Read(ref _default), value))
                {
                    return;
                }

                if (_defaultUsed)
                {
                    throw new InvalidOperationException(
                        $"The default metrics backend is already in use by metrics created with '{Default.Name}'. Configure the backend at startup, before the first metric is created.");
                }

                Volatile.Write(ref _default, value);
            }
        }
    }

    /// <summary>
    /// How long the process-exit hook waits, in all, for every backend still initialized to flush and release. Five seconds
    /// by default; the hook is the last resort for applications that never dispose their registries or host.
    /// </summary>
    public static TimeSpan ProcessExitTimeout
    {
        get => BackendLifetime.ProcessExitTimeout;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
            BackendLifetime.ProcessExitTimeout = value;
        }
    }

    /// <summary>The backend's name (the plugin name, or the type name for a backend given by type).</summary>
    public string Name { get; }

    /// <summary>The configuration every value of this backend is created with.</summary>
    public BackendConfig Config { get; }

    /// <summary>What the backend promises beyond the basic contract.</summary>
    public BackendCapabilities Capabilities { get; }

    /// <summary>The backend's implementation type.</summary>
    public Type Type => Adapter.Type;

    internal IBackendAdapter Adapter { get; }

    internal BackendLifetime Lifetime => _lifetime;

    /// <summary>Selects <typeparamref name="TBackend"/> with <paramref name="config"/>, running its <c>Initialize</c> once for that configuration.</summary>
    /// <typeparam name="TBackend">The backend type.</typeparam>
    /// <param name="config">The backend's configuration; empty when null.</param>
    /// <param name="name">The name used in messages; the type name when null.</param>
    /// <returns>The configured backend.</returns>
    public static ConfiguredBackend Create<TBackend>(BackendConfig? config = null, string? name = null)
        where TBackend : IMetricBackend<TBackend> =>
        new(new BackendAdapter<TBackend>(), config ?? BackendConfig.Empty, name ?? typeof(TBackend).Name);

    /// <summary>
    /// Loads the backend named <paramref name="name"/> from the plugins folder and runs its <c>Initialize</c> once for
    /// <paramref name="config"/>: <c>pluginsPath/name/name.dll</c>, or the built-in Memory backend for <c>Memory</c> when that
    /// folder is absent. Only the contract assembly is shared with the plugin; nothing is loaded from outside its folder.
    /// </summary>
    /// <param name="pluginsPath">The plugins folder; a relative path is relative to <see cref="AppContext.BaseDirectory"/>.</param>
    /// <param name="name">The backend's name: letters, digits, '_' and single dots, no path.</param>
    /// <param name="config">The backend's configuration.</param>
    /// <returns>The configured backend; it does not become <see cref="Default"/> (see <see cref="MetricsConfiguration.Apply(IConfiguration)"/>).</returns>
    /// <exception cref="MetricsConfigurationException">The name, folder, plugin or configuration is wrong; the message says what to do.</exception>
    public static ConfiguredBackend Load(string pluginsPath, string name, BackendConfig config) => BackendLoader.Load(pluginsPath, name, config);

    /// <summary>Loads the backend the <c>Metrics</c> section of <paramref name="configuration"/> selects (Memory when absent).</summary>
    /// <param name="configuration">The application's configuration.</param>
    /// <returns>The configured backend; it does not become <see cref="Default"/>.</returns>
    /// <exception cref="MetricsConfigurationException">The configuration or the plugin is wrong.</exception>
    public static ConfiguredBackend FromConfiguration(IConfiguration configuration) => MetricsConfiguration.Load(configuration);

    /// <summary>Creates one backend value, as a metric does for each series, bucket and sum.</summary>
    /// <param name="metric">The metric and series the value belongs to.</param>
    /// <param name="bucket">The histogram or summary part, or null.</param>
    /// <returns>The new value.</returns>
    public IMetricBackend CreateValue(MetricDescriptor metric, HistogramBucket? bucket = null)
    {
        ArgumentNullException.ThrowIfNull(metric);
        _lifetime.EnsureInitialized();
        return Adapter.Create(Config, metric, bucket);
    }

    /// <summary>Reads all stored values of <paramref name="families"/> in one batch, or null when the backend reads value by value.</summary>
    /// <param name="families">The metric families.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>One list per family, or null.</returns>
    public ValueTask<IReadOnlyList<CollectedValue>[]?> CollectAsync(IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(families);
        _lifetime.EnsureInitialized();
        return Adapter.CollectAsync(Config, families, cancellationToken);
    }

    /// <summary>Reads all stored values of <paramref name="families"/>, blocking; servers use <see cref="CollectAsync"/>.</summary>
    /// <param name="families">The metric families.</param>
    /// <returns>One list per family, or null.</returns>
    public IReadOnlyList<CollectedValue>[]? Collect(IReadOnlyList<MetricDescriptor> families) => CollectAsync(families).AsTask().GetAwaiter().GetResult();

    /// <summary>The numbers the backend reports about itself (dropped updates, refused series, schema conflicts).</summary>
    /// <returns>The statistics; empty for most backends.</returns>
    public IReadOnlyList<BackendStatistic> Statistics() => Adapter.Statistics(Config);

    /// <summary>Pushes buffered updates to the store; completes when they are stored, the backend's timeout elapses or the token is signalled.</summary>
    /// <param name="cancellationToken">Bounds the wait.</param>
    /// <returns>A task completing when flushed.</returns>
    public ValueTask FlushAsync(CancellationToken cancellationToken = default) => Adapter.FlushAsync(Config, cancellationToken);

    /// <summary>Pushes buffered updates to the store, blocking (see <see cref="FlushAsync"/>).</summary>
    public void Flush() => FlushAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>
    /// Flushes and releases what the backend opened for this configuration (connections, mapped files). Runs the backend's
    /// <c>ShutdownAsync</c> once; later calls do nothing until the backend is used again, which initializes it anew.
    /// </summary>
    /// <param name="cancellationToken">Bounds the flush.</param>
    /// <returns>A task completing when the backend is released.</returns>
    public ValueTask ShutdownAsync(CancellationToken cancellationToken = default) => _lifetime.ShutdownAsync(cancellationToken);

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({Type.FullName})";

    /// <summary>The default backend, marked as used so that it can no longer change under existing metrics.</summary>
    internal static ConfiguredBackend UseDefault()
    {
        lock (DefaultLock)
        {
            _defaultUsed = true;
            return Default;
        }
    }
}
