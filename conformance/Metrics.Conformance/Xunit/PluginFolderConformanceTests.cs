using Xunit;

namespace Metrics.Conformance;

/// <summary>
/// The conformance suite as xunit v3 tests for a built plugin folder, loaded through the host's loader
/// (<see cref="ConfiguredBackend.Load"/>): <c>PluginsPath/&lt;Name&gt;/&lt;Name&gt;.dll</c>.
/// </summary>
/// <typeparam name="TSelf">The deriving test class itself; it needs a parameterless constructor, so the list of applicable checks can be built from its overrides.</typeparam>
/// <example>
/// <code>
/// public class FooPluginConformance : PluginFolderConformanceTests&lt;FooPluginConformance&gt;
/// {
///     protected override string PluginsPath => Path.Combine(AppContext.BaseDirectory, "plugins");
///     protected override string Name => "Foo";
/// }
/// </code>
/// </example>
public abstract class PluginFolderConformanceTests<TSelf> : ConformanceTestsBase
    where TSelf : PluginFolderConformanceTests<TSelf>, new()
{
    /// <summary>The names of the checks that apply to the plugin (theory data of <see cref="Check"/>).</summary>
    public static TheoryData<string> Checks => Data(new TSelf().Target.Capabilities);

    /// <summary>The plugins folder; relative paths are resolved against the current directory.</summary>
    protected abstract string PluginsPath { get; }

    /// <summary>The backend name: its folder inside <see cref="PluginsPath"/> and its assembly name.</summary>
    protected abstract string Name { get; }

    /// <summary>Runs one conformance check against the plugin.</summary>
    /// <param name="check">The check's name (see <see cref="ConformanceSuite.Checks"/>).</param>
    [Theory]
    [MemberData(nameof(Checks))]
    public virtual void Check(string check) => RunCheck(check);

    private protected sealed override ConformanceTarget CreateTarget() => ConformanceTarget.ForPluginFolder(PluginsPath, Name, CreateConfig, Options).WithInvalidConfigs(InvalidConfigs);
}
