using Microsoft.Extensions.Configuration;

namespace Metrics.Configuration;

/// <summary>
/// The backend selection, as read from the <c>Metrics</c> configuration section or set from code:
/// <c>Backend</c> (a name), <c>PluginsPath</c> (the folder holding one subfolder per plugin) and <c>BackendConfig</c>
/// (the settings handed to the backend).
/// </summary>
/// <example>
/// <code>
/// MetricsConfiguration.Apply(new MetricsOptions { Backend = "Redis", BackendConfig = { ["ConnectionString"] = "localhost:6379" } });
/// </code>
/// </example>
public sealed class MetricsOptions
{
    /// <summary>The configuration section holding the settings: <c>Metrics</c>.</summary>
    public const string SectionName = "Metrics";

    /// <summary>The path of the backend's own section, used in messages: <c>Metrics:BackendConfig</c>.</summary>
    public const string BackendConfigPath = "Metrics:BackendConfig";

    /// <summary>
    /// The backend's name: a folder <c>PluginsPath/Name</c> holding <c>Name.dll</c>, or <c>Memory</c> (built in, used
    /// when the folder is absent). Null or empty selects <c>Memory</c>.
    /// </summary>
    public string? Backend { get; set; }

    /// <summary>
    /// The plugins folder. A relative path is relative to the application's folder (<see cref="AppContext.BaseDirectory"/>),
    /// not to the working directory. Null or empty means <c>plugins</c> beside the application.
    /// </summary>
    public string? PluginsPath { get; set; }

    /// <summary>
    /// Loads plugins even when, on Unix, the plugins folder, the plugin's folder or a file in it is owned by another user
    /// or writable by group or others (<c>Metrics:AllowUnsafePluginPermissions</c>). Off by default: whoever can change
    /// those files can run code in the application. Turn it on only where ownership and modes cannot be controlled, such
    /// as some container images; links and paths leading outside the plugin folder are refused either way.
    /// </summary>
    public bool AllowUnsafePluginPermissions { get; set; }

    /// <summary>The backend's settings, keys nested with <c>:</c> (<c>Pool:Size</c>), compared case-insensitively.</summary>
    public IDictionary<string, string?> BackendConfig { get; } = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);

    /// <summary>The plugins folder as an absolute path.</summary>
    public string ResolvedPluginsPath => BackendLoader.ResolvePluginsPath(PluginsPath);

    /// <summary>Reads the <c>Metrics</c> section of <paramref name="configuration"/>.</summary>
    /// <param name="configuration">The application's configuration (JSON files, environment variables, command line...).</param>
    /// <returns>The options; every property is empty when the section is absent.</returns>
    public static MetricsOptions FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection(SectionName);
        var options = new MetricsOptions
        {
            // Not trimmed: the name is checked exactly as configured, so a stray newline or space is reported, not guessed away.
            Backend = string.IsNullOrWhiteSpace(section["Backend"]) ? null : section["Backend"],
            PluginsPath = NullIfBlank(section["PluginsPath"]),
            AllowUnsafePluginPermissions = ReadBoolean(section, "AllowUnsafePluginPermissions"),
        };
        foreach (var (key, value) in section.GetSection("BackendConfig").AsEnumerable(makePathsRelative: true))
        {
            // Intermediate sections have null values; only leaves are settings.
            if (value is not null)
            {
                options.BackendConfig[key] = value;
            }
        }

        return options;
    }

    /// <summary>The backend settings as a <see cref="Metrics.BackendConfig"/> with path <c>Metrics:BackendConfig</c>.</summary>
    /// <returns>The configuration handed to the backend.</returns>
    public BackendConfig ToBackendConfig() => new(BackendConfig, BackendConfigPath);

    private static bool ReadBoolean(IConfigurationSection section, string key)
    {
        var raw = section[key];
        if (string.IsNullOrWhiteSpace(raw))
        {
            return false;
        }

        return bool.TryParse(raw.Trim(), out var value)
            ? value
            : throw new MetricsConfigurationException($"The setting '{SectionName}:{key}' is '{raw}', which is not a boolean. Use true or false.");
    }

    private static string? NullIfBlank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
