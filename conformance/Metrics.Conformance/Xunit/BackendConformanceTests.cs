using Xunit;

namespace Metrics.Conformance;

/// <summary>
/// The conformance suite as xunit v3 tests for a backend given by type: inherit it in the backend's test project
/// (which references <c>xunit.v3</c>), and every check appears as its own test case of <see cref="Check"/>.
/// </summary>
/// <typeparam name="TBackend">The backend type.</typeparam>
/// <example>
/// <code>
/// public class FooConformance : BackendConformanceTests&lt;FooBackend&gt;
/// {
///     protected override BackendConfig CreateConfig() =>
///         new([new("Prefix", "test-" + Guid.NewGuid().ToString("N"))]);
/// }
/// </code>
/// </example>
/// <remarks>
/// A backend declaring <see cref="BackendCapabilities.SharedAcrossProcesses"/> also gets the multi-process checks,
/// which start <c>Metrics.Conformance.Runner.dll</c> (copied to the test output by the package) as child processes that
/// load <typeparamref name="TBackend"/> from its assembly file.
/// </remarks>
public abstract class BackendConformanceTests<TBackend> : ConformanceTestsBase
    where TBackend : IMetricBackend<TBackend>
{
    /// <summary>The names of the checks that apply to <typeparamref name="TBackend"/> (theory data of <see cref="Check"/>).</summary>
    public static TheoryData<string> Checks => Data(TBackend.Capabilities);

    /// <summary>Runs one conformance check against <typeparamref name="TBackend"/>.</summary>
    /// <param name="check">The check's name (see <see cref="ConformanceSuite.Checks"/>).</param>
    [Theory]
    [MemberData(nameof(Checks))]
    public virtual void Check(string check) => RunCheck(check);

    private protected sealed override ConformanceTarget CreateTarget() => ConformanceTarget.ForType<TBackend>(CreateConfig, Options).WithInvalidConfigs(InvalidConfigs);
}
