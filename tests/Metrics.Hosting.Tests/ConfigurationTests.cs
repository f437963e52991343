using Microsoft.Extensions.Configuration;
using Metrics.Configuration;

namespace Metrics.Hosting.Tests;

/// <summary>Reads process-wide environment variables, so its tests run one at a time (one class).</summary>
public sealed class ConfigurationTests : IDisposable
{
    private static readonly string[] Variables = ["Metrics__Backend", "Metrics__PluginsPath", "Metrics__BackendConfig__Multiplier"];
    private readonly PluginFolders _folders = new();

    public ConfigurationTests() => _folders.Add("TestBackend");

    public void Dispose()
    {
        foreach (var variable in Variables)
        {
            Environment.SetEnvironmentVariable(variable, null);
        }

        _folders.Dispose();
    }

    private string WriteJson(string json)
    {
        File.WriteAllText(Path.Combine(_folders.Root, "appsettings.json"), json);
        return _folders.Root;
    }

    private static string Scrape(ConfiguredBackend backend)
    {
        var registry = new MetricRegistry(backend: backend);
        new Gauge("configured_value", "Set through the selected backend.", registry: registry).Set(2);
        return registry.Render();
    }

    [Fact]
    public void Exemplar_settings_are_read_and_a_bad_interval_names_its_key()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Metrics:Exemplars:Automatic"] = "true",
            ["Metrics:Exemplars:MinInterval"] = "250ms",
        }).Build();
        var options = MetricsOptions.FromConfiguration(configuration);
        Assert.True(options.AutomaticExemplars);
        Assert.Equal(TimeSpan.FromMilliseconds(250), options.AutomaticExemplarInterval);
        Assert.False(MetricsOptions.FromConfiguration(new ConfigurationBuilder().Build()).AutomaticExemplars);

        var bad = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Metrics:Exemplars:Automatic"] = "sometimes" }).Build();
        Assert.Contains("Metrics:Exemplars:Automatic", Assert.Throws<MetricsConfigurationException>(() => MetricsOptions.FromConfiguration(bad)).Message);
        var negative = new MetricsOptions { AutomaticExemplarInterval = TimeSpan.FromSeconds(-1) };
        Assert.Contains("Metrics:Exemplars:MinInterval", Assert.Throws<MetricsConfigurationException>(negative.Validate).Message);
    }

    [Fact]
    public void Json_selects_the_backend_and_its_settings()
    {
        var basePath = WriteJson($$"""
            { "Metrics": { "Backend": "TestBackend", "PluginsPath": {{System.Text.Json.JsonSerializer.Serialize(_folders.Plugins)}},
                           "BackendConfig": { "Multiplier": 100, "Nested": { "Key": "v" } } } }
            """);
        var configuration = MetricsConfiguration.BuildConfiguration(basePath: basePath);
        var options = MetricsOptions.FromConfiguration(configuration);
        Assert.Equal("v", options.BackendConfig["Nested:Key"]);

        var backend = ConfiguredBackend.FromConfiguration(configuration);
        Assert.Equal("TestBackend", backend.Name);
        Assert.Equal("Metrics:BackendConfig:Multiplier", "Metrics:BackendConfig:" + backend.Config.Keys.Single(k => k == "Multiplier"));
        Assert.Contains("configured_value 200", Scrape(backend), StringComparison.Ordinal);
    }

    [Fact]
    public void Environment_variables_override_json()
    {
        var basePath = WriteJson("""{ "Metrics": { "Backend": "Memory", "BackendConfig": { "Multiplier": 100 } } }""");
        Environment.SetEnvironmentVariable("Metrics__Backend", "TestBackend");
        Environment.SetEnvironmentVariable("Metrics__PluginsPath", _folders.Plugins);
        Environment.SetEnvironmentVariable("Metrics__BackendConfig__Multiplier", "7");

        var backend = ConfiguredBackend.FromConfiguration(MetricsConfiguration.BuildConfiguration(basePath: basePath));
        Assert.Equal("Metrics.TestBackend.TestBackend", backend.Type.FullName);
        Assert.Contains("configured_value 14", Scrape(backend), StringComparison.Ordinal);
    }

    [Fact]
    public void The_command_line_overrides_environment_variables()
    {
        Environment.SetEnvironmentVariable("Metrics__Backend", "Nope");
        var args = new[] { "--Metrics:Backend=TestBackend", $"--Metrics:PluginsPath={_folders.Plugins}", "--Metrics:BackendConfig:Multiplier=3" };
        var backend = ConfiguredBackend.FromConfiguration(MetricsConfiguration.BuildConfiguration(args, basePath: _folders.Root));
        Assert.Contains("configured_value 6", Scrape(backend), StringComparison.Ordinal);
    }

    [Fact]
    public void Malformed_json_names_the_file_and_line()
    {
        var basePath = WriteJson("{\n  \"Metrics\": {\n    \"Backend\": \"Redis\",,\n  }\n}\n");
        var e = Assert.Throws<MetricsConfigurationException>(() => MetricsConfiguration.BuildConfiguration(basePath: basePath));
        Assert.Contains($"The configuration file '{Path.Combine(basePath, "appsettings.json")}' is not valid JSON at line 3", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_wrong_value_from_an_environment_variable_names_the_key()
    {
        Environment.SetEnvironmentVariable("Metrics__Backend", "TestBackend");
        Environment.SetEnvironmentVariable("Metrics__PluginsPath", _folders.Plugins);
        Environment.SetEnvironmentVariable("Metrics__BackendConfig__Multiplier", "1,5");
        var configuration = MetricsConfiguration.BuildConfiguration(basePath: _folders.Root);
        var e = Assert.Throws<MetricsConfigurationException>(() => MetricsConfiguration.Load(configuration));
        Assert.Contains("'Metrics:BackendConfig:Multiplier' is '1,5', which is not a number", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Apply_sets_the_default_backend()
    {
        var before = ConfiguredBackend.Default;
        var configuration = MetricsConfiguration.BuildConfiguration(["--Metrics:Backend=Memory"], basePath: _folders.Root);
        Assert.Same(ConfiguredBackend.Memory, MetricsConfiguration.Apply(configuration));
        Assert.Same(ConfiguredBackend.Memory, ConfiguredBackend.Default);
        Assert.Same(before, ConfiguredBackend.Default);
    }
}
