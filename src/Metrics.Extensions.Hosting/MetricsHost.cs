using System.Collections.Concurrent;
using Metrics.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Metrics.Extensions.Hosting;

/// <summary>
/// What <c>AddMetrics</c> sets up in a host: the configured backend as the default, the registry, the meter bridge and
/// the process metrics; backend messages routed to <see cref="ILogger"/> while the host runs.
/// </summary>
public sealed class MetricsHost
{
    private readonly ILoggerFactory _loggerFactory;
    private readonly ConcurrentDictionary<string, ILogger> _backendLoggers = new(StringComparer.Ordinal);
    private readonly BackendLogHandler _route;
    private readonly BackendLogHandler? _previousRoute;
    private MeterBridge? _bridge;
    private ProcessMetrics? _process;

    /// <summary>Loads the configured backend, makes it the default and starts publishing .NET's metrics.</summary>
    /// <param name="options">The <c>Metrics</c> options.</param>
    /// <param name="loggerFactory">Where backend and bridge messages go; none when null.</param>
    /// <exception cref="MetricsConfigurationException">The configuration or the backend plugin is wrong; the message says what to do.</exception>
    public MetricsHost(IOptions<MetricsOptions> options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Value;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;

        // Routed before the backend loads, so that what its Initialize reports reaches the application's log.
        _route = Route;
        _previousRoute = BackendLog.Handler;
        BackendLog.Handler = _route;
        try
        {
            Options.Validate();
            Backend = MetricsConfiguration.Load(Options);
            if (Options.CardinalityLimit is { } limit)
            {
                MetricRegistry.DefaultCardinalityLimit = limit;
            }

            try
            {
                ConfiguredBackend.Default = Backend;
            }
            catch (InvalidOperationException e)
            {
                throw new MetricsConfigurationException(
                    $"AddMetrics selected the metrics backend '{Backend.Name}', but metrics were already created in the default registry with '{ConfiguredBackend.Default.Name}' before the host started (static fields, or code run before Build()). Create those metrics after the host is built (inject MetricRegistry), or select the backend with the Metrics__Backend environment variable so both agree.",
                    e);
            }

            Registry = MetricRegistry.Default;
            if (Options.AutomaticExemplars)
            {
                Registry.AutomaticExemplarInterval = Options.AutomaticExemplarInterval;
                Registry.AutomaticExemplars = true;
            }

            var logger = _loggerFactory.CreateLogger("Metrics.Hosting");
            if (Options.MetersEnabled)
            {
                var bridgeOptions = new MeterBridgeOptions { CollectionInterval = Options.CollectionInterval };
                foreach (var prefix in Options.IncludeMeters)
                {
                    bridgeOptions.IncludeMeters.Add(prefix);
                }

                foreach (var prefix in Options.ExcludeMeters)
                {
                    bridgeOptions.ExcludeMeters.Add(prefix);
                }

                _bridge = new MeterBridge(Registry, bridgeOptions, _loggerFactory.CreateLogger("Metrics.MeterBridge")).Start();
            }

            if (Options.ProcessMetrics)
            {
                _process = new ProcessMetrics(Registry, Options.CollectionInterval, logger);
            }

            logger.LogInformation("Metrics backend: {Backend} ({Type}); .NET meters {Meters}; process metrics {Process}.", Backend.Name, Backend.Type.FullName, Options.MetersEnabled ? "published" : "off", Options.ProcessMetrics ? "on" : "off");
        }
        catch
        {
            _bridge?.Dispose();
            _process?.Dispose();
            RestoreRoute();
            throw;
        }
    }

    /// <summary>The options in effect.</summary>
    public MetricsOptions Options { get; }

    /// <summary>The configured backend, now <see cref="ConfiguredBackend.Default"/>.</summary>
    public ConfiguredBackend Backend { get; }

    /// <summary>The registry served and injected: <see cref="MetricRegistry.Default"/>.</summary>
    public MetricRegistry Registry { get; }

    /// <summary>The bridge publishing System.Diagnostics.Metrics instruments, or null when <see cref="MetricsOptions.MetersEnabled"/> is off.</summary>
    public MeterBridge? Bridge => _bridge;

    /// <summary>
    /// Records the last observable values, stops the bridge and the process metrics, then flushes and releases every backend
    /// of the process within <see cref="MetricsOptions.ShutdownTimeout"/>. Called when the host stops.
    /// </summary>
    /// <param name="cancellationToken">The host's stop token; stopping ends early when it is signalled.</param>
    /// <returns>A task completing when the backends are released or the timeout elapsed.</returns>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // A process about to exit stores its final observable values, so totals across processes stay exact.
        _bridge?.RecordObservableInstruments();
        _process?.Record();
        _bridge?.Dispose();
        _process?.Dispose();
        _bridge = null;
        _process = null;
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(Options.ShutdownTimeout);
        await ConfiguredBackend.ShutdownAllAsync(bounded.Token).ConfigureAwait(false);
        RestoreRoute();
    }

    private void RestoreRoute()
    {
        // Only if nobody replaced it meanwhile (a second host in the same process keeps its own route).
        if (ReferenceEquals(BackendLog.Handler, _route))
        {
            BackendLog.Handler = _previousRoute;
        }
    }

    private void Route(string backendName, BackendLogLevel level, string message, Exception? exception)
    {
        var logger = _backendLoggers.GetOrAdd(backendName, static (name, factory) => factory.CreateLogger($"Metrics.Backends.{name}"), _loggerFactory);
        var logLevel = level switch
        {
            BackendLogLevel.Error => LogLevel.Error,
            BackendLogLevel.Warning => LogLevel.Warning,
            BackendLogLevel.Information => LogLevel.Information,
            _ => LogLevel.Debug,
        };
#pragma warning disable CA2254 // The message is the backend's own text, already complete; there is nothing to template.
        // A backend's text may quote a secret setting; masked here, and the exception (logged whole) dropped when its text held one.
        var masked = ConfiguredBackend.ScrubSecrets(message);
        var exceptionText = exception?.ToString();
        logger.Log(logLevel, exceptionText is not null && ConfiguredBackend.ScrubSecrets(exceptionText) != exceptionText ? null : exception, masked);
#pragma warning restore CA2254
    }
}
