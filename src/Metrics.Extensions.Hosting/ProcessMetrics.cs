using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Metrics.Extensions.Hosting;

/// <summary>
/// The standard Prometheus <c>process_*</c> metrics of this process: CPU time, resident and virtual memory, start time,
/// open and maximum file descriptors, threads. Recorded before each scrape of the registry and, on a shared backend, on an
/// interval; there each process has its own series (a <c>pid</c> label), gone when the process dies.
/// </summary>
/// <remarks>
/// On a shared backend <c>process_cpu_seconds_total</c> is a per-process gauge rather than a counter, because a store only
/// drops a dead process's series for gauges; <c>rate()</c> works on it all the same. <c>process_open_fds</c> and
/// <c>process_max_fds</c> are published where the operating system reports them (Linux).
/// </remarks>
public sealed class ProcessMetrics : IDisposable
{
    // One lock for every instance: two hosts in one process share the registry's metrics.
    private static readonly Lock RecordLock = new();
    private readonly MetricRegistry _registry;
    private readonly ILogger _logger;
    private readonly Counter? _cpuCounter;
    private readonly Gauge? _cpuGauge;
    private readonly Gauge _resident;
    private readonly Gauge _virtual;
    private readonly Gauge _startTime;
    private readonly Gauge? _openFds;
    private readonly Gauge? _maxFds;
    private readonly Gauge _threads;
    private readonly IDisposable _collectCallback;
    private readonly Timer? _timer;
    private long _lastFailure = long.MinValue;

    /// <summary>Registers the metrics in <paramref name="registry"/> and starts recording them.</summary>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <param name="interval">How often a shared backend gets this process's values; <see cref="TimeSpan.Zero"/> for scrapes only.</param>
    /// <param name="logger">Where a failure to read a statistic is reported; none when null.</param>
    public ProcessMetrics(MetricRegistry? registry = null, TimeSpan? interval = null, ILogger? logger = null)
    {
        _registry = registry ?? MetricRegistry.Default;
        _logger = logger ?? NullLogger.Instance;
        var backend = _registry.Backend;
        var shared = ProcessAggregation.IsShared(backend);
        var mode = ProcessAggregation.PerProcess(backend);
        Gauge NewGauge(string name, string help) => new(name, help, registry: _registry, aggregation: mode);
        const string cpuHelp = "Total user and system CPU time spent in seconds.";
        if (shared)
        {
            _cpuGauge = NewGauge("process_cpu_seconds_total", cpuHelp);
        }
        else
        {
            _cpuCounter = new Counter("process_cpu_seconds_total", cpuHelp, registry: _registry);
        }

        _resident = NewGauge("process_resident_memory_bytes", "Resident memory size in bytes.");
        _virtual = NewGauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
        _startTime = NewGauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.");
        if (OperatingSystem.IsLinux())
        {
            _openFds = NewGauge("process_open_fds", "Number of open file descriptors.");
            _maxFds = NewGauge("process_max_fds", "Maximum number of open file descriptors.");
        }

        _threads = NewGauge("process_threads", "Number of OS threads in the process.");
        Record();
        _collectCallback = _registry.AddCollectCallback(Record);
        var period = interval ?? TimeSpan.FromSeconds(5);
        if (shared && period > TimeSpan.Zero)
        {
            _timer = new Timer(static state => ((ProcessMetrics)state!).Record(), this, period, period);
        }
    }

    /// <summary>Records the current values now.</summary>
    public void Record()
    {
        lock (RecordLock)
        {
            try
            {
                var cpu = Environment.CpuUsage.TotalTime.TotalSeconds;
                if (_cpuCounter is not null)
                {
                    // The counter may be shared with another ProcessMetrics of this registry: add only what it lacks.
                    var recorded = _cpuCounter.Value;
                    if (cpu > recorded)
                    {
                        _cpuCounter.Inc(cpu - recorded);
                    }
                }
                else
                {
                    _cpuGauge!.Set(cpu);
                }

                using var process = Process.GetCurrentProcess();
                _resident.Set(process.WorkingSet64);
                _virtual.Set(process.VirtualMemorySize64);
                _startTime.Set(Math.Round(new DateTimeOffset(process.StartTime.ToUniversalTime()).ToUnixTimeMilliseconds() / 1000.0, 2));
                _threads.Set(process.Threads.Count);
                if (_openFds is not null)
                {
                    _openFds.Set(Directory.EnumerateFileSystemEntries("/proc/self/fd").Count());
                }

                if (_maxFds is not null && MaxOpenFiles() is { } max)
                {
                    _maxFds.Set(max);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                var now = Environment.TickCount64;
                if (now - _lastFailure > 60_000)
                {
                    _lastFailure = now;
                    _logger.LogWarning(e, "Reading the process statistics failed; the process_* metrics keep their previous values.");
                }
            }
        }
    }

    /// <summary>Stops recording; the metrics stay in the registry with their last values.</summary>
    public void Dispose()
    {
        _timer?.Dispose();
        _collectCallback.Dispose();
    }

    private static double? MaxOpenFiles()
    {
        // "Max open files            1048576              1048576              files": the soft limit is what applies.
        foreach (var line in File.ReadLines("/proc/self/limits"))
        {
            if (line.StartsWith("Max open files", StringComparison.Ordinal))
            {
                var fields = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return fields.Length > 0 && double.TryParse(fields[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var soft) ? soft : null;
            }
        }

        return null;
    }
}
