using System.Collections.Concurrent;
using System.Globalization;

namespace Metrics.Extensions.Hosting;

/// <summary>
/// The gauge modes that keep one process's values apart in a shared backend, chosen once per backend: the live modes
/// where the backend supports them (a dead process's values disappear), else the plain per-process ones.
/// </summary>
internal static class ProcessAggregation
{
    private static readonly ConcurrentDictionary<ConfiguredBackend, (GaugeAggregation PerProcess, GaugeAggregation Sum)> Modes = new();

    /// <summary>Whether values of <paramref name="backend"/> are shared with other processes.</summary>
    public static bool IsShared(ConfiguredBackend backend) => backend.Capabilities.HasFlag(BackendCapabilities.SharedAcrossProcesses);

    /// <summary>A gauge that is one series per process (a <c>pid</c> label) on a shared backend, a plain gauge otherwise.</summary>
    public static GaugeAggregation PerProcess(ConfiguredBackend backend) => IsShared(backend) ? For(backend).PerProcess : GaugeAggregation.Sum;

    /// <summary>A gauge that sums each process's own contribution on a shared backend, a plain gauge otherwise.</summary>
    public static GaugeAggregation Sum(ConfiguredBackend backend) => IsShared(backend) ? For(backend).Sum : GaugeAggregation.Sum;

    private static (GaugeAggregation PerProcess, GaugeAggregation Sum) For(ConfiguredBackend backend) =>
        Modes.GetOrAdd(backend, static b => (
            Supports(b, GaugeAggregation.LivePerProcess) ? GaugeAggregation.LivePerProcess : GaugeAggregation.PerProcess,
            Supports(b, GaugeAggregation.LiveSum) ? GaugeAggregation.LiveSum : GaugeAggregation.PerProcess));

    private static bool Supports(ConfiguredBackend backend, GaugeAggregation mode)
    {
        if (backend.Capabilities.HasFlag(BackendCapabilities.AllGaugeAggregations))
        {
            return true;
        }

        // A backend that does not declare every mode refuses one it cannot honour when the first value is created: ask
        // once (this creates one probe value in its store).
        try
        {
            var labels = mode is GaugeAggregation.LivePerProcess or GaugeAggregation.PerProcess ? new[] { "pid" } : [];
            var values = labels.Length == 0 ? [] : new[] { Environment.ProcessId.ToString(CultureInfo.InvariantCulture) };
            backend.CreateValue(new MetricDescriptor("metrics_hosting_mode_probe", "Probes the gauge modes the backend supports.", MetricType.Gauge, labels, values, gaugeAggregation: mode));
            return true;
        }
        catch (NotSupportedException)
        {
            return false;
        }
    }
}
