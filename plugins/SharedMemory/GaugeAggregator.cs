namespace Metrics.Backends.SharedMemory;

/// <summary>Combines the per-process cells (and archive) of one aggregated gauge series, as a scrape or a Get reads it.</summary>
internal sealed class GaugeAggregator(GaugeAggregation mode, HashSet<long>? live)
{
    private double _value;
    private long _bestSequence = -1;

    /// <summary>Whether any contribution counted; a live-only series with none is left out of a scrape.</summary>
    public bool HasValue { get; private set; }

    public double Value => HasValue ? _value : 0;

    public static bool UsesCells(GaugeAggregation mode) => mode is GaugeAggregation.LiveSum or GaugeAggregation.Max or GaugeAggregation.LiveMax
        or GaugeAggregation.Min or GaugeAggregation.LiveMin or GaugeAggregation.LiveMostRecent;

    public static bool LiveOnly(GaugeAggregation mode) => mode is GaugeAggregation.LiveSum or GaugeAggregation.LiveMax
        or GaugeAggregation.LiveMin or GaugeAggregation.LiveMostRecent or GaugeAggregation.LivePerProcess;

    /// <summary>Adds one process slot's cell.</summary>
    /// <param name="owner">The epoch of the process that owns the cell (negative while a new owner takes it over).</param>
    /// <param name="value">The cell's value.</param>
    /// <param name="sequence">When the cell was last written, in store-wide write order (most-recent modes).</param>
    public void AddCell(long owner, double value, long sequence)
    {
        if (LiveOnly(mode) && !(owner > 0 && live!.Contains(owner)))
        {
            return;
        }

        if (mode == GaugeAggregation.LiveMostRecent)
        {
            if (sequence > _bestSequence)
            {
                _bestSequence = sequence;
                _value = value;
                HasValue = true;
            }

            return;
        }

        Combine(value);
    }

    /// <summary>Adds the folded values of exited processes (Max and Min).</summary>
    public void AddArchive(long bits)
    {
        if (bits != SharedMemoryStore.EmptyArchive)
        {
            Combine(BitConverter.Int64BitsToDouble(bits));
        }
    }

    public static double Combine(GaugeAggregation mode, double a, double b) => mode switch
    {
        GaugeAggregation.Max or GaugeAggregation.LiveMax => Math.Max(a, b),
        GaugeAggregation.Min or GaugeAggregation.LiveMin => Math.Min(a, b),
        _ => a + b,
    };

    private void Combine(double value)
    {
        // The first contribution is taken as is, so a lone -0.0 stays -0.0 rather than becoming 0.0 + -0.0.
        _value = HasValue ? Combine(mode, _value, value) : value;
        HasValue = true;
    }
}
