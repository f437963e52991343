using System.Collections.Concurrent;

namespace Metrics;

/// <summary>
/// The life of one backend type with one configuration in this process: initialized once before its first value,
/// shut down once when its owners let go of it or the process exits, and initialized again if it is used after that.
/// </summary>
internal sealed class BackendLifetime
{
    private static readonly ConcurrentDictionary<(Type Type, BackendConfig Config), BackendLifetime> All = new();
    private static int s_exitHooked;

    private readonly IBackendAdapter _adapter;
    private readonly BackendConfig _config;

    // Serializes Initialize against ShutdownAsync: a backend never sees the two overlap for one configuration.
    private readonly SemaphoreSlim _gate = new(1, 1);
    private volatile bool _initialized;
    private int _owners;

    private BackendLifetime(IBackendAdapter adapter, BackendConfig config)
    {
        _adapter = adapter;
        _config = config;
    }

    /// <summary>How long the process-exit hook waits for every backend to flush and release.</summary>
    public static TimeSpan ProcessExitTimeout { get; set; } = TimeSpan.FromSeconds(5);

    public bool IsInitialized => _initialized;

    public static BackendLifetime For(IBackendAdapter adapter, BackendConfig config)
    {
        if (Interlocked.Exchange(ref s_exitHooked, 1) == 0)
        {
            // Backend messages go to the Metrics EventSource unless a host (AddMetrics) routes them to ILogger.
            MetricsEventSource.InstallDefault();
            AppDomain.CurrentDomain.ProcessExit += static (_, _) => ShutdownAll(ProcessExitTimeout);
        }

        return All.GetOrAdd((adapter.Type, config), static (key, adapter) => new BackendLifetime(adapter, key.Config), adapter);
    }

    /// <summary>Masks the secret setting values of every configuration used in this process in <paramref name="text"/>.</summary>
    public static string ScrubSecrets(string text)
    {
        foreach (var lifetime in All.Values)
        {
            text = Configuration.SecretScrubber.Scrub(text, lifetime._config);
        }

        return text;
    }

    public void EnsureInitialized()
    {
        if (_initialized)
        {
            return;
        }

        _gate.Wait();
        try
        {
            if (!_initialized)
            {
                // A failed initialization leaves the state uninitialized: the next use (after fixing the store, say) runs it again.
                _adapter.Initialize(_config);
                _initialized = true;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Counts an owner (a registry created with this backend) that will release it when disposed.</summary>
    public void AddOwner() => Interlocked.Increment(ref _owners);

    /// <summary>Releases an owner; the last one out shuts the backend down.</summary>
    public ValueTask ReleaseOwnerAsync(CancellationToken cancellationToken) =>
        Interlocked.Decrement(ref _owners) == 0 ? ShutdownAsync(cancellationToken) : ValueTask.CompletedTask;

    public async ValueTask ShutdownAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_initialized)
            {
                return;
            }

            _initialized = false;
            await _adapter.ShutdownAsync(_config, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Shuts down every initialized backend of the process, waiting at most <paramref name="timeout"/> in all.</summary>
    internal static void ShutdownAll(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);

        // A backend that ignores its token must not hold the process open past the timeout; what it did not store is its to report.
        ShutdownAllAsync(cancel.Token).Wait(timeout + TimeSpan.FromMilliseconds(100));
    }

    /// <summary>Shuts down every initialized backend of the process at once; failures are reported through <see cref="BackendLog"/>.</summary>
    internal static Task ShutdownAllAsync(CancellationToken cancellationToken) =>
        Task.WhenAll(All.Values.Where(l => l.IsInitialized).Select(l => ShutdownQuietly(l, cancellationToken)));

    /// <summary>Flushes every initialized backend of the process at once; failures are reported through <see cref="BackendLog"/>.</summary>
    internal static Task FlushAllAsync(CancellationToken cancellationToken) =>
        Task.WhenAll(All.Values.Where(l => l.IsInitialized).Select(l => FlushQuietly(l, cancellationToken)));

    private static async Task FlushQuietly(BackendLifetime lifetime, CancellationToken cancellationToken)
    {
        try
        {
            await lifetime._adapter.FlushAsync(lifetime._config, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            BackendLog.Write(lifetime._adapter.Type.Name, BackendLogLevel.Error, $"The backend did not flush: {e.GetType().Name}: {e.Message}", e);
        }
    }

    private static async Task ShutdownQuietly(BackendLifetime lifetime, CancellationToken cancellationToken)
    {
        try
        {
            await lifetime.ShutdownAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // The process is exiting and nobody can catch this any more: report what was lost on the backend log channel.
            BackendLog.Write(lifetime._adapter.Type.Name, BackendLogLevel.Error, $"The backend did not shut down cleanly at process exit; updates not yet stored may be lost: {e.GetType().Name}: {e.Message}", e);
        }
    }
}
