using System.Text.Json;
using Microsoft.Extensions.Configuration;

namespace Metrics.Configuration;

/// <summary>
/// Selects the metrics backend at startup from configuration: the <c>Metrics</c> section of appsettings.json,
/// environment variables (<c>Metrics__Backend=Redis</c>, <c>Metrics__BackendConfig__ConnectionString=...</c>) or code.
/// </summary>
/// <remarks>
/// With nothing configured the in-process Memory backend is used and no plugins folder is needed. Every problem
/// (unknown backend, missing folder or file, a link or path leading out of the plugin folder, plugin files other users
/// could write, a plugin that is not a backend or fails to start, a contract version mismatch, malformed JSON, a setting
/// of the wrong type) is reported as one <see cref="MetricsConfigurationException"/> saying what,
/// where and what to do.
/// </remarks>
public static class MetricsConfiguration
{
    /// <summary>Loads the backend <paramref name="configuration"/> selects and makes it <see cref="ConfiguredBackend.Default"/>.</summary>
    /// <param name="configuration">The application's configuration.</param>
    /// <returns>The selected backend.</returns>
    /// <exception cref="MetricsConfigurationException">The configuration or the plugin is wrong.</exception>
    public static ConfiguredBackend Apply(IConfiguration configuration) => Apply(MetricsOptions.FromConfiguration(configuration));

    /// <summary>Loads the backend <paramref name="options"/> selects and makes it <see cref="ConfiguredBackend.Default"/>.</summary>
    /// <param name="options">The selection.</param>
    /// <returns>The selected backend.</returns>
    /// <exception cref="MetricsConfigurationException">The options or the plugin are wrong.</exception>
    public static ConfiguredBackend Apply(MetricsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.CardinalityLimit < 1)
        {
            throw new MetricsConfigurationException($"The setting 'Metrics:CardinalityLimit' is {options.CardinalityLimit}, which would refuse every series: use at least 1 (the default is 2000).");
        }

        var backend = Load(options);
        ConfiguredBackend.Default = backend;
        if (options.CardinalityLimit is { } limit)
        {
            MetricRegistry.DefaultCardinalityLimit = limit;
        }

        return backend;
    }

    /// <summary>Loads the backend <paramref name="configuration"/> selects, without changing <see cref="ConfiguredBackend.Default"/>.</summary>
    /// <param name="configuration">The application's configuration.</param>
    /// <returns>The selected backend.</returns>
    /// <exception cref="MetricsConfigurationException">The configuration or the plugin is wrong.</exception>
    public static ConfiguredBackend Load(IConfiguration configuration) => Load(MetricsOptions.FromConfiguration(configuration));

    /// <summary>Loads the backend <paramref name="options"/> selects, without changing <see cref="ConfiguredBackend.Default"/>.</summary>
    /// <param name="options">The selection.</param>
    /// <returns>The selected backend.</returns>
    /// <exception cref="MetricsConfigurationException">The options or the plugin are wrong.</exception>
    public static ConfiguredBackend Load(MetricsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return BackendLoader.Load(options.ResolvedPluginsPath, options.Backend ?? BackendLoader.BuiltInName, options.ToBackendConfig(), options.AllowUnsafePluginPermissions);
    }

    /// <summary>
    /// Builds the usual configuration of a non-ASP.NET Core application: <c>appsettings.json</c> (optional), then environment
    /// variables, then the command line, later sources overriding earlier ones.
    /// </summary>
    /// <param name="args">Command-line arguments such as <c>--Metrics:Backend=Redis</c>; none when null.</param>
    /// <param name="basePath">The folder holding appsettings.json; the application's folder when null.</param>
    /// <param name="jsonFile">The JSON file name.</param>
    /// <returns>The configuration.</returns>
    /// <exception cref="MetricsConfigurationException">The JSON file is malformed; the message names the file and line.</exception>
    public static IConfigurationRoot BuildConfiguration(string[]? args = null, string? basePath = null, string jsonFile = "appsettings.json")
    {
        var builder = new ConfigurationBuilder()
            .SetBasePath(basePath ?? AppContext.BaseDirectory)
            .AddJsonFile(jsonFile, optional: true, reloadOnChange: false)
            .AddEnvironmentVariables();
        if (args is not null)
        {
            builder.AddCommandLine(args);
        }

        try
        {
            return builder.Build();
        }
        catch (Exception e) when (Explain(e) is { } explained)
        {
            throw explained;
        }
    }

    /// <summary>
    /// Turns the exception a configuration source throws for malformed JSON into a <see cref="MetricsConfigurationException"/>
    /// naming the file and line; for use around <c>WebApplication.CreateBuilder</c> or <c>Host.CreateApplicationBuilder</c>.
    /// </summary>
    /// <param name="exception">The exception thrown while building the configuration.</param>
    /// <returns>The explained exception, or null when <paramref name="exception"/> is not a malformed-JSON error.</returns>
    public static MetricsConfigurationException? Explain(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        if (exception is MetricsConfigurationException already)
        {
            return already;
        }

        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is JsonException json)
            {
                var file = FindFileName(exception) ?? "a JSON configuration file";
                var line = json.LineNumber is { } l ? $" at line {l + 1}" : string.Empty;
                var position = json.BytePositionInLine is { } p ? $", position {p + 1}" : string.Empty;
                return new MetricsConfigurationException(
                    $"The configuration file {file} is not valid JSON{line}{position}: {json.Message} Fix the file (the metrics backend is selected in its \"Metrics\" section) and start again.", exception);
            }
        }

        return null;
    }

    private static string? FindFileName(Exception exception)
    {
        // The JSON provider's message is "Failed to load configuration from file '<path>'."; the path is what the user needs.
        for (var e = exception; e is not null; e = e.InnerException)
        {
            var start = e.Message.IndexOf("file '", StringComparison.Ordinal);
            if (start >= 0)
            {
                var end = e.Message.IndexOf('\'', start + 6);
                if (end > start)
                {
                    return $"'{e.Message[(start + 6)..end]}'";
                }
            }
        }

        return null;
    }
}
