using System.Diagnostics.Tracing;

namespace Metrics;

/// <summary>
/// The <c>EventSource</c> named <c>Metrics</c>: where backend messages (<see cref="BackendLog"/>) go when no host routes
/// them to <c>ILogger</c>. Read it with <c>dotnet-trace collect --providers Metrics</c> or an <c>EventListener</c>.
/// </summary>
[EventSource(Name = "Metrics")]
internal sealed class MetricsEventSource : EventSource
{
    public static readonly MetricsEventSource Log = new();

    private MetricsEventSource()
    {
    }

    /// <summary>Installs this source as <see cref="BackendLog.Handler"/> unless a host installed another route.</summary>
    public static void InstallDefault() => BackendLog.TrySetDefaultHandler(Route);

    /// <summary>The handler that writes to this source, for hosts restoring the default route.</summary>
    public static void Route(string backendName, BackendLogLevel level, string message, Exception? exception)
    {
        var log = Log;
        var eventLevel = ToEventLevel(level);
        if (!log.IsEnabled(eventLevel, EventKeywords.All))
        {
            return;
        }

        // A backend's text may quote a secret setting (a client library's exception, say): masked before it is written.
        message = BackendLifetime.ScrubSecrets(message);
        var detail = exception is null ? string.Empty : BackendLifetime.ScrubSecrets($"{exception.GetType().FullName}: {exception.Message}");
        switch (level)
        {
            case BackendLogLevel.Error: log.BackendError(backendName, message, detail); break;
            case BackendLogLevel.Warning: log.BackendWarning(backendName, message, detail); break;
            case BackendLogLevel.Information: log.BackendInformation(backendName, message, detail); break;
            default: log.BackendDebug(backendName, message, detail); break;
        }
    }

    [Event(1, Level = EventLevel.Error, Message = "{0}: {1} {2}")]
    public void BackendError(string backend, string message, string exception) => WriteEvent(1, backend, message, exception);

    [Event(2, Level = EventLevel.Warning, Message = "{0}: {1} {2}")]
    public void BackendWarning(string backend, string message, string exception) => WriteEvent(2, backend, message, exception);

    [Event(3, Level = EventLevel.Informational, Message = "{0}: {1} {2}")]
    public void BackendInformation(string backend, string message, string exception) => WriteEvent(3, backend, message, exception);

    [Event(4, Level = EventLevel.Verbose, Message = "{0}: {1} {2}")]
    public void BackendDebug(string backend, string message, string exception) => WriteEvent(4, backend, message, exception);

    private static EventLevel ToEventLevel(BackendLogLevel level) => level switch
    {
        BackendLogLevel.Error => EventLevel.Error,
        BackendLogLevel.Warning => EventLevel.Warning,
        BackendLogLevel.Information => EventLevel.Informational,
        _ => EventLevel.Verbose,
    };
}
