namespace Metrics.Conformance;

/// <summary>Sizes and limits of the checks; the defaults suit a fast backend on a small machine.</summary>
public sealed record ConformanceOptions
{
    /// <summary>Threads updating one value at once in the concurrency checks.</summary>
    public int Threads { get; init; } = 4;

    /// <summary>Increments per thread in the concurrency checks.</summary>
    public int IncrementsPerThread { get; init; } = 100_000;

    /// <summary>Child processes started by the multi-process checks.</summary>
    public int ChildProcesses { get; init; } = 3;

    /// <summary>Increments per child process and series in the multi-process checks.</summary>
    public int ChildIncrements { get; init; } = 10_000;

    /// <summary>How long a child process may run before the check fails.</summary>
    public TimeSpan ChildTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// How long one check may run. A check still running then fails, naming the step it was in (a hang is a bug: an
    /// unbounded wait on the network, a lock never released, a flush waiting for a loop that never runs), and the run goes
    /// on with the next check; the hung thread is abandoned.
    /// </summary>
    public TimeSpan CheckTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The path of <c>Metrics.Conformance.Runner.dll</c>, which the multi-process checks start as child processes.
    /// When null it is found through the <c>METRICS_CONFORMANCE_RUNNER</c> environment variable, the running
    /// runner itself, or the <c>metrics-conformance-runner</c> folder the package copies next to the test assembly.
    /// </summary>
    public string? RunnerPath { get; init; }
}
