using System.Diagnostics;

namespace Metrics;

/// <summary>Something that records a duration in seconds: a histogram, a summary or a gauge.</summary>
internal interface IDurationSink
{
    void ObserveDuration(double seconds);
}

/// <summary>
/// Measures the time from its creation to <see cref="Dispose"/> and records it in seconds: observed by a
/// histogram or summary, set on a gauge. Use with <c>using</c> or <c>await using</c>; dispose it once.
/// </summary>
/// <example><code>using (latency.NewTimer()) { await HandleAsync(); }</code></example>
public readonly struct MetricTimer : IDisposable, IAsyncDisposable
{
    private readonly IDurationSink? _sink;
    private readonly long _start;

    internal MetricTimer(IDurationSink sink)
    {
        _sink = sink;
        _start = Stopwatch.GetTimestamp();
    }

    /// <summary>The time elapsed since the timer started.</summary>
    public TimeSpan Elapsed => Stopwatch.GetElapsedTime(_start);

    /// <summary>Records the elapsed time. Equivalent to <see cref="ObserveDuration"/>.</summary>
    public void Dispose() => ObserveDuration();

    /// <summary>Records the elapsed time.</summary>
    /// <returns>A completed task.</returns>
    public ValueTask DisposeAsync()
    {
        ObserveDuration();
        return ValueTask.CompletedTask;
    }

    /// <summary>Records the elapsed time now and returns it.</summary>
    /// <returns>The elapsed time.</returns>
    public TimeSpan ObserveDuration()
    {
        var elapsed = Stopwatch.GetElapsedTime(_start);
        _sink?.ObserveDuration(elapsed.TotalSeconds);
        return elapsed;
    }
}

/// <summary>Increments a gauge when created and decrements it when disposed: in-flight requests, active jobs.</summary>
/// <example><code>using (inProgress.TrackInProgress()) { await HandleAsync(); }</code></example>
public readonly struct InProgressScope : IDisposable, IAsyncDisposable
{
    private readonly Gauge? _gauge;

    internal InProgressScope(Gauge gauge)
    {
        _gauge = gauge;
        gauge.Inc();
    }

    /// <summary>Decrements the gauge.</summary>
    public void Dispose() => _gauge?.Dec();

    /// <summary>Decrements the gauge.</summary>
    /// <returns>A completed task.</returns>
    public ValueTask DisposeAsync()
    {
        _gauge?.Dec();
        return ValueTask.CompletedTask;
    }
}
