using System.Collections.Concurrent;

namespace Metrics;

/// <summary>How serious a message a backend writes through <see cref="BackendLog"/> is.</summary>
public enum BackendLogLevel
{
    /// <summary>Detail for diagnosing the backend; usually not recorded.</summary>
    Debug,

    /// <summary>A normal event worth recording: a connection established again, a store created.</summary>
    Information,

    /// <summary>Something went wrong but nothing is lost yet: a retried write, a slow flush.</summary>
    Warning,

    /// <summary>Values were lost or cannot be stored: updates dropped, a store refused a series.</summary>
    Error,
}

/// <summary>
/// Receives a backend's messages once <see cref="BackendLog"/> has rate-limited them.
/// </summary>
/// <param name="backendName">The backend's name, as passed to <see cref="BackendLog.Write"/>.</param>
/// <param name="level">How serious the message is.</param>
/// <param name="message">The message.</param>
/// <param name="exception">The exception behind the message, or null.</param>
public delegate void BackendLogHandler(string backendName, BackendLogLevel level, string message, Exception? exception);

/// <summary>
/// Contract 1.1: the one channel through which a backend reports faults it must not throw from an update (a network or
/// disk error, a full store, dropped updates). The host routes it: to <c>ILogger</c> (category
/// <c>Metrics.Backends.&lt;name&gt;</c>) in an application using <c>AddMetrics</c>, otherwise to the <c>EventSource</c>
/// named <c>Metrics</c>. A backend never writes to the console itself.
/// </summary>
/// <remarks>
/// Messages are rate-limited per backend name (<see cref="MaxMessagesPerMinute"/>), so a backend may call
/// <see cref="Write"/> on every failed attempt without flooding the log; what is held back is counted and reported in
/// one message when the minute is over. Calls never throw and never block on I/O; they are cheap when the message is
/// suppressed. Secrets (passwords, connection strings) must not be part of the message.
/// </remarks>
/// <example>
/// <code>
/// catch (RedisConnectionException e)
/// {
///     BackendLog.Write("Redis", BackendLogLevel.Warning, "Flush failed; 1,200 updates kept for the next attempt.", e);
/// }
/// </code>
/// </example>
public static class BackendLog
{
    private static readonly ConcurrentDictionary<string, Window> Windows = new(StringComparer.Ordinal);
    private static BackendLogHandler? s_handler;

    /// <summary>
    /// Where messages go; set by the host (Core installs an <c>EventSource</c> route, hosting an <c>ILogger</c> one). Null
    /// drops them. Backends do not set it.
    /// </summary>
    public static BackendLogHandler? Handler
    {
        get => Volatile.Read(ref s_handler);
        set => Volatile.Write(ref s_handler, value);
    }

    /// <summary>How many messages per backend name pass in one minute; the rest are counted and summarized. 20 by default; 0 or less lets all through.</summary>
    public static int MaxMessagesPerMinute { get; set; } = 20;

    /// <summary>Sets <see cref="Handler"/> to <paramref name="handler"/> only when no handler is installed.</summary>
    /// <param name="handler">The handler to install.</param>
    /// <returns>Whether it was installed.</returns>
    public static bool TrySetDefaultHandler(BackendLogHandler handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return Interlocked.CompareExchange(ref s_handler, handler, null) is null;
    }

    /// <summary>Reports a message from backend <paramref name="backendName"/>.</summary>
    /// <param name="backendName">The backend's name, such as <c>Redis</c>; it becomes the log category's last part.</param>
    /// <param name="level">How serious it is.</param>
    /// <param name="message">What happened, what was lost and what the operator can do; never a secret.</param>
    /// <param name="exception">The exception behind it, or null.</param>
    public static void Write(string backendName, BackendLogLevel level, string message, Exception? exception = null)
    {
        var handler = Handler;
        if (handler is null || backendName is null || message is null)
        {
            return;
        }

        var limit = MaxMessagesPerMinute;
        var suppressed = 0L;
        if (limit > 0)
        {
            var window = Windows.GetOrAdd(backendName, static _ => new Window());
            if (!window.TryPass(limit, out suppressed))
            {
                return;
            }
        }

        try
        {
            if (suppressed > 0)
            {
                handler(backendName, BackendLogLevel.Warning, $"{suppressed} further message(s) from the metrics backend '{backendName}' were suppressed in the last minute (at most {limit} per minute pass).", null);
            }

            handler(backendName, level, message, exception);
        }
        catch (Exception)
        {
            // A failing log route must not turn a backend's fault report into an application failure.
        }
    }

    private sealed class Window
    {
        private readonly Lock _lock = new();
        private long _start = Environment.TickCount64;
        private int _passed;
        private long _suppressed;

        public bool TryPass(int limit, out long reportSuppressed)
        {
            lock (_lock)
            {
                reportSuppressed = 0;
                var now = Environment.TickCount64;
                if (now - _start >= 60_000)
                {
                    reportSuppressed = _suppressed;
                    _start = now;
                    _passed = 0;
                    _suppressed = 0;
                }

                if (_passed >= limit)
                {
                    _suppressed++;
                    return false;
                }

                _passed++;
                return true;
            }
        }
    }
}
