using System.Reflection;
using System.Runtime.ExceptionServices;
using System.Runtime.Loader;

namespace Metrics.Conformance;

/// <summary>
/// The backend under test: how to select it with a configuration, how to get a fresh configuration for each
/// check, and how a child process loads the same backend for the multi-process checks.
/// </summary>
/// <remarks>
/// Every form ends in a <see cref="ConfiguredBackend"/>, so a backend given by type, by assembly path or by plugin
/// folder runs exactly the same checks through the same host code.
/// </remarks>
public sealed partial class ConformanceTarget
{
    private readonly Func<BackendConfig, ConfiguredBackend> _open;
    private readonly Func<BackendConfig> _createConfig;
    private BackendCapabilities? _capabilities;

    private ConformanceTarget(string description, Func<BackendConfig, ConfiguredBackend> open, IReadOnlyList<string> childArguments, Func<BackendConfig>? createConfig, ConformanceOptions? options, BackendCapabilities? capabilities)
    {
        Description = description;
        _open = open;
        ChildArguments = childArguments;
        _createConfig = createConfig ?? (() => BackendConfig.Empty);
        Options = options ?? new ConformanceOptions();
        _capabilities = capabilities;
    }

    /// <summary>What is tested, for messages: the type or the plugin folder and name.</summary>
    public string Description { get; }

    /// <summary>Sizes and limits of the checks.</summary>
    public ConformanceOptions Options { get; }

    /// <summary>
    /// The runner arguments that make a child process load this backend the same way:
    /// <c>--assembly &lt;path&gt; --type &lt;name&gt;</c> or <c>--plugins &lt;folder&gt; --backend &lt;name&gt;</c>.
    /// </summary>
    public IReadOnlyList<string> ChildArguments { get; }

    /// <summary>What the backend promises; selecting it once with a fresh configuration when only known at run time.</summary>
    public BackendCapabilities Capabilities => _capabilities ??= Probe();

    /// <summary>The checks that apply to this backend (the multi-process ones only for a shared backend), in suite order.</summary>
    public IReadOnlyList<ConformanceCheck> ApplicableChecks => [.. ConformanceSuite.Checks.Where(c => c.AppliesTo(Capabilities))];

    /// <summary>A backend given by type, as a backend's own test project references it.</summary>
    /// <typeparam name="TBackend">The backend type.</typeparam>
    /// <param name="createConfig">
    /// Returns a configuration whose store is isolated from every other call's (a unique key prefix, a fresh file);
    /// called at least once per check. <see cref="BackendConfig.Empty"/> when null, which suits an in-process backend.
    /// </param>
    /// <param name="options">Sizes and limits; defaults when null.</param>
    /// <returns>The target.</returns>
    public static ConformanceTarget ForType<TBackend>(Func<BackendConfig>? createConfig = null, ConformanceOptions? options = null)
        where TBackend : IMetricBackend<TBackend>
    {
        var type = typeof(TBackend);
        return new ConformanceTarget(
            type.FullName!,
            config => ConfiguredBackend.Create<TBackend>(config),
            ["--assembly", type.Assembly.Location, "--type", type.FullName!],
            createConfig,
            options,
            TBackend.Capabilities);
    }

    /// <summary>
    /// A backend type in an assembly given by path, loaded into the default load context with its dependencies
    /// resolved from the assembly's folder. The runner's child processes use this form for backends given by type.
    /// </summary>
    /// <param name="assemblyPath">The backend assembly.</param>
    /// <param name="typeName">The backend type's full name.</param>
    /// <param name="createConfig">Returns a fresh, isolated configuration; see <see cref="ForType{TBackend}"/>.</param>
    /// <param name="options">Sizes and limits; defaults when null.</param>
    /// <returns>The target.</returns>
    /// <exception cref="ArgumentException">The assembly or type cannot be found, or the type is not a backend.</exception>
    public static ConformanceTarget ForAssembly(string assemblyPath, string typeName, Func<BackendConfig>? createConfig = null, ConformanceOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(assemblyPath);
        ArgumentException.ThrowIfNullOrEmpty(typeName);
        var full = Path.GetFullPath(assemblyPath);
        if (!File.Exists(full))
        {
            throw new ArgumentException($"Backend assembly '{full}' does not exist.", nameof(assemblyPath));
        }

        var assembly = LoadWithDependencies(full);
        var type = assembly.GetType(typeName, throwOnError: false)
            ?? throw new ArgumentException($"Type '{typeName}' is not in '{full}'. Give the backend type's full name (namespace included).", nameof(typeName));
        var contract = typeof(IMetricBackend<>).MakeGenericType(type);
        if (!contract.IsAssignableFrom(type))
        {
            throw new ArgumentException($"Type '{typeName}' in '{full}' does not implement IMetricBackend<{type.Name}>.", nameof(typeName));
        }

        var create = typeof(ConfiguredBackend).GetMethod(nameof(ConfiguredBackend.Create))!.MakeGenericMethod(type);
        return new ConformanceTarget(
            type.FullName!,
            config => Invoke(create, config),
            ["--assembly", full, "--type", type.FullName!],
            createConfig,
            options,
            null);
    }

    /// <summary>
    /// Settings the backend must refuse, each applied over a fresh <see cref="CreateConfig"/>: selecting the backend with
    /// one of them must fail with an error naming one of its keys (the <c>InvalidSettingsFailAtLoad</c> check). Empty
    /// unless given through <see cref="WithInvalidConfigs"/>.
    /// </summary>
    public IReadOnlyList<BackendConfig> InvalidConfigs { get; private init; } = [];

    /// <summary>
    /// The same target with settings the backend must refuse at load. Give each invalid setting on its own (one wrong key
    /// per configuration), so the check can tell which key the error must name.
    /// </summary>
    /// <param name="invalidConfigs">Each holds one or more settings that override a fresh configuration and make it invalid.</param>
    /// <returns>A new target.</returns>
    public ConformanceTarget WithInvalidConfigs(IEnumerable<BackendConfig> invalidConfigs)
    {
        ArgumentNullException.ThrowIfNull(invalidConfigs);
        return new ConformanceTarget(Description, _open, ChildArguments, _createConfig, Options, _capabilities) { InvalidConfigs = [.. invalidConfigs] };
    }

    /// <summary>A fresh configuration from the factory given at construction.</summary>
    /// <returns>The configuration.</returns>
    public BackendConfig CreateConfig() => _createConfig() ?? throw new InvalidOperationException("The configuration factory returned null; return BackendConfig.Empty for a backend without settings.");

    /// <summary>Selects the backend with <paramref name="config"/> (running its <c>Initialize</c> once for that configuration).</summary>
    /// <param name="config">The configuration.</param>
    /// <returns>The selected backend.</returns>
    public ConfiguredBackend Open(BackendConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return _open(config);
    }

    /// <summary>Runs every applicable check.</summary>
    /// <param name="onResult">Called after each check, for progress output.</param>
    /// <returns>The results, in suite order.</returns>
    public IReadOnlyList<ConformanceResult> RunAll(Action<ConformanceResult>? onResult = null)
    {
        var results = new List<ConformanceResult>();
        foreach (var check in ApplicableChecks)
        {
            var result = ConformanceSuite.Run(check, this);
            results.Add(result);
            onResult?.Invoke(result);
        }

        return results;
    }

    /// <inheritdoc/>
    public override string ToString() => Description;

    /// <summary>Selects the backend to read its capabilities, then releases that configuration, so the probe leaves no store open.</summary>
    private BackendCapabilities Probe()
    {
        var backend = Open(CreateConfig());
        try
        {
            return backend.Capabilities;
        }
        finally
        {
            backend.ShutdownAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static ConfiguredBackend Invoke(MethodInfo create, BackendConfig config)
    {
        try
        {
            return (ConfiguredBackend)create.Invoke(null, [config, null])!;
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            ExceptionDispatchInfo.Capture(ex.InnerException).Throw();
            throw;
        }
    }

    private static Assembly LoadWithDependencies(string path)
    {
        var name = AssemblyName.GetAssemblyName(path);
        var loaded = AssemblyLoadContext.Default.Assemblies.FirstOrDefault(a => AssemblyName.ReferenceMatchesDefinition(a.GetName(), name) && string.Equals(a.GetName().Name, name.Name, StringComparison.Ordinal));
        if (loaded is not null)
        {
            return loaded;
        }

        var directory = Path.GetDirectoryName(path)!;
        var resolver = new AssemblyDependencyResolver(path);
        AssemblyLoadContext.Default.Resolving += (context, requested) =>
        {
            var candidate = resolver.ResolveAssemblyToPath(requested);
            if (candidate is null)
            {
                var local = Path.Combine(directory, requested.Name + ".dll");
                candidate = File.Exists(local) ? local : null;
            }

            return candidate is null ? null : context.LoadFromAssemblyPath(candidate);
        };
        AssemblyLoadContext.Default.ResolvingUnmanagedDll += (_, library) =>
        {
            var candidate = resolver.ResolveUnmanagedDllToPath(library);
            return candidate is null ? IntPtr.Zero : System.Runtime.InteropServices.NativeLibrary.Load(candidate);
        };
        return AssemblyLoadContext.Default.LoadFromAssemblyPath(path);
    }
}
