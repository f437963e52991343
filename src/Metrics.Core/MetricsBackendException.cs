namespace Metrics;

/// <summary>
/// A backend failed while the host read it (a scrape's collection). The message is the backend's own, prefixed with the
/// backend's name and the original exception type, with the secret values of its configuration masked.
/// </summary>
public sealed class MetricsBackendException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="backend">The backend's name.</param>
    /// <param name="originalType">The type name of the backend's exception.</param>
    /// <param name="message">The backend's message, secrets masked.</param>
    /// <param name="inner">The backend's exception, only when its message held no secret (it would be logged as it is).</param>
    public MetricsBackendException(string backend, string originalType, string message, Exception? inner)
        : base($"The metrics backend '{backend}' failed ({originalType}): {message}", inner)
    {
        Backend = backend;
    }

    /// <summary>Creates the exception with a message.</summary>
    public MetricsBackendException()
        : this("unknown", nameof(Exception), "no details", null)
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">The message.</param>
    public MetricsBackendException(string message)
        : base(message)
    {
        Backend = "unknown";
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public MetricsBackendException(string message, Exception innerException)
        : base(message, innerException)
    {
        Backend = "unknown";
    }

    /// <summary>The name of the backend that failed.</summary>
    public string Backend { get; } = "unknown";
}
