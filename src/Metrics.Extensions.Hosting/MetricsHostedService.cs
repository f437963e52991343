using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Metrics.Extensions.Hosting;

/// <summary>
/// Starts metrics with the host (loading the backend, so a bad configuration fails <c>StartAsync</c>) and, when the host
/// stops, flushes and releases the backends. Registered first by <c>AddMetrics</c>, so it starts before and stops after
/// every other hosted service.
/// </summary>
internal sealed class MetricsHostedService(IServiceProvider services) : IHostedService
{
    private MetricsHost? _host;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _host = services.GetRequiredService<MetricsHost>();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => _host?.StopAsync(cancellationToken) ?? Task.CompletedTask;
}
