using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Metrics;

/// <summary>Records exemplars for counters and histograms: explicit ones, and automatic ones from the current trace.</summary>
internal static class ExemplarSupport
{
    private const string TraceIdLabel = "trace_id";
    private const string SpanIdLabel = "span_id";

    // The wall clock read at the last change of Environment.TickCount64: reading the wall clock costs more than the rest
    // of an exemplar observation, the tick count a fraction of that. Two fields, set without a lock: a reader that sees
    // one update's tick with another's time still gets a wall-clock reading taken within a tick of now.
    private static long s_clockTick = long.MinValue;
    private static double s_clockSeconds;

    /// <summary>
    /// Wall-clock seconds since the Unix epoch, at millisecond resolution (what OpenMetrics timestamps show), read again
    /// once per change of the system tick count: a timestamp trails the time of its observation by at most one tick
    /// (1 to 16 ms by system; prometheus-net's exemplar timestamps are as coarse).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double UnixNow()
    {
        var tick = Environment.TickCount64;
        return tick == Volatile.Read(ref s_clockTick) ? Volatile.Read(ref s_clockSeconds) : ReadClock(tick);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static double ReadClock(long tick)
    {
        var seconds = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        Volatile.Write(ref s_clockSeconds, seconds);
        Volatile.Write(ref s_clockTick, tick);
        return seconds;
    }

    /// <summary>Stores <paramref name="exemplar"/> on <paramref name="value"/>, or drops it (noted once) when the backend cannot.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Record(MetricFamily family, IMetricBackend value, in Exemplar exemplar, double amount)
    {
        if (exemplar.IsEmpty)
        {
            return;
        }

        var backend = family.Backend;
        if ((backend.Capabilities & BackendCapabilities.Exemplars) == 0)
        {
            backend.DropExemplar();
            return;
        }

        value.RecordExemplar(new RecordedExemplar(exemplar, amount, UnixNow()));
    }

    /// <summary>
    /// Records the current trace as an exemplar when there is a sampled activity and the series' last automatic exemplar
    /// is at least the registry's interval old. <paramref name="next"/> is the series' next allowed time (ms ticks).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void RecordAutomatic(MetricFamily family, IMetricBackend value, ref long next, double amount)
    {
        var activity = Activity.Current;
        if (activity is null || !activity.Recorded)
        {
            return;
        }

        var now = Environment.TickCount64;
        var due = Volatile.Read(ref next);
        if (now < due || Interlocked.CompareExchange(ref next, now + family.Registry.AutomaticExemplarIntervalMs, due) != due)
        {
            return;
        }

        var exemplar = Exemplar.Of(TraceIdLabel, activity.TraceId.ToHexString(), SpanIdLabel, activity.SpanId.ToHexString());
        Record(family, value, exemplar, amount);
    }
}
