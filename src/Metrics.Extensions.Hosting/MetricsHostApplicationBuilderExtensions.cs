using Metrics;
using Metrics.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.Extensions.Hosting;

/// <summary>Adds metrics to a .NET application in one line: <c>builder.AddMetrics();</c>.</summary>
/// <example>
/// <code>
/// var builder = WebApplication.CreateBuilder(args);
/// builder.AddMetrics();
/// var app = builder.Build();
/// app.MapMetrics();
/// app.Run();
/// </code>
/// </example>
public static class MetricsHostApplicationBuilderExtensions
{
    /// <summary>
    /// Adds metrics configured from the <c>Metrics</c> section of the application's configuration (appsettings.json,
    /// environment variables such as <c>Metrics__Backend=SharedMemory</c>, command line): the backend becomes the default,
    /// the <see cref="MetricRegistry"/> can be injected, .NET's own metrics (runtime, ASP.NET Core, HttpClient, process)
    /// are published into it, backend messages go to <c>ILogger</c>, and stopping the host flushes and releases the
    /// backends within <see cref="MetricsOptions.ShutdownTimeout"/>.
    /// </summary>
    /// <typeparam name="TBuilder">The builder type (<c>WebApplicationBuilder</c>, <c>HostApplicationBuilder</c>, ...).</typeparam>
    /// <param name="builder">The application's builder.</param>
    /// <returns>The builder, for chaining.</returns>
    /// <remarks>
    /// The backend is loaded when the host starts: a bad backend name or setting fails <c>StartAsync</c> (so <c>Run</c>)
    /// with a <see cref="MetricsConfigurationException"/> saying what to fix, and the process exits with an error.
    /// </remarks>
    public static TBuilder AddMetrics<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddMetricsHosting();
        return builder;
    }

    /// <summary>Adds metrics as <see cref="AddMetrics{TBuilder}(TBuilder)"/>, then applies <paramref name="configure"/> over what the configuration says.</summary>
    /// <typeparam name="TBuilder">The builder type.</typeparam>
    /// <param name="builder">The application's builder.</param>
    /// <param name="configure">Sets options in code, for example <c>o =&gt; o.Backend = "SharedMemory"</c>.</param>
    /// <returns>The builder, for chaining.</returns>
    public static TBuilder AddMetrics<TBuilder>(this TBuilder builder, Action<MetricsOptions> configure)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddMetricsHosting(configure);
        return builder;
    }
}
