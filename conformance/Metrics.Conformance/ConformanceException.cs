namespace Metrics.Conformance;

/// <summary>A backend broke a rule of the contract. The message says what was expected, what was read and the likely bug.</summary>
public sealed class ConformanceException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="checkName">The failing check.</param>
    /// <param name="message">What was expected, what was read, and the likely bug.</param>
    public ConformanceException(string checkName, string message)
        : base(message) => CheckName = checkName;

    /// <summary>Creates the exception with the backend's exception as the cause.</summary>
    /// <param name="checkName">The failing check.</param>
    /// <param name="message">What was expected, what was read, and the likely bug.</param>
    /// <param name="innerException">What the backend threw.</param>
    public ConformanceException(string checkName, string message, Exception innerException)
        : base(message, innerException) => CheckName = checkName;

    /// <summary>The name of the failing check.</summary>
    public string CheckName { get; }
}
