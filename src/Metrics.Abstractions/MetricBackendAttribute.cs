namespace Metrics;

/// <summary>
/// Names the backend type of a plugin assembly, so the host finds it without scanning every type:
/// <c>[assembly: MetricBackend(typeof(MyBackend))]</c>.
/// </summary>
/// <remarks>
/// Without the attribute the host accepts an assembly with exactly one public type implementing
/// <see cref="IMetricBackend{TSelf}"/>, and fails with a clear message otherwise.
/// </remarks>
[AttributeUsage(AttributeTargets.Assembly, AllowMultiple = false)]
public sealed class MetricBackendAttribute : Attribute
{
    /// <summary>Declares <paramref name="backendType"/> as the assembly's backend.</summary>
    /// <param name="backendType">A public, non-abstract type implementing <see cref="IMetricBackend{TSelf}"/> over itself.</param>
    public MetricBackendAttribute(Type backendType) => BackendType = backendType;

    /// <summary>The backend type named by the plugin.</summary>
    public Type BackendType { get; }
}
