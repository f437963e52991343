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

    /// <summary>
    /// Hosting (<c>AddMetrics</c>): how long stopping the host waits, in all, for the backends to flush and release
    /// (<c>Metrics:ShutdownTimeout</c>, a duration such as <c>5s</c>). Five seconds by default.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Hosting (<c>AddMetrics</c>): how often each process records its observable .NET instruments and its process metrics
    /// into the backend (<c>Metrics:CollectionInterval</c>). A scrape also records them in the scraping process first.
    /// Five seconds by default.
    /// </summary>
    public TimeSpan CollectionInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Hosting (<c>AddMetrics</c>): whether System.Diagnostics.Metrics instruments (runtime, ASP.NET Core, HttpClient, the
    /// application's own meters) are published into the registry (<c>Metrics:Meters:Enabled</c>). True by default.
    /// </summary>
    public bool MetersEnabled { get; set; } = true;

    /// <summary>
    /// Hosting (<c>AddMetrics</c>): meter-name prefixes to publish (<c>Metrics:Meters:Include:0</c>, ...); every meter when
    /// empty. <c>Microsoft.AspNetCore</c> matches <c>Microsoft.AspNetCore.Hosting</c> and the meter itself.
    /// </summary>
    public IList<string> IncludeMeters { get; } = [];

    /// <summary>Hosting (<c>AddMetrics</c>): meter-name prefixes never published (<c>Metrics:Meters:Exclude:0</c>, ...); they win over <see cref="IncludeMeters"/>.</summary>
    public IList<string> ExcludeMeters { get; } = [];

    /// <summary>
    /// Hosting (<c>AddMetrics</c>): whether the standard <c>process_*</c> metrics are published (<c>Metrics:ProcessMetrics</c>).
    /// True by default.
    /// </summary>
    public bool ProcessMetrics { get; set; } = true;

    /// <summary>
    /// Hosting (<c>AddMetrics</c>): whether counter increments and histogram observations take an exemplar (<c>trace_id</c>,
    /// <c>span_id</c>) from the current sampled <see cref="System.Diagnostics.Activity"/> (<c>Metrics:Exemplars:Automatic</c>);
    /// sets <see cref="MetricRegistry.AutomaticExemplars"/> on the served registry. False by default.
    /// </summary>
    public bool AutomaticExemplars { get; set; }

    /// <summary>
    /// Hosting (<c>AddMetrics</c>): the least time between two automatic exemplars of one series
    /// (<c>Metrics:Exemplars:MinInterval</c>, default 100 ms); see <see cref="MetricRegistry.AutomaticExemplarInterval"/>.
    /// </summary>
    public TimeSpan AutomaticExemplarInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The most series (label sets) per metric family for families whose metric and registry set no limit
    /// (<c>Metrics:CardinalityLimit</c>); becomes <see cref="MetricRegistry.DefaultCardinalityLimit"/> when applied.
    /// Null keeps that default: 2,000.
    /// </summary>
    public int? CardinalityLimit { get; set; }

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
        // The typed reads of BackendConfig give the same messages, naming the key, as a backend's own settings.
        var settings = new BackendConfig(section.AsEnumerable(makePathsRelative: true), SectionName);
        try
        {
            options.ShutdownTimeout = settings.GetTimeSpan("ShutdownTimeout", options.ShutdownTimeout);
            options.CollectionInterval = settings.GetTimeSpan("CollectionInterval", options.CollectionInterval);
            options.MetersEnabled = settings.GetBoolean("Meters:Enabled", options.MetersEnabled);
            options.ProcessMetrics = settings.GetBoolean("ProcessMetrics", options.ProcessMetrics);
            options.AutomaticExemplars = settings.GetBoolean("Exemplars:Automatic", options.AutomaticExemplars);
            options.AutomaticExemplarInterval = settings.GetTimeSpan("Exemplars:MinInterval", options.AutomaticExemplarInterval);
            options.CardinalityLimit = string.IsNullOrWhiteSpace(section["CardinalityLimit"]) ? null : settings.GetInt32("CardinalityLimit", 0);
        }
        catch (BackendConfigException e)
        {
            throw new MetricsConfigurationException($"The metrics configuration is not valid: {e.Message}", e);
        }

        AddList(section.GetSection("Meters:Include"), options.IncludeMeters);
        AddList(section.GetSection("Meters:Exclude"), options.ExcludeMeters);
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

    /// <summary>
    /// Checks the hosting settings that configuration cannot check by type: durations in range. The backend itself is
    /// checked by loading it.
    /// </summary>
    /// <exception cref="MetricsConfigurationException">A setting is out of range; the message names it.</exception>
    public void Validate()
    {
        if (CollectionInterval < TimeSpan.FromMilliseconds(10))
        {
            throw new MetricsConfigurationException($"The setting 'Metrics:CollectionInterval' is {CollectionInterval}, which is too short: use at least 10ms, for example '5s'.");
        }

        if (AutomaticExemplarInterval < TimeSpan.Zero || AutomaticExemplarInterval > TimeSpan.FromDays(1))
        {
            throw new MetricsConfigurationException($"The setting 'Metrics:Exemplars:MinInterval' is {AutomaticExemplarInterval}, which is out of range: use a duration between 0 and one day, such as '100ms'.");
        }

        if (CardinalityLimit < 1)
        {
            throw new MetricsConfigurationException($"The setting 'Metrics:CardinalityLimit' is {CardinalityLimit}, which would refuse every series: use at least 1 (the default is 2000).");
        }

        if (ShutdownTimeout < TimeSpan.Zero)
        {
            throw new MetricsConfigurationException($"The setting 'Metrics:ShutdownTimeout' is {ShutdownTimeout}, which is negative: use a duration such as '5s'.");
        }
    }

    private static void AddList(IConfigurationSection section, IList<string> list)
    {
        // A list is either indexed children (JSON arrays, Meters__Include__0) or one comma-separated value.
        var single = section.Value;
        var items = string.IsNullOrWhiteSpace(single) ? section.GetChildren().Select(c => c.Value) : single.Split(',');
        foreach (var item in items)
        {
            if (!string.IsNullOrWhiteSpace(item))
            {
                list.Add(item.Trim());
            }
        }
    }

    private static string? NullIfBlank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
