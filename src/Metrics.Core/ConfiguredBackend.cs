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
    private long _droppedExemplars;

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
    /// Set it once at startup, before the first metric is created. When nothing set it before its first use, the
    /// <c>Metrics__Backend</c>, <c>Metrics__PluginsPath</c> and <c>Metrics__BackendConfig__*</c> environment variables select
    /// it (reported once through <see cref="BackendLog"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">Set after a metric was created with the previous default.</exception>
    /// <exception cref="MetricsConfigurationException">Read first while the environment selects a backend that cannot be loaded.</exception>
    public static ConfiguredBackend Default
    {
        get
        {
            var current = Volatile.Read(ref _default);
            if (current is not null)
            {
                return current;
            }

            lock (DefaultLock)
            {
                // Nothing applied before the first use: the environment (Metrics__Backend=...) still selects the backend, so a
                // deployment's setting is never silently ignored; a bad setting fails here with the loader's message.
                Volatile.Write(ref _default, Volatile.Read(ref _default) ?? FromEnvironment() ?? Memory);
                return _default!;
            }
        }

        set
        {
            ArgumentNullException.ThrowIfNull(value);
            lock (DefaultLock)
            {
                var current = Volatile.Read(ref _default);
                if (ReferenceEquals(current, value) || (current is not null && current.Type == value.Type && current.Config.Equals(value.Config)))
                {
                    // The same backend type and configuration (a second host in one process loads it again): nothing changes.
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
    /// <exception cref="MetricsBackendException">The backend failed; its message, with the configuration's secret values masked.</exception>
    public async ValueTask<IReadOnlyList<CollectedValue>[]?> CollectAsync(IReadOnlyList<MetricDescriptor> families, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(families);
        _lifetime.EnsureInitialized();
        try
        {
            return await Adapter.CollectAsync(Config, families, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // A plugin's message may quote a secret setting; the scrape's HTTP 500 body and the logs must not.
            var message = Configuration.SecretScrubber.Scrub(e.Message, Config);
            throw new MetricsBackendException(Name, e.GetType().Name, message, message == e.Message ? e : null);
        }
    }

    /// <summary>
    /// Masks, in <paramref name="text"/>, the secret setting values (passwords, tokens, connection-string secrets) of every
    /// backend configuration used in this process: for hosts that route <see cref="BackendLog"/> messages themselves.
    /// </summary>
    /// <param name="text">A message from a backend.</param>
    /// <returns>The text with each secret value replaced by <c>***</c>.</returns>
    public static string ScrubSecrets(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return BackendLifetime.ScrubSecrets(text);
    }

    /// <summary>Reads all stored values of <paramref name="families"/>, blocking; servers use <see cref="CollectAsync"/>.</summary>
    /// <param name="families">The metric families.</param>
    /// <returns>One list per family, or null.</returns>
    public IReadOnlyList<CollectedValue>[]? Collect(IReadOnlyList<MetricDescriptor> families) => CollectAsync(families).AsTask().GetAwaiter().GetResult();

    /// <summary>The numbers the backend reports about itself (dropped updates, refused series, schema conflicts).</summary>
    /// <returns>The statistics; empty for most backends.</returns>
    public IReadOnlyList<BackendStatistic> Statistics() => Adapter.Statistics(Config);

    /// <summary>
    /// Removes every stored value of the series <paramref name="series"/> names (its label values included) from a backend
    /// that declares <see cref="BackendCapabilities.RemovesSeries"/>; does nothing for other backends. Applications call
    /// <c>Remove</c> on the metric instead, which also forgets the series in the registry.
    /// </summary>
    /// <param name="series">The series: a family descriptor with its full label values.</param>
    public void RemoveSeries(MetricDescriptor series)
    {
        ArgumentNullException.ThrowIfNull(series);
        if ((Capabilities & BackendCapabilities.RemovesSeries) != 0)
        {
            _lifetime.EnsureInitialized();
            Adapter.RemoveSeries(Config, series);
        }
    }

    /// <summary>
    /// How many series of <paramref name="family"/> the backend's shared store holds, as last known, or -1 when the backend
    /// does not declare <see cref="BackendCapabilities.CountsSeries"/>.
    /// </summary>
    /// <param name="family">The family, without label values.</param>
    /// <returns>The number of series, or -1.</returns>
    public long SeriesCount(MetricDescriptor family)
    {
        ArgumentNullException.ThrowIfNull(family);
        return (Capabilities & BackendCapabilities.CountsSeries) != 0 ? Adapter.SeriesCount(Config, family) : -1;
    }

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

    /// <summary>
    /// Flushes every backend configuration initialized in this process, all at once. A backend that fails or does not finish
    /// before <paramref name="cancellationToken"/> is signalled is reported through <see cref="BackendLog"/>; this never throws.
    /// </summary>
    /// <param name="cancellationToken">Bounds the wait.</param>
    /// <returns>A task completing when every flush has finished or given up.</returns>
    public static Task FlushAllAsync(CancellationToken cancellationToken = default) => BackendLifetime.FlushAllAsync(cancellationToken);

    /// <summary>
    /// Flushes and releases every backend configuration initialized in this process (each one's <c>ShutdownAsync</c>), all
    /// at once, as the process-exit hook does; a hosted application calls it when the host stops. A backend used again
    /// afterwards initializes anew. Failures are reported through <see cref="BackendLog"/>; this never throws.
    /// </summary>
    /// <param name="cancellationToken">Bounds the wait.</param>
    /// <returns>A task completing when every backend is released or has given up.</returns>
    public static Task ShutdownAllAsync(CancellationToken cancellationToken = default) => BackendLifetime.ShutdownAllAsync(cancellationToken);

    /// <summary>Exemplars given for this backend's values and dropped because it does not store them (<see cref="BackendCapabilities.Exemplars"/>).</summary>
    public long DroppedExemplars => Interlocked.Read(ref _droppedExemplars);

    internal void DropExemplar()
    {
        if (Interlocked.Increment(ref _droppedExemplars) == 1)
        {
            BackendLog.Write(
                Name,
                BackendLogLevel.Warning,
                $"The metrics backend '{Name}' does not store exemplars (it does not declare BackendCapabilities.Exemplars): exemplars given for its metrics are dropped. Use a backend that stores them (Memory, SharedMemory, Redis) to see them in OpenMetrics scrapes.");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({Type.FullName})";

    private static ConfiguredBackend? FromEnvironment()
    {
        var configuration = new ConfigurationBuilder().AddEnvironmentVariables().Build();
        var options = MetricsOptions.FromConfiguration(configuration);
        if (options.Backend is null)
        {
            return null;
        }

        var backend = MetricsConfiguration.Load(options);
        BackendLog.Write(
            "Metrics",
            BackendLogLevel.Information,
            $"The default metrics backend is '{backend.Name}', selected by the environment variable Metrics__Backend because MetricsConfiguration.Apply (or AddMetrics) was not called before the first metric was created.");
        return backend;
    }

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
