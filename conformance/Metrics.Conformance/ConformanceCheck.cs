namespace Metrics.Conformance;

/// <summary>One rule of the backend contract, checked by plain code that throws <see cref="ConformanceException"/> on failure.</summary>
public sealed class ConformanceCheck
{
    private readonly Action<CheckContext> _body;

    internal ConformanceCheck(string name, string description, Action<CheckContext> body, bool sharedOnly = false, BackendCapabilities requires = BackendCapabilities.None, BackendCapabilities excludes = BackendCapabilities.None)
    {
        Name = name;
        Description = description;
        _body = body;
        RequiresSharedBackend = sharedOnly;
        Requires = requires | (sharedOnly ? BackendCapabilities.SharedAcrossProcesses : BackendCapabilities.None);
        Excludes = excludes;
    }

    /// <summary>The check's stable name, for example <c>ConcurrentIncrementsAreExact</c>.</summary>
    public string Name { get; }

    /// <summary>What the check proves, in one sentence.</summary>
    public string Description { get; }

    /// <summary>
    /// Whether the check only applies to backends declaring <see cref="BackendCapabilities.SharedAcrossProcesses"/>
    /// (the multi-process checks).
    /// </summary>
    public bool RequiresSharedBackend { get; }

    /// <summary>The capabilities a backend must declare for the check to apply (the rule it checks comes with them).</summary>
    public BackendCapabilities Requires { get; }

    /// <summary>The capabilities that make the check not apply (they relax the rule it checks).</summary>
    public BackendCapabilities Excludes { get; }

    /// <summary>Whether the check applies to a backend with <paramref name="capabilities"/>.</summary>
    /// <param name="capabilities">The backend's capabilities.</param>
    /// <returns><see langword="false"/> when the backend lacks a capability the check needs or declares one it excludes.</returns>
    public bool AppliesTo(BackendCapabilities capabilities) => (capabilities & Requires) == Requires && (capabilities & Excludes) == 0;

    /// <summary>Runs the check against <paramref name="target"/>, within <see cref="ConformanceOptions.CheckTimeout"/>.</summary>
    /// <param name="target">The backend under test.</param>
    /// <exception cref="ConformanceException">
    /// The backend breaks the rule, or the check did not finish in time; the message says what was expected, what was
    /// read (or where it hung) and the likely bug.
    /// </exception>
    public void Run(ConformanceTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var context = new CheckContext(this, target);
        Exception? failure = null;
        // A dedicated background thread: a check that hangs in the backend can be abandoned, and the process can still exit.
        var thread = new Thread(() => failure = RunBody(context)) { IsBackground = true, Name = "conformance " + Name };
        thread.Start();
        var timeout = target.Options.CheckTimeout;
        if (!thread.Join(timeout))
        {
            // The hung body cannot be stopped, but its child processes can: left running, they would write to the store after the run removed it.
            context.EndChildren();
            throw new ConformanceException(Name,
                $"The check did not finish within {timeout.TotalSeconds:0.###} s; it hung during {context.Step}. A backend call must never block without bound: " +
                "the likely bug is a wait without a timeout (a network call, a flush or shutdown waiting for a background loop that never runs or ignoring its " +
                "CancellationToken), a lock that is never released, or a retry loop that never succeeds (a compare-and-swap comparing doubles with == never matches NaN). " +
                "The check was abandoned and the run went on (raise ConformanceOptions.CheckTimeout for a backend that is just slow).");
        }

        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }
    }

    private Exception? RunBody(CheckContext context)
    {
        Exception? failure = null;
        try
        {
            _body(context);
        }
        catch (ConformanceException ex)
        {
            failure = ex;
        }
        catch (Exception ex)
        {
            failure = new ConformanceException(Name,
                $"The backend threw {ex.GetType().FullName}: {ex.Message} (during {context.Step}). Creating values, updates and reads must not throw for valid input; " +
                "an exception when values are created often means state that Initialize should prepare for this configuration is missing.", ex);
        }

        // Also after a failure: the check's children, stores and files must not outlive it.
        try
        {
            context.Dispose();
        }
        catch (ConformanceException ex)
        {
            failure ??= ex;
        }

        return failure;
    }

    /// <inheritdoc/>
    public override string ToString() => Name;
}
