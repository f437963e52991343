using StackExchange.Redis;

namespace Metrics.Backends.Redis;

/// <summary>
/// The connection of one configuration: made in the background at startup, made again by the flusher after a failed
/// attempt, and able to say why it is not connected (scrubbed of secrets by the caller's log and messages).
/// </summary>
internal sealed class RedisConnection
{
    private readonly RedisSettings _settings;
    private readonly Action<string, BackendLogLevel> _log;
    private ConnectionMultiplexer? _connection;
    private Task<ConnectionMultiplexer>? _connecting;
    private volatile string? _lastFailure;
    private volatile bool _closed;
    private Task<string?>? _probe;
    private long _probeStarted;
    private volatile string? _diagnosis;

    public RedisConnection(RedisSettings settings, Action<string, BackendLogLevel> log)
    {
        _settings = settings;
        _log = log;
        _connecting = ConnectionMultiplexer.ConnectAsync(settings.Options);
    }

    /// <summary>The established connection, or null before the first successful attempt and after <see cref="CloseAsync"/>.</summary>
    public ConnectionMultiplexer? Current => _closed ? null : Volatile.Read(ref _connection);

    /// <summary>
    /// The connection, waiting at most <c>ConnectTimeout</c> for an attempt in progress; a failed attempt is logged and
    /// a new one started, to be picked up by a later call. Null when not (yet) connected.
    /// </summary>
    public async Task<ConnectionMultiplexer?> GetAsync(CancellationToken cancellationToken)
    {
        if (Current is { } current)
        {
            return current;
        }

        var connecting = Volatile.Read(ref _connecting);
        if (connecting is null || _closed)
        {
            return null;
        }

        if (!connecting.IsCompleted)
        {
            // Never hold a flush or a scrape for longer than one connect attempt; the next tick tries again.
            try
            {
                await connecting.WaitAsync(TimeSpan.FromMilliseconds(_settings.Options.ConnectTimeout), cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                return null;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Handled below from the task's state.
            }
        }

        return Adopt(connecting);
    }

    /// <summary>
    /// The connection for a synchronous <c>Get</c>, waiting until <paramref name="deadline"/> for an attempt in progress
    /// (a process reads right after it starts), without starting one: reconnecting is the flusher's job.
    /// </summary>
    public ConnectionMultiplexer? ForRead(DateTime deadline)
    {
        if (Current is { } connection)
        {
            return connection;
        }

        var connecting = Volatile.Read(ref _connecting);
        if (connecting is null || _closed)
        {
            return null;
        }

        if (!connecting.IsCompleted)
        {
            var wait = deadline - DateTime.UtcNow;
            if (wait <= TimeSpan.Zero || !((IAsyncResult)connecting).AsyncWaitHandle.WaitOne(wait))
            {
                return null;
            }
        }

        return connecting.IsCompletedSuccessfully && !_closed ? connecting.Result : null;
    }

    /// <summary>
    /// Why there is no usable connection, for messages: the cause the last probe of the endpoints found, else the
    /// client's last failure, else that the first attempt is still under way.
    /// </summary>
    public string NotConnected() => _diagnosis ?? _lastFailure
        ?? $"not connected yet: the first connection attempt is still under way (ConnectTimeout {_settings.Options.ConnectTimeout} ms)";

    /// <summary>
    /// A connected multiplexer, or null with the cause. A probe of the endpoints runs beside the wait for the client's
    /// attempt, so a refused port or wrong password is named at once instead of after ConnectTimeout.
    /// </summary>
    public async Task<(ConnectionMultiplexer? Connection, string? Cause)> GetOrDiagnoseAsync(CancellationToken cancellationToken)
    {
        if (Current is { IsConnected: true } current)
        {
            _diagnosis = null;
            return (current, null);
        }

        var probe = DiagnoseAsync();
        var get = GetAsync(cancellationToken);
        await Task.WhenAny(probe, get).ConfigureAwait(false);
        if (get.IsCompletedSuccessfully && get.Result is { IsConnected: true } connected)
        {
            return (connected, null);
        }

        if (probe.IsCompletedSuccessfully && probe.Result is { } early)
        {
            return (null, early);
        }

        var connection = await get.ConfigureAwait(false);
        if (connection is { IsConnected: true })
        {
            return (connection, null);
        }

        var cause = await probe.WaitAsync(cancellationToken).ConfigureAwait(false);
        return (null, cause ?? NotConnected());
    }

    /// <summary>Probes the endpoints, sharing a probe started within the last second; the result is kept for <see cref="NotConnected"/>.</summary>
    private Task<string?> DiagnoseAsync()
    {
        var running = Volatile.Read(ref _probe);
        if (running is not null && (!running.IsCompleted || Environment.TickCount64 - Interlocked.Read(ref _probeStarted) < 1000))
        {
            return running;
        }

        Interlocked.Exchange(ref _probeStarted, Environment.TickCount64);
        var probe = ProbeAndKeepAsync();
        Volatile.Write(ref _probe, probe);
        return probe;
    }

    private async Task<string?> ProbeAndKeepAsync()
    {
        try
        {
            var cause = await RedisDiagnosis.ProbeAsync(_settings, CancellationToken.None).ConfigureAwait(false);
            _diagnosis = cause;
            return cause;
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Closes the connection, and one still being made as soon as it completes.</summary>
    public async ValueTask CloseAsync()
    {
        _closed = true;
        var connecting = Interlocked.Exchange(ref _connecting, null);
        var connection = Interlocked.Exchange(ref _connection, null);
        if (connection is not null)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        else if (connecting is not null)
        {
            _ = connecting.ContinueWith(
                static t =>
                {
                    if (t.IsCompletedSuccessfully)
                    {
                        t.Result.Dispose();
                    }

                    return t.Exception;
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    private ConnectionMultiplexer? Adopt(Task<ConnectionMultiplexer> connecting)
    {
        if (_closed)
        {
            return null;
        }

        if (connecting.IsCompletedSuccessfully)
        {
            var connection = connecting.Result;
            if (Interlocked.CompareExchange(ref _connection, connection, null) is { } adopted)
            {
                return adopted;
            }

            // Kept so that "not connected" can say why (authentication, refused, timeout).
            connection.ConnectionFailed += (_, e) => _lastFailure = e.Exception is { } failure ? RedisDiagnosis.Describe(_settings, failure) : e.FailureType.ToString();
            connection.ConnectionRestored += (_, e) =>
            {
                _lastFailure = null;
                _diagnosis = null;
                // The end of an outage, for whoever read its start in the log.
                _log($"the {e.ConnectionType.ToString().ToLowerInvariant()} connection to Redis at {e.EndPoint} is restored.", BackendLogLevel.Information);
            };
            return connection;
        }

        // Callers hold the store's flush lock, so one failed attempt starts exactly one new one.
        if (Volatile.Read(ref _connecting) == connecting)
        {
            _log($"connecting to Redis at {_settings.Endpoints} failed: {(connecting.Exception?.InnerException is { } failure ? RedisDiagnosis.Describe(_settings, failure) : "cancelled")}; retrying.", BackendLogLevel.Warning);
            Volatile.Write(ref _connecting, ConnectionMultiplexer.ConnectAsync(_settings.Options));
            if (_closed)
            {
                // Closed while the attempt was being started: CloseAsync may have missed it.
                _ = CloseAsync();
            }
        }

        return null;
    }
}
