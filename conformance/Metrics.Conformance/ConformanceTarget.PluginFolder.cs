namespace Metrics.Conformance;

/// <content>The plugin-folder form.</content>
public sealed partial class ConformanceTarget
{
    /// <summary>
    /// A backend in a built plugin folder, <c>pluginsPath/&lt;name&gt;/&lt;name&gt;.dll</c>, loaded through
    /// <see cref="ConfiguredBackend.Load"/>: the loader the host uses.
    /// </summary>
    /// <param name="pluginsPath">The plugins folder.</param>
    /// <param name="name">The backend name (its folder and assembly name).</param>
    /// <param name="createConfig">Returns a fresh, isolated configuration; see <see cref="ForType{TBackend}"/>.</param>
    /// <param name="options">Sizes and limits; defaults when null.</param>
    /// <returns>The target.</returns>
    public static ConformanceTarget ForPluginFolder(string pluginsPath, string name, Func<BackendConfig>? createConfig = null, ConformanceOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(pluginsPath);
        ArgumentException.ThrowIfNullOrEmpty(name);
        var full = Path.GetFullPath(pluginsPath);
        return new ConformanceTarget(
            $"plugin '{name}' in {full}",
            config => ConfiguredBackend.Load(full, name, config),
            ["--plugins", full, "--backend", name],
            createConfig,
            options,
            null);
    }
}
