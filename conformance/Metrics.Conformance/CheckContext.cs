using System.Globalization;

namespace Metrics.Conformance;

/// <summary>What one run of one check works with: a fresh configuration, the backend selected with it, unique names.</summary>
internal sealed class CheckContext : IDisposable
{
    private readonly List<string> _temporary = [];
    private readonly List<ConfiguredBackend> _opened = [];
    private readonly List<System.Diagnostics.Process> _children = [];
    private ConfiguredBackend? _backend;
    private int _names;

    public CheckContext(ConformanceCheck check, ConformanceTarget target)
    {
        Check = check;
        Target = target;
        // Unique per run, so that a store shared by checks (a backend whose configurations are not isolated) still keeps them apart.
        RunId = Guid.NewGuid().ToString("N")[..10];
    }

    public ConformanceCheck Check { get; }

    public ConformanceTarget Target { get; }

    public ConformanceOptions Options => Target.Options;

    public string RunId { get; }

    /// <summary>What the check was doing, for messages about unexpected exceptions.</summary>
    public string Step { get; set; } = "setup";

    public BackendConfig Config => Backend.Config;

    /// <summary>The backend selected with a fresh configuration, once per check.</summary>
    public ConfiguredBackend Backend => _backend ??= Open(NewConfig());

    public BackendConfig NewConfig()
    {
        Step = "creating a configuration (CreateConfig)";
        return Target.CreateConfig();
    }

    public ConfiguredBackend Open(BackendConfig config)
    {
        Step = "selecting the backend (Initialize)";
        try
        {
            var backend = Target.Open(config);
            lock (_opened)
            {
                _opened.Add(backend);
            }

            Step = "running the check";
            return backend;
        }
        catch (Exception ex)
        {
            throw Fail($"Selecting the backend with {config} threw {ex.GetType().FullName}: {ex.Message}. Initialize must accept the configuration the test supplies.", ex);
        }
    }

    /// <summary>A metric name unique to this run: <c>stem_runid_n</c>.</summary>
    public string Name(string stem) => $"{stem}_{RunId}_{++_names}";

    public static MetricDescriptor Counter(string name, string[]? labelNames = null, string[]? labelValues = null) =>
        new(name, "Conformance counter.", MetricType.Counter, labelNames, labelValues);

    public static MetricDescriptor Gauge(string name, string[]? labelNames = null, string[]? labelValues = null) =>
        new(name, "Conformance gauge.", MetricType.Gauge, labelNames, labelValues);

    public static MetricDescriptor Histogram(string name, double[] buckets, string[]? labelNames = null, string[]? labelValues = null) =>
        new(name, "Conformance histogram.", MetricType.Histogram, labelNames, labelValues, buckets);

    public static MetricDescriptor Summary(string name, string[]? labelNames = null, string[]? labelValues = null) =>
        new(name, "Conformance summary.", MetricType.Summary, labelNames, labelValues);

    public IMetricBackend Create(MetricDescriptor metric, HistogramBucket? bucket = null, ConfiguredBackend? backend = null)
    {
        Step = $"creating the value {Describe(metric, bucket)}";
        try
        {
            return (backend ?? Backend).CreateValue(metric, bucket);
        }
        catch (Exception ex) when (ex is not ConformanceException)
        {
            throw Fail(
                $"Creating the value {Describe(metric, bucket)} threw {ex.GetType().FullName}: {ex.Message}. " +
                "The constructor must accept any valid descriptor. If it depends on state that Initialize should have prepared " +
                "for this configuration (a store, a connection, a mapped file), Initialize is not preparing it (or not for this configuration).", ex);
        }
    }

    public double Get(IMetricBackend value, string what)
    {
        Step = $"Get() on {what}";
        return value.Get();
    }

    public ConformanceException Fail(string message, Exception? inner = null) =>
        inner is null ? new ConformanceException(Check.Name, message) : new ConformanceException(Check.Name, message, inner);

    public void Expect(bool condition, string message)
    {
        if (!condition)
        {
            throw Fail(message);
        }
    }

    /// <summary>Fails unless <paramref name="actual"/> is exactly <paramref name="expected"/> (same bits; any NaN matches NaN).</summary>
    public void ExpectExact(double expected, double actual, string what, string? likelyBug = null)
    {
        if (!Same(expected, actual))
        {
            throw Fail($"{what}: expected {F(expected)}, read {F(actual)}.{(likelyBug is null ? string.Empty : " " + likelyBug)}");
        }
    }

    public string TempFile(string extension)
    {
        var path = Path.Combine(Path.GetTempPath(), $"metrics-conformance-{RunId}-{_temporary.Count}{extension}");
        _temporary.Add(path);
        return path;
    }

    /// <summary>A child process this check started; <see cref="Dispose"/> ends it if it still runs (the check failed before waiting for it).</summary>
    public void Started(System.Diagnostics.Process child)
    {
        lock (_children)
        {
            _children.Add(child);
        }
    }

    /// <summary>
    /// Ends the child processes this check started that still run. Called when the check finishes and when it is
    /// abandoned as hung: a child left running would write to the store after the run removed it.
    /// </summary>
    public void EndChildren()
    {
        System.Diagnostics.Process[] children;
        lock (_children)
        {
            children = [.. _children];
            _children.Clear();
        }

        foreach (var child in children)
        {
            try
            {
                if (!child.HasExited)
                {
                    child.Kill(entireProcessTree: true);
                }

                child.WaitForExit();
            }
            catch (InvalidOperationException)
            {
                // It exited (and was reaped) between the check and the kill.
            }
            finally
            {
                child.Dispose();
            }
        }
    }

    /// <summary>
    /// Releases what the check created, whether it passed or failed: its child processes, every backend configuration it
    /// selected (so no store stays open, and nothing of the backend writes a store again after the caller removed it),
    /// and its temporary files.
    /// </summary>
    public void Dispose()
    {
        EndChildren();
        ConfiguredBackend[] opened;
        lock (_opened)
        {
            opened = [.. _opened];
            _opened.Clear();
        }

        List<Exception>? failures = null;
        foreach (var backend in opened)
        {
            try
            {
                backend.ShutdownAsync().AsTask().GetAwaiter().GetResult();
            }
            catch (Exception ex)
            {
                (failures ??= []).Add(ex);
            }
        }

        foreach (var path in _temporary)
        {
            try
            {
                File.Delete(path);
            }
            catch (IOException)
            {
                // A leftover temporary file in /tmp does not affect the result.
            }
        }

        if (failures is not null)
        {
            throw Fail($"Shutting down the backend configurations this check selected (ShutdownAsync) threw: {string.Join("; ", failures.Select(f => $"{f.GetType().FullName}: {f.Message}"))}. ShutdownAsync must release the configuration's store without throwing.", failures[0]);
        }
    }

    public static bool Same(double a, double b) =>
        (double.IsNaN(a) && double.IsNaN(b)) || BitConverter.DoubleToInt64Bits(a) == BitConverter.DoubleToInt64Bits(b);

    /// <summary>Round-trip text of a double; negative zero shows as -0 so a lost sign is visible.</summary>
    public static string F(double value) => value switch
    {
        0 when double.IsNegative(value) => "-0 (negative zero)",
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };

    public static string Describe(MetricDescriptor metric, HistogramBucket? bucket) =>
        bucket is null ? metric.ToString() : $"{metric} part {bucket}";

    /// <summary>Label values as C# literals, so separators, NULs and newlines are visible in messages.</summary>
    public static string Literal(IReadOnlyList<string> values) => "[" + string.Join(", ", values.Select(Literal)) + "]";

    public static string Literal(string value)
    {
        var sb = new System.Text.StringBuilder("\"");
        foreach (var c in value)
        {
            sb.Append(c switch
            {
                '\0' => "\\0",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '"' => "\\\"",
                '\\' => "\\\\",
                _ when char.IsControl(c) => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }

        return sb.Append('"').ToString();
    }
}
