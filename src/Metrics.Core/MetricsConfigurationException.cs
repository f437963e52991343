namespace Metrics;

/// <summary>
/// The metrics configuration is wrong: an unknown or unloadable backend, a bad plugins folder, an invalid setting.
/// Thrown at startup, with a message saying what was wrong, where, and what to do.
/// </summary>
public sealed class MetricsConfigurationException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What is wrong and how to fix it.</param>
    public MetricsConfigurationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    /// <param name="message">What is wrong and how to fix it.</param>
    /// <param name="innerException">The cause.</param>
    public MetricsConfigurationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
