using System.Collections.Concurrent;
using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.Loader;
using System.Text.RegularExpressions;
using McMaster.NETCore.Plugins.Loader;

namespace Metrics.Configuration;

/// <summary>Turns a backend name and a plugins folder into a backend type, refusing anything outside that folder.</summary>
internal static partial class BackendLoader
{
    internal const string BuiltInName = "Memory";

    private static readonly AssemblyName ContractName = typeof(IMetricBackend).Assembly.GetName();

    // One load context per plugin file, so loading the same plugin twice yields the same Type and
    // Initialize keeps running once per type and configuration.
    private static readonly ConcurrentDictionary<string, Lazy<IBackendAdapter>> Loaded = new(PathComparer);

    private static StringComparer PathComparer => OperatingSystem.IsWindows() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;

    private static StringComparison PathComparison => OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    internal const int MaxNameLength = 100;

    // \z, not $: $ also matches before a final newline, which let 'Evil\n' through.
    [GeneratedRegex(@"\A[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\z", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();

    internal static bool IsValidName(string name) => name.Length <= MaxNameLength && NamePattern().IsMatch(name);

    public static string ResolvePluginsPath(string? pluginsPath) =>
        Path.GetFullPath(string.IsNullOrWhiteSpace(pluginsPath) ? "plugins" : pluginsPath, AppContext.BaseDirectory);

    public static ConfiguredBackend Load(string pluginsPath, string name, BackendConfig config, bool allowUnsafePermissions = false)
    {
        ArgumentNullException.ThrowIfNull(pluginsPath);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(config);
        if (!IsValidName(name))
        {
            throw new MetricsConfigurationException(
                $"The backend name '{Escape(name)}' (Metrics:Backend) is not valid: a backend name is a plugin folder name of at most {MaxNameLength} characters made of ASCII letters, digits, '_' and single dots, such as 'Redis' or 'Acme.Metrics'; paths, separators, '..', spaces and control characters are refused. Set Metrics:Backend to the name of a folder inside the plugins folder.");
        }

        var root = ResolvePluginsPath(pluginsPath);
        var type = ResolveType(root, name, allowUnsafePermissions);
        if (ReferenceEquals(type, ConfiguredBackend.Memory.Adapter) && config.Equals(BackendConfig.Empty))
        {
            return ConfiguredBackend.Memory;
        }

        return Initialize(type, config, name);
    }

    /// <summary>The name as a C# literal would show it, so that control and look-alike characters are visible.</summary>
    internal static string Escape(string name)
    {
        var shown = name.Length > MaxNameLength ? name[..MaxNameLength] : name;
        var builder = new System.Text.StringBuilder(shown.Length + 8);
        foreach (var c in shown)
        {
            builder.Append(c switch
            {
                '\\' => "\\\\",
                '\'' => "\\'",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\0' => "\\0",
                _ when c < ' ' || c > '~' => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }

        return name.Length > MaxNameLength ? $"{builder}... ({name.Length} characters)" : builder.ToString();
    }

    private static IBackendAdapter ResolveType(string root, string name, bool allowUnsafePermissions)
    {
        var rootWithSeparator = Path.TrimEndingDirectorySeparator(root) + Path.DirectorySeparatorChar;
        var folder = Path.GetFullPath(Path.Combine(rootWithSeparator, name));
        var dll = Path.GetFullPath(Path.Combine(folder, name + ".dll"));
        if (!folder.StartsWith(rootWithSeparator, PathComparison) || !dll.StartsWith(rootWithSeparator, PathComparison))
        {
            throw new MetricsConfigurationException($"The backend name '{name}' resolves to '{dll}', outside the plugins folder '{root}'. Set Metrics:Backend to the name of a folder inside the plugins folder.");
        }

        if (!Directory.Exists(folder))
        {
            if (string.Equals(name, BuiltInName, StringComparison.OrdinalIgnoreCase))
            {
                return ConfiguredBackend.Memory.Adapter;
            }

            if (!Directory.Exists(root))
            {
                throw new MetricsConfigurationException(
                    $"The metrics backend '{name}' was not found: the plugins folder '{root}' (Metrics:PluginsPath) does not exist. Copy the backend's build output to '{folder}', or set Metrics:PluginsPath to the folder that holds it. Available backends: {Available(root)}.");
            }

            throw new MetricsConfigurationException(
                $"Unknown metrics backend '{name}' (Metrics:Backend): there is no folder '{folder}'. Available backends: {Available(root)}. Check the spelling, or copy the backend's build output to '{folder}'.");
        }

        if (!File.Exists(dll))
        {
            throw new MetricsConfigurationException(
                $"The metrics backend folder '{folder}' has no '{name}.dll'. A plugin folder holds the backend's build output, whose main assembly is named after the folder; copy it there (for example 'dotnet publish -o {folder}').");
        }

        RefuseLinks(root, folder, dll);
        PluginTrust.RefuseEscapes(root, folder, name);
        if (!allowUnsafePermissions)
        {
            PluginTrust.RefuseWritableCode(root, folder);
        }

        var lazy = Loaded.GetOrAdd(dll, path => new Lazy<IBackendAdapter>(() => LoadPlugin(path, name, folder)));
        try
        {
            return lazy.Value;
        }
        catch
        {
            // A failed load is not cached: fixing the folder and loading again must work.
            Loaded.TryRemove(new KeyValuePair<string, Lazy<IBackendAdapter>>(dll, lazy));
            throw;
        }
    }

    private static void RefuseLinks(string root, string folder, string dll)
    {
        // A link inside the plugins folder would let its contents come from anywhere.
        foreach (var path in new[] { folder, dll })
        {
            FileSystemInfo info = path == dll ? new FileInfo(path) : new DirectoryInfo(path);
            if (info.LinkTarget is not null)
            {
                throw new MetricsConfigurationException($"'{path}' is a symbolic link (to '{info.LinkTarget}'); the metrics host loads plugins only from real files inside the plugins folder '{root}'. Copy the plugin into the folder instead of linking it.");
            }
        }
    }

    private static IBackendAdapter LoadPlugin(string dll, string name, string folder)
    {
        CheckContractReference(dll, name);

        // AssemblyLoadContextBuilder rather than PluginLoader: PluginLoader also honours additionalProbingPaths of the
        // plugin's runtimeconfig(.dev).json, which loads assemblies from outside the plugin folder.
        var context = new AssemblyLoadContextBuilder()
            .SetMainAssemblyPath(dll)
            .PreferDefaultLoadContextAssembly(ContractName)
            .Build();
        Assembly assembly;
        try
        {
            assembly = context.LoadFromAssemblyPath(dll);
        }
        catch (Exception e) when (e is BadImageFormatException or FileLoadException or FileNotFoundException)
        {
            throw new MetricsConfigurationException($"The metrics backend '{name}' could not be loaded from '{dll}': {e.Message}", e);
        }

        var backendType = FindBackendType(assembly, name, dll);
        var adapter = CreateAdapter(backendType, name, dll);
        VerifyLocations(context, folder, name);
        return adapter;
    }

    private static void CheckContractReference(string dll, string name)
    {
        Version? referenced = null;
        try
        {
            using var stream = File.OpenRead(dll);
            using var pe = new PEReader(stream);
            if (!pe.HasMetadata)
            {
                throw new BadImageFormatException("The file has no .NET metadata.");
            }

            var reader = pe.GetMetadataReader();
            foreach (var handle in reader.AssemblyReferences)
            {
                var reference = reader.GetAssemblyReference(handle);
                if (reader.StringComparer.Equals(reference.Name, ContractName.Name!))
                {
                    referenced = reference.Version;
                }
            }
        }
        catch (BadImageFormatException e)
        {
            throw new MetricsConfigurationException($"'{dll}' is not a .NET assembly, so it cannot be the metrics backend '{name}': {e.Message} Replace it with the backend's build output.", e);
        }

        var host = ContractName.Version!;
        if (referenced is not null && referenced > host)
        {
            throw new MetricsConfigurationException(
                $"The metrics backend '{name}' ('{dll}') was compiled against {ContractName.Name} {referenced}, newer than this application's {ContractName.Name} {host}. Rebuild the backend against {ContractName.Name} {host.Major}.x, or update the application's Metrics packages.");
        }
    }

    private static Type FindBackendType(Assembly assembly, string name, string dll)
    {
        var attribute = assembly.GetCustomAttribute<MetricBackendAttribute>();
        if (attribute is not null)
        {
            var declared = attribute.BackendType;
            if (!IsBackendType(declared))
            {
                throw new MetricsConfigurationException(
                    $"The metrics backend '{name}' ('{dll}') names '{declared.FullName}' in [assembly: MetricBackend], but that type is not a public non-abstract class implementing IMetricBackend<{declared.Name}>. Name the type that implements the contract over itself.");
            }

            return declared;
        }

        Type[] types;
        try
        {
            types = assembly.GetExportedTypes();
        }
        catch (Exception e) when (e is ReflectionTypeLoadException or FileNotFoundException or FileLoadException or TypeLoadException)
        {
            throw new MetricsConfigurationException(
                $"The metrics backend '{name}' ('{dll}') could not be inspected: {e.Message} Copy the backend's complete build output (its dependencies too) into the plugin folder, or add [assembly: MetricBackend(typeof(YourBackend))] so the host does not scan every type.", e);
        }

        var candidates = types.Where(IsBackendType).ToArray();
        return candidates.Length switch
        {
            1 => candidates[0],
            0 => throw new MetricsConfigurationException(
                $"'{dll}' contains no metrics backend type: no public class implements IMetricBackend<TSelf> over itself. Check that Metrics:Backend names the right plugin, or add a class 'public sealed class MyBackend : IMetricBackend<MyBackend>' and [assembly: MetricBackend(typeof(MyBackend))]."),
            _ => throw new MetricsConfigurationException(
                $"'{dll}' contains more than one metrics backend type ({string.Join(", ", candidates.Select(t => t.FullName))}), so the host cannot choose. Add [assembly: MetricBackend(typeof(TheBackend))] to the plugin to name one."),
        };
    }

    private static bool IsBackendType(Type type) =>
        type is { IsClass: true, IsAbstract: false, IsGenericTypeDefinition: false }
        && (type.IsPublic || type.IsNestedPublic)
        && type.GetInterfaces().Any(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IMetricBackend<>) && i.GetGenericArguments()[0] == type);

    private static IBackendAdapter CreateAdapter(Type type, string name, string dll)
    {
        Type[] parameters = [typeof(BackendConfig), typeof(MetricDescriptor), typeof(HistogramBucket?)];
        if (type.GetConstructor(BindingFlags.Public | BindingFlags.Instance, parameters) is null)
        {
            throw new MetricsConfigurationException(
                $"The metrics backend type '{type.FullName}' in '{dll}' has no public constructor (BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket). Add one: the host creates one instance per metric value through it.");
        }

        try
        {
            // The CRTP shape was checked above, so the constraint T : IMetricBackend<T> holds.
            return (IBackendAdapter)Activator.CreateInstance(typeof(BackendAdapter<>).MakeGenericType(type))!;
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            var cause = Innermost(e);
            throw new MetricsConfigurationException($"The metrics backend '{name}' ('{dll}') could not be prepared: {cause.GetType().FullName}: {cause.Message}", e.InnerException);
        }
    }

    private static void VerifyLocations(AssemblyLoadContext context, string folder, string name)
    {
        foreach (var assembly in context.Assemblies)
        {
            // Real paths: a file reached through a link counts where the link leads.
            var location = assembly.Location;
            if (location.Length == 0 || !PluginTrust.IsInsideReally(location, folder))
            {
                throw new MetricsConfigurationException(
                    $"The metrics backend '{name}' loaded '{assembly.GetName().Name}' from '{(location.Length == 0 ? "(memory)" : location)}', outside its plugin folder '{folder}'. Plugins may load only from their own folder: copy the dependency into it.");
            }
        }
    }

    internal static void VerifyLoadedFromPluginFolder(ConfiguredBackend backend)
    {
        var context = AssemblyLoadContext.GetLoadContext(backend.Type.Assembly);
        var location = backend.Type.Assembly.Location;
        if (context is null || context == AssemblyLoadContext.Default || location.Length == 0)
        {
            return;
        }

        VerifyLocations(context, Path.GetDirectoryName(location)!, backend.Name);
    }

    private static ConfiguredBackend Initialize(IBackendAdapter type, BackendConfig config, string name)
    {
        ConfiguredBackend backend;
        try
        {
            backend = new ConfiguredBackend(type, config, name);
        }
        catch (MetricsConfigurationException)
        {
            throw;
        }
        catch (Exception e)
        {
            throw InitializeFailed(e, type, config, name);
        }

        // Initialize may have loaded dependencies; they too must come from the plugin folder.
        VerifyLoadedFromPluginFolder(backend);
        return backend;
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is { } inner)
        {
            e = inner;
        }

        return e;
    }

    private static MetricsConfigurationException InitializeFailed(Exception e, IBackendAdapter type, BackendConfig config, string name)
    {
        // A type initializer or a wrapping layer hides the reason ("The type initializer for 'X' threw an exception"):
        // the innermost exception is the one that says what is wrong.
        var cause = Innermost(e);
        if (cause is BackendConfigException refused)
        {
            return new MetricsConfigurationException($"The metrics backend '{name}' refused its configuration: {refused.Message} (key '{refused.Key}')", e);
        }

        var shown = $"{cause.GetType().FullName}: {SecretScrubber.Scrub(cause.Message, config).TrimEnd()}";
        shown = shown.EndsWith('.') ? shown : shown + ".";
        var through = string.Empty;
        for (var x = e; x is not null && !ReferenceEquals(x, cause); x = x.InnerException)
        {
            through = x is TypeInitializationException ? " in a static constructor" : through;
        }

        // A message holding a secret value stays out of the chain, since logging the exception would print it.
        var carriesSecret = false;
        for (var x = e; x is not null; x = x.InnerException)
        {
            carriesSecret |= SecretScrubber.Scrub(x.Message, config) != x.Message;
        }

        var withheld = carriesSecret ? " The original exception is not attached because its message contains a secret value of the configuration." : string.Empty;
        var message = cause is FileNotFoundException or FileLoadException or TypeLoadException or MissingMethodException
            ? $"The metrics backend '{name}' ({type.Type.FullName}) failed to initialize{through} because a dependency could not be loaded: {shown} Copy the backend's complete build output into its plugin folder; dependencies are loaded only from there.{withheld}"
            : $"The metrics backend '{name}' ({type.Type.FullName}) failed to initialize{through}: {shown} Its configuration was {config}. Fix the cause above, in the configuration or in the environment the backend needs.{withheld}";
        return carriesSecret ? new MetricsConfigurationException(message) : new MetricsConfigurationException(message, e);
    }

    private static string Available(string root)
    {
        var names = new SortedSet<string>(StringComparer.OrdinalIgnoreCase);
        if (Directory.Exists(root))
        {
            foreach (var dir in Directory.EnumerateDirectories(root))
            {
                var candidate = Path.GetFileName(dir);
                if (NamePattern().IsMatch(candidate) && File.Exists(Path.Combine(dir, candidate + ".dll")))
                {
                    names.Add(candidate);
                }
            }
        }

        if (!names.Contains(BuiltInName))
        {
            names.Add($"{BuiltInName} (built in)");
        }

        return string.Join(", ", names);
    }
}
