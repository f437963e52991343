namespace Metrics.Conformance;

/// <summary>The outcome of one check.</summary>
/// <param name="Check">The check.</param>
/// <param name="Failure">Why it failed, or <see langword="null"/> when it passed.</param>
/// <param name="Elapsed">How long it ran.</param>
public sealed record ConformanceResult(ConformanceCheck Check, ConformanceException? Failure, TimeSpan Elapsed)
{
    /// <summary>Whether the check passed.</summary>
    public bool Passed => Failure is null;
}
