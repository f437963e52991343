using System.Collections.Concurrent;
using Xunit;

namespace Metrics.Conformance;

/// <summary>
/// What the xunit v3 conformance base classes share: how a check runs as a test. Derive from
/// <see cref="BackendConformanceTests{TBackend}"/> or <see cref="PluginFolderConformanceTests{TSelf}"/>, not from this class.
/// </summary>
public abstract class ConformanceTestsBase
{
    private static readonly ConcurrentDictionary<Type, ConformanceTarget> Targets = new();

    private protected ConformanceTestsBase()
    {
    }

    /// <summary>
    /// Returns a fresh configuration for one check, whose store is isolated from every other call's: a unique
    /// key prefix, a fresh file path. Called at least once per check. The default, <see cref="BackendConfig.Empty"/>,
    /// suits an in-process backend.
    /// </summary>
    /// <returns>The configuration.</returns>
    protected virtual BackendConfig CreateConfig() => BackendConfig.Empty;

    /// <summary>
    /// Settings the backend must refuse when it is selected, each applied over a fresh <see cref="CreateConfig"/>: one
    /// wrong setting per configuration (for example <c>new([new("FlushInterval", "soon")])</c>). The
    /// <c>InvalidSettingsFailAtLoad</c> check asserts each fails with an error naming its key. A backend with settings must
    /// declare at least one.
    /// </summary>
    protected virtual IEnumerable<BackendConfig> InvalidConfigs => [];

    /// <summary>Sizes and limits of the checks (threads, increments, child processes, timeouts, the runner path).</summary>
    protected virtual ConformanceOptions Options => new();

    /// <summary>The backend under test, built once per test class from the overrides.</summary>
    protected ConformanceTarget Target => Targets.GetOrAdd(GetType(), _ => CreateTarget());

    /// <summary>Builds the target from the overrides.</summary>
    /// <returns>The target.</returns>
    private protected abstract ConformanceTarget CreateTarget();

    /// <summary>Runs one check; a failure surfaces as the check's <see cref="ConformanceException"/>.</summary>
    /// <param name="check">The check's name, from the theory data.</param>
    private protected void RunCheck(string check)
    {
        var found = ConformanceSuite.Find(check);
        // The theory data lists only the checks that apply, so reaching here with another one is a misuse: fail, never skip.
        if (!found.AppliesTo(Target.Capabilities))
        {
            Assert.Fail($"{check} applies only to backends that declare SharedAcrossProcesses; this backend declares {Target.Capabilities}. Run only the checks listed for it.");
        }

        var result = ConformanceSuite.Run(found, Target);
        if (result.Failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(result.Failure).Throw();
        }
    }

    private protected static TheoryData<string> Data(BackendCapabilities capabilities)
    {
        var data = new TheoryData<string>();
        foreach (var check in ConformanceSuite.Checks.Where(c => c.AppliesTo(capabilities)))
        {
            data.Add(check.Name);
        }

        return data;
    }
}
