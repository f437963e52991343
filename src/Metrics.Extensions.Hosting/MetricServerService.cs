using Metrics.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Metrics.Extensions.Hosting;

/// <summary>Where the standalone metrics server of <c>AddMetricServer</c> listens.</summary>
public sealed class MetricServerOptions
{
    /// <summary>The TCP port; 9464 by default, 0 for a free one (read <see cref="MetricServerService.Url"/>).</summary>
    public int Port { get; set; } = 9464;

    /// <summary>The IP address to listen on; <c>127.0.0.1</c> (loopback) by default.</summary>
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>The path served; <c>/metrics</c> by default.</summary>
    public string Path { get; set; } = "/metrics";

    /// <summary>Further registries served in the same response as the host's registry.</summary>
    public IList<MetricRegistry> AdditionalRegistries { get; } = [];
}

/// <summary>
/// Runs <see cref="MetricServer"/> as a hosted service, for applications without ASP.NET Core (worker services, console
/// hosts): it listens once the host starts and stops with it.
/// </summary>
public sealed class MetricServerService : IHostedService
{
    private readonly MetricsHost _metrics;
    private readonly MetricServerOptions _options;
    private readonly ILogger _logger;
    private MetricServer? _server;

    /// <summary>Creates the service; the host starts it.</summary>
    /// <param name="metrics">The metrics of the host.</param>
    /// <param name="options">Where to listen.</param>
    /// <param name="logger">Where the address is logged.</param>
    public MetricServerService(MetricsHost metrics, IOptions<MetricServerOptions> options, ILogger<MetricServerService> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _metrics = metrics;
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>The URL served, once started.</summary>
    public Uri? Url => _server?.Url;

    /// <inheritdoc/>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _server = new MetricServer(_options.Port, _options.Host, _options.Path, [_metrics.Registry, .. _options.AdditionalRegistries]).Start();
        _logger.LogInformation("Serving metrics on {Url}", _server.Url);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task StopAsync(CancellationToken cancellationToken) => _server?.StopAsync() ?? Task.CompletedTask;
}
