namespace Metrics.Backends.Redis;

/// <summary>
/// Redis could not be read or written in time, typically because it is unreachable. Thrown by
/// <see cref="RedisBackend.CollectAsync"/> so a scrape fails instead of showing zeros; never thrown by an update.
/// The message names the endpoints and the cause, never a password.
/// </summary>
public sealed class RedisBackendException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What failed, with secrets already removed.</param>
    public RedisBackendException(string message)
        : base(message)
    {
    }
}
