namespace Metrics;

/// <summary>A backend configuration value is missing or has the wrong type. The message names the key and what it expects.</summary>
public sealed class BackendConfigException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="key">The full configuration key, for example <c>Metrics:BackendConfig:FlushInterval</c>.</param>
    /// <param name="message">What is wrong and how to fix it.</param>
    public BackendConfigException(string key, string message)
        : base(message) => Key = key;

    /// <summary>Creates the exception with an inner cause.</summary>
    /// <param name="key">The full configuration key.</param>
    /// <param name="message">What is wrong and how to fix it.</param>
    /// <param name="innerException">The cause.</param>
    public BackendConfigException(string key, string message, Exception innerException)
        : base(message, innerException) => Key = key;

    /// <summary>The full configuration key that is wrong.</summary>
    public string Key { get; }
}
