namespace Metrics;

/// <summary>
/// How a gauge's per-process values combine when several processes share one store. In-process backends
/// ignore it. The <c>Live</c> variants leave out what dead processes last wrote.
/// </summary>
public enum GaugeAggregation
{
    /// <summary>One shared value: <c>Inc</c>/<c>Dec</c> from every process add up; <c>Set</c> is last writer wins. A dead process's contribution stays.</summary>
    Sum,

    /// <summary>Sum of the values of processes that are still alive; a dead process's contribution is removed.</summary>
    LiveSum,

    /// <summary>The largest value any process has set, including processes that have exited.</summary>
    Max,

    /// <summary>The largest value among live processes.</summary>
    LiveMax,

    /// <summary>The smallest value any process has set, including processes that have exited.</summary>
    Min,

    /// <summary>The smallest value among live processes.</summary>
    LiveMin,

    /// <summary>The value written most recently by any process.</summary>
    MostRecent,

    /// <summary>The value written most recently by a process that is still alive.</summary>
    LiveMostRecent,

    /// <summary>
    /// One series per process: the host adds a <c>pid</c> label with the process id, so each process
    /// writes its own series. Series of exited processes stay.
    /// </summary>
    PerProcess,

    /// <summary>As <see cref="PerProcess"/>, but the series of exited processes are dropped.</summary>
    LivePerProcess,
}
