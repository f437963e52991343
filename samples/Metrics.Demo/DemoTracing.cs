using System.Buffers.Binary;
using System.Diagnostics;

namespace Metrics.Demo;

/// <summary>
/// Traces the demo's requests as a tracing SDK would: an <see cref="ActivityListener"/> on ASP.NET Core's and the demo's
/// own activity sources that records a share of the traces (<c>Demo:TraceSampleRatio</c>, 0.5 by default), decided from
/// the trace id so every process makes the same decision for one trace. A recorded request's trace id becomes the
/// exemplar of its latency observation; requests of unsampled traces get none.
/// </summary>
internal sealed class DemoTracing : IDisposable
{
    /// <summary>The demo's own spans (one per simulated piece of work).</summary>
    public static readonly ActivitySource Source = new("Metrics.Demo");

    private readonly ActivityListener _listener;

    public DemoTracing(double sampleRatio)
    {
        if (!(sampleRatio is >= 0 and <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(sampleRatio), sampleRatio, "Demo:TraceSampleRatio is the share of traces recorded: a number from 0 to 1, for example 0.5.");
        }

        // The upper bound on the trace id's first 8 bytes (as an unsigned number) for a trace to be sampled.
        var bound = sampleRatio >= 1 ? ulong.MaxValue : (ulong)(sampleRatio * ulong.MaxValue);
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is "Microsoft.AspNetCore" || ReferenceEquals(source, Source),
            Sample = (ref ActivityCreationOptions<ActivityContext> options) =>
            {
                // A sampled parent (a traceparent header, or the request's own span) keeps its trace sampled.
                if (options.Parent != default)
                {
                    return options.Parent.TraceFlags.HasFlag(ActivityTraceFlags.Recorded) ? ActivitySamplingResult.AllDataAndRecorded : ActivitySamplingResult.PropagationData;
                }

                Span<byte> id = stackalloc byte[16];
                options.TraceId.CopyTo(id);
                return BinaryPrimitives.ReadUInt64BigEndian(id) <= bound ? ActivitySamplingResult.AllDataAndRecorded : ActivitySamplingResult.PropagationData;
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>The exemplar for the current request: its trace id when the trace is sampled, else none.</summary>
    public static Exemplar CurrentExemplar() =>
        Activity.Current is { Recorded: true } activity ? Exemplar.Of("trace_id", activity.TraceId.ToHexString()) : default;

    public void Dispose() => _listener.Dispose();
}
