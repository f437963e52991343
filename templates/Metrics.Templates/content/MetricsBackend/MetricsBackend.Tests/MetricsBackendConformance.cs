using System.Reflection;
using Metrics;
using Metrics.Conformance;
using MetricsBackend;

namespace MetricsBackend.Tests;

/// <summary>Every conformance check, as a test case of Check, against the backend type.</summary>
public class MetricsBackendConformance : BackendConformanceTests<MetricsBackendBackend>
{
    // Called once or more per check: a backend sharing a store must return an isolated one each time (a unique key
    // prefix, a fresh file).
    protected override BackendConfig CreateConfig() => new([new("MaxSeries", "1000")]);

    // Settings the backend must refuse at startup with an error naming the key: one wrong setting each.
    protected override IEnumerable<BackendConfig> InvalidConfigs => [new([new("MaxSeries", "many")])];
}

/// <summary>The same checks against the built plugin folder, loaded by the host's own loader.</summary>
public class MetricsBackendPluginConformance : PluginFolderConformanceTests<MetricsBackendPluginConformance>
{
    protected override string PluginsPath =>
        typeof(MetricsBackendPluginConformance).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "PluginsPath").Value!;

    protected override string Name => "MetricsBackend";

    protected override BackendConfig CreateConfig() => new([new("MaxSeries", "1000")]);

    protected override IEnumerable<BackendConfig> InvalidConfigs => [new([new("MaxSeries", "many")])];
}
