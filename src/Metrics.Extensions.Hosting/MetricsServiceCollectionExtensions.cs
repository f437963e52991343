using Metrics;
using Metrics.Configuration;
using Metrics.Extensions.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Adds metrics to a host's services. Applications call <c>builder.AddMetrics()</c> on the host builder
/// (<see cref="MetricsHostApplicationBuilderExtensions"/>); these are for code that only has the service collection.
/// </summary>
/// <remarks>
/// The service-collection method is not called <c>AddMetrics</c>: Microsoft.Extensions.Diagnostics already defines
/// <c>IServiceCollection.AddMetrics()</c> (it registers <c>IMeterFactory</c>) in this namespace, and every ASP.NET Core
/// application sees it, so a second one would make every call ambiguous.
/// </remarks>
public static class MetricsServiceCollectionExtensions
{
    /// <summary>
    /// Adds metrics configured from the <c>Metrics</c> section of the host's configuration (appsettings.json, environment
    /// variables such as <c>Metrics__Backend=SharedMemory</c>, command line): the backend becomes the default, the
    /// <see cref="MetricRegistry"/> can be injected, .NET's own metrics (runtime, ASP.NET Core, HttpClient, process) are
    /// published into it, backend messages go to <c>ILogger</c>, and stopping the host flushes and releases the backends.
    /// </summary>
    /// <param name="services">The host's services.</param>
    /// <returns>The services, for chaining.</returns>
    /// <remarks>
    /// The backend is loaded when the host starts: a bad backend name or setting fails <c>StartAsync</c> with a
    /// <see cref="MetricsConfigurationException"/> saying what to fix, so the process exits with an error.
    /// </remarks>
    public static IServiceCollection AddMetricsHosting(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (services.Any(d => d.ServiceType == typeof(MetricsHost)))
        {
            return services;
        }

        services.AddOptions();
        services.AddSingleton<IConfigureOptions<MetricsOptions>>(sp => new ConfigureFromConfiguration(sp.GetService<IConfiguration>()));
        services.TryAddSingleton<MetricsHost>();
        services.TryAddSingleton(sp => sp.GetRequiredService<MetricsHost>().Registry);

        // First, so that it starts before (and stops after) every other hosted service that may create metrics.
        services.Insert(0, ServiceDescriptor.Singleton<IHostedService, MetricsHostedService>());
        return services;
    }

    /// <summary>
    /// Adds metrics as <see cref="AddMetricsHosting(IServiceCollection)"/>, then applies <paramref name="configure"/> over what the
    /// configuration says.
    /// </summary>
    /// <param name="services">The host's services.</param>
    /// <param name="configure">Sets options in code, for example <c>o =&gt; o.Backend = "SharedMemory"</c>.</param>
    /// <returns>The services, for chaining.</returns>
    public static IServiceCollection AddMetricsHosting(this IServiceCollection services, Action<MetricsOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        services.AddMetricsHosting();
        services.Configure(configure);
        return services;
    }

    /// <summary>
    /// Serves the metrics on a standalone HTTP server (<c>http://127.0.0.1:9464/metrics</c> by default) for as long as the
    /// host runs, for applications without ASP.NET Core; adds metrics (<see cref="AddMetricsHosting(IServiceCollection)"/>) when
    /// not added yet.
    /// </summary>
    /// <param name="services">The host's services.</param>
    /// <param name="configure">Sets the port, address, path or further registries; defaults when null.</param>
    /// <returns>The services, for chaining.</returns>
    public static IServiceCollection AddMetricServer(this IServiceCollection services, Action<MetricServerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddMetricsHosting();
        if (configure is not null)
        {
            services.Configure(configure);
        }

        services.TryAddSingleton<MetricServerService>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<MetricServerService>());
        return services;
    }

    private sealed class ConfigureFromConfiguration(IConfiguration? configuration) : IConfigureOptions<MetricsOptions>
    {
        public void Configure(MetricsOptions options)
        {
            if (configuration is null)
            {
                return;
            }

            var read = MetricsOptions.FromConfiguration(configuration);
            options.Backend = read.Backend ?? options.Backend;
            options.PluginsPath = read.PluginsPath ?? options.PluginsPath;
            options.ShutdownTimeout = read.ShutdownTimeout;
            options.CollectionInterval = read.CollectionInterval;
            options.MetersEnabled = read.MetersEnabled;
            options.ProcessMetrics = read.ProcessMetrics;
            // Either source may turn automatic exemplars on; configuration does not turn off what code turned on.
            options.AutomaticExemplars |= read.AutomaticExemplars;
            if (configuration[$"{MetricsOptions.SectionName}:Exemplars:MinInterval"] is not null)
            {
                options.AutomaticExemplarInterval = read.AutomaticExemplarInterval;
            }
            options.CardinalityLimit = read.CardinalityLimit ?? options.CardinalityLimit;
            foreach (var (key, value) in read.BackendConfig)
            {
                options.BackendConfig[key] = value;
            }

            foreach (var prefix in read.IncludeMeters)
            {
                options.IncludeMeters.Add(prefix);
            }

            foreach (var prefix in read.ExcludeMeters)
            {
                options.ExcludeMeters.Add(prefix);
            }
        }
    }
}
