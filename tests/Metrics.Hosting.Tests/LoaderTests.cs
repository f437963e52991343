using System.Reflection;
using System.Runtime.Loader;
using Metrics.Backends.Memory;
using Metrics.Configuration;
using Microsoft.Extensions.Configuration;

namespace Metrics.Hosting.Tests;

public sealed class LoaderTests : IDisposable
{
    private readonly PluginFolders _folders = new();

    public void Dispose() => _folders.Dispose();

    private static MetricsConfigurationException Fails(Action action) => Assert.Throws<MetricsConfigurationException>(action);

    private static string Scrape(ConfiguredBackend backend, double increment)
    {
        var registry = new MetricRegistry(backend: backend);
        var counter = new Counter("loaded_total", "Counts through the selected backend.", ["kind"], registry: registry);
        counter.Labels("a").Inc(increment);
        return registry.Render();
    }

    [Fact]
    public void Nothing_configured_selects_the_built_in_memory_backend_without_a_plugins_folder()
    {
        var configuration = new ConfigurationBuilder().Build();
        var backend = ConfiguredBackend.FromConfiguration(configuration);
        Assert.Same(ConfiguredBackend.Memory, backend);
        Assert.Equal(typeof(MemoryBackend), backend.Type);
        Assert.False(Directory.Exists(MetricsOptions.FromConfiguration(configuration).ResolvedPluginsPath));
    }

    [Fact]
    public void Default_plugins_path_is_beside_the_application_not_the_working_directory()
    {
        Assert.Equal(Path.Combine(AppContext.BaseDirectory, "plugins"), new MetricsOptions().ResolvedPluginsPath);
        Assert.Equal(Path.Combine(AppContext.BaseDirectory, "custom"), new MetricsOptions { PluginsPath = "custom" }.ResolvedPluginsPath);
    }

    [Fact]
    public void A_plugin_loads_from_its_folder_and_holds_the_values_a_scrape_shows()
    {
        var folder = _folders.Add("TestBackend");
        var backend = ConfiguredBackend.Load(_folders.Plugins, "TestBackend", new BackendConfig([new("Multiplier", "10")]));

        Assert.Equal("TestBackend", backend.Name);
        Assert.Equal("Metrics.TestBackend.TestBackend", backend.Type.FullName);
        Assert.StartsWith(folder + Path.DirectorySeparatorChar, backend.Type.Assembly.Location, StringComparison.Ordinal);
        Assert.NotSame(AssemblyLoadContext.Default, AssemblyLoadContext.GetLoadContext(backend.Type.Assembly));

        // The plugin implements the host's interface: only the contract assembly is shared.
        Assert.True(typeof(IMetricBackend).IsAssignableFrom(backend.Type));
        Assert.Contains("loaded_total{kind=\"a\"} 20", Scrape(backend, 2), StringComparison.Ordinal);
    }

    [Fact]
    public void Initialize_runs_once_per_type_and_configuration()
    {
        _folders.Add("TestBackend");
        var one = new BackendConfig([new("Multiplier", "3")]);
        var first = ConfiguredBackend.Load(_folders.Plugins, "TestBackend", one);
        var second = ConfiguredBackend.Load(_folders.Plugins, "TestBackend", new BackendConfig([new("Multiplier", "3")]));
        Assert.Same(first.Type, second.Type);
        Assert.Equal(1, InitializeCount(first));

        ConfiguredBackend.Load(_folders.Plugins, "TestBackend", new BackendConfig([new("Multiplier", "4")]));
        Assert.Equal(2, InitializeCount(first));
    }

    private static int InitializeCount(ConfiguredBackend backend) =>
        (int)backend.Type.GetProperty("InitializeCount", BindingFlags.Public | BindingFlags.Static)!.GetValue(null)!;

    [Theory]
    [InlineData("../etc", "../etc")]
    [InlineData("..", "..")]
    [InlineData("a/b", "a/b")]
    [InlineData("a\\b", "a\\\\b")]
    [InlineData("/abs", "/abs")]
    [InlineData("C:\\x", "C:\\\\x")]
    [InlineData("x..y", "x..y")]
    [InlineData(".hidden", ".hidden")]
    [InlineData("", "")]
    public void A_name_that_is_not_a_plain_folder_name_is_refused(string name, string shown)
    {
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, name, BackendConfig.Empty));
        Assert.Contains($"The backend name '{shown}' (Metrics:Backend) is not valid", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_plugins_folder_is_named_with_what_to_do()
    {
        var missing = Path.Combine(_folders.Root, "nowhere");
        var e = Fails(() => ConfiguredBackend.Load(missing, "Redis", BackendConfig.Empty));
        Assert.Contains($"the plugins folder '{missing}' (Metrics:PluginsPath) does not exist", e.Message, StringComparison.Ordinal);
        Assert.Contains("Available backends: Memory (built in)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_backend_lists_the_available_ones()
    {
        _folders.Add("TestBackend");
        _folders.Add("Ambiguous");
        Directory.CreateDirectory(Path.Combine(_folders.Plugins, "NotAPlugin"));
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "Redis", BackendConfig.Empty));
        Assert.Contains("Unknown metrics backend 'Redis' (Metrics:Backend)", e.Message, StringComparison.Ordinal);
        Assert.Contains("Available backends: Ambiguous, Memory (built in), TestBackend.", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_plugin_folder_without_its_dll_is_reported()
    {
        var folder = Path.Combine(_folders.Plugins, "Empty");
        Directory.CreateDirectory(folder);
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "Empty", BackendConfig.Empty));
        Assert.Contains($"The metrics backend folder '{folder}' has no 'Empty.dll'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_assembly_without_a_backend_type_is_reported()
    {
        _folders.AddAssemblyAs(typeof(ConfiguredBackend).Assembly.Location, "NoBackend");
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "NoBackend", BackendConfig.Empty));
        Assert.Contains("contains no metrics backend type", e.Message, StringComparison.Ordinal);
        Assert.Contains("NoBackend.dll", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_assembly_with_two_backend_types_and_no_attribute_is_reported()
    {
        _folders.Add("Ambiguous");
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "Ambiguous", BackendConfig.Empty));
        Assert.Contains("more than one metrics backend type", e.Message, StringComparison.Ordinal);
        Assert.Contains("Metrics.TestBackend.Ambiguous.FirstBackend", e.Message, StringComparison.Ordinal);
        Assert.Contains("Metrics.TestBackend.Ambiguous.SecondBackend", e.Message, StringComparison.Ordinal);
        Assert.Contains("[assembly: MetricBackend(typeof(TheBackend))]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_backend_type_without_the_constructor_is_reported()
    {
        _folders.AddAssemblyAs(Path.Combine(PluginFolders.BuiltPlugins, "TestBackend", "TestBackend.Extra.dll"), "NoCtor");
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "NoCtor", BackendConfig.Empty));
        Assert.Contains("'Metrics.TestBackend.Extra.NoCtorBackend'", e.Message, StringComparison.Ordinal);
        Assert.Contains("has no public constructor (BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_plugin_compiled_against_a_newer_contract_is_reported()
    {
        var folder = _folders.Add("TestBackend", "Future");
        PluginFolders.PatchReferenceVersion(Path.Combine(folder, "Future.dll"), "Metrics.Abstractions", 2);
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "Future", BackendConfig.Empty));
        Assert.Contains("was compiled against Metrics.Abstractions 2.0.0.0, newer than this application's Metrics.Abstractions 1.1.0.0", e.Message, StringComparison.Ordinal);
        Assert.Contains("Rebuild the backend against Metrics.Abstractions 1.x", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_plugin_compiled_against_contract_1_0_loads_and_serves_scrapes()
    {
        var folder = _folders.Add("TestBackend");
        PluginFolders.PatchReferenceVersion(Path.Combine(folder, "TestBackend.dll"), "Metrics.Abstractions", 1, 0);
        var backend = ConfiguredBackend.Load(_folders.Plugins, "TestBackend", new BackendConfig([new("Multiplier", "1")]));
        await using var registry = new MetricRegistry(backend: backend);
        var counter = new Counter("classic_total", "Counted by a 1.0 backend.", registry: registry);
        counter.Inc(3);
        using var body = new MemoryStream();
        await registry.WriteAsync(body, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Contains("classic_total 3\n", System.Text.Encoding.UTF8.GetString(body.ToArray()), StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_that_is_not_an_assembly_is_reported()
    {
        var folder = Path.Combine(_folders.Plugins, "Garbage");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "Garbage.dll"), "not a PE file");
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "Garbage", BackendConfig.Empty));
        Assert.Contains("is not a .NET assembly", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_setting_of_the_wrong_type_names_the_key_and_the_expected_type()
    {
        _folders.Add("TestBackend");
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", new BackendConfig([new("Multiplier", "ten")])));
        Assert.Contains("The metrics backend 'TestBackend' refused its configuration", e.Message, StringComparison.Ordinal);
        Assert.Contains("'Metrics:BackendConfig:Multiplier' is 'ten', which is not a number", e.Message, StringComparison.Ordinal);
        Assert.IsType<BackendConfigException>(e.InnerException);
    }

    [Fact]
    public void Probing_paths_from_a_runtimeconfig_dev_json_are_not_followed()
    {
        var folder = _folders.Add("TestBackend");
        var outside = Path.Combine(_folders.Root, "outside");
        Directory.CreateDirectory(outside);
        File.Move(Path.Combine(folder, "TestBackend.Extra.dll"), Path.Combine(outside, "TestBackend.Extra.dll"));
        var probing = $$"""{ "runtimeOptions": { "additionalProbingPaths": [ "{{outside}}" ] } }""";
        File.WriteAllText(Path.Combine(folder, "TestBackend.runtimeconfig.dev.json"), probing);
        File.WriteAllText(Path.Combine(folder, "TestBackend.runtimeconfig.json"), probing);

        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.Contains("TestBackend.Extra", e.Message, StringComparison.Ordinal);
        Assert.Contains("dependencies are loaded only from there", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(AppDomain.CurrentDomain.GetAssemblies(), a => !a.IsDynamic && a.Location.StartsWith(outside, StringComparison.Ordinal));
    }

    [Fact]
    public void A_symbolic_link_in_the_plugins_folder_is_refused()
    {
        var real = _folders.Add("TestBackend", "Real");
        var link = Path.Combine(_folders.Plugins, "Linked");
        Directory.CreateSymbolicLink(link, real);
        File.Move(Path.Combine(real, "Real.dll"), Path.Combine(real, "Linked.dll"));
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "Linked", BackendConfig.Empty));
        Assert.Contains($"'{link}' is a symbolic link", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_from_code_select_a_plugin()
    {
        _folders.Add("TestBackend");
        var options = new MetricsOptions { Backend = "TestBackend", PluginsPath = _folders.Plugins, BackendConfig = { ["Multiplier"] = "5" } };
        var backend = MetricsConfiguration.Load(options);
        Assert.Equal("Metrics:BackendConfig{Multiplier=5}", backend.Config.ToString());
        Assert.Contains("loaded_total{kind=\"a\"} 5", Scrape(backend, 1), StringComparison.Ordinal);
    }
}
