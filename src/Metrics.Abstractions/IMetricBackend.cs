namespace Metrics;

/// <summary>
/// One stored metric value: one series of a counter or gauge, or one bucket, sum or count of a
/// histogram or summary series. This is the instance surface the metrics API calls on every update.
/// </summary>
/// <remarks>
/// <para>
/// Implement <see cref="IMetricBackend{TSelf}"/> rather than this interface directly: the host also needs
/// the static members declared there. A backend type must have a public constructor
/// <c>(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)</c>; the host calls it
/// once per value, after <see cref="IMetricBackend{TSelf}.Initialize"/>.
/// </para>
/// <para>
/// Every member may be called concurrently from many threads. Updates must not throw for transport
/// faults (a network or disk error): keep the update and report the fault through your own channel.
/// They must not block on the network either: buffer and flush in the background.
/// </para>
/// </remarks>
public interface IMetricBackend
{
    /// <summary>Adds <paramref name="value"/> to the stored value. Must be atomic against concurrent updates.</summary>
    /// <param name="value">The amount to add; any double, the caller has validated it.</param>
    void Inc(double value);

    /// <summary>Subtracts <paramref name="value"/> from the stored value. Must be atomic against concurrent updates.</summary>
    /// <param name="value">The amount to subtract.</param>
    void Dec(double value);

    /// <summary>Replaces the stored value. NaN, infinities and negative zero must round-trip through <see cref="Get"/>.</summary>
    /// <param name="value">The new value.</param>
    void Set(double value);

    /// <summary>
    /// Reads the current value. In the calling process this includes every update that has returned
    /// (read-your-writes), even when writes to a shared store are batched.
    /// </summary>
    /// <returns>The current value; 0 for a value that was never updated.</returns>
    double Get();
}

/// <summary>
/// The full backend contract: the instance surface of <see cref="IMetricBackend"/> plus the one-time and
/// per-configuration hooks the host calls through the concrete type.
/// </summary>
/// <typeparam name="TSelf">The implementing type itself (<c>sealed class MyBackend : IMetricBackend&lt;MyBackend&gt;</c>).</typeparam>
/// <remarks>
/// Only <see cref="Initialize"/> must be implemented; the other static members have defaults that suit an
/// in-process backend. A shared backend overrides <see cref="Capabilities"/>, <see cref="Collect"/>
/// and <see cref="Flush"/>.
/// </remarks>
public interface IMetricBackend<TSelf> : IMetricBackend
    where TSelf : IMetricBackend<TSelf>
{
    /// <summary>
    /// Called once per backend type and configuration, before the first value is created with that
    /// configuration. Open connections, map files and validate <paramref name="config"/> here; throw a
    /// <see cref="BackendConfigException"/> (for example through the typed reads of <see cref="BackendConfig"/>)
    /// when a setting is wrong, so the application fails at startup with a message naming the key.
    /// </summary>
    /// <param name="config">The backend's configuration section.</param>
    static abstract void Initialize(BackendConfig config);

    /// <summary>What the backend promises beyond the basic contract. The default is <see cref="BackendCapabilities.None"/>.</summary>
    static virtual BackendCapabilities Capabilities => BackendCapabilities.None;

    /// <summary>
    /// Reads, in one batch, every value the store holds for the given metric families, including series
    /// created only in other processes and this process's updates that are not flushed yet. The host calls it
    /// once per scrape. Return <see langword="null"/> (the default) to let the host read each value it created
    /// through <see cref="IMetricBackend.Get"/> instead, which is right for an in-process backend.
    /// </summary>
    /// <param name="config">The configuration the values were created with.</param>
    /// <param name="families">The metric families to read; <see cref="MetricDescriptor.LabelValues"/> is empty on these.</param>
    /// <returns>
    /// One list per family, in the order of <paramref name="families"/>, each holding one entry per stored value,
    /// or <see langword="null"/> when the backend does not collect in batch.
    /// </returns>
    /// <exception cref="Exception">Any exception fails the scrape with its message; never return partial data silently.</exception>
    static virtual IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) => null;

    /// <summary>
    /// Pushes buffered updates to the store and returns when they are stored (or when the configured timeout
    /// elapses). Called on shutdown and by tests that need other processes to see this process's values.
    /// The default does nothing, which is right for a backend that writes through.
    /// </summary>
    /// <param name="config">The configuration whose values to flush.</param>
    static virtual void Flush(BackendConfig config)
    {
    }

    /// <summary>
    /// Numbers the backend reports about itself (updates dropped, series refused), exposed by the host in every scrape
    /// of a registry that uses this backend. The default reports nothing.
    /// </summary>
    /// <param name="config">The configuration whose statistics to report.</param>
    /// <returns>The statistics; names must be valid metric names and should start with <c>metrics_backend_</c>.</returns>
    static virtual IReadOnlyList<BackendStatistic> Statistics(BackendConfig config) => [];
}
