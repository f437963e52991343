using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using static Metrics.Conformance.CheckContext;

namespace Metrics.Conformance;

/// <summary>Checks for backends that share values across processes, with real child processes.</summary>
internal static class SharedChecks
{
    internal static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals, WriteIndented = false };

    public static void SameSeriesSharesOneValue(CheckContext ctx)
    {
        var metric = Counter(ctx.Name("same"), ["l"], ["a,b"]);
        var histogram = Histogram(ctx.Name("same_h"), [1, double.PositiveInfinity]);
        var one = ctx.Create(metric);
        var two = ctx.Create(metric);
        var bucketOne = ctx.Create(histogram, HistogramBucket.ForUpperBound(1));
        var bucketTwo = ctx.Create(histogram, HistogramBucket.ForUpperBound(1));
        one.Inc(3);
        bucketOne.Inc(1);
        ctx.Backend.Flush();
        ctx.ExpectExact(3, ctx.Get(two, "a second value of the series"), "After Inc(3) and Flush on one value, a second value created for the same series",
            "A shared backend must give every creator of the same (metric, labels, part) one value: the two instances are keyed differently, or Flush does not store the update.");
        ctx.ExpectExact(1, ctx.Get(bucketTwo, "a second value of the bucket"), "After Inc(1) and Flush on a histogram bucket, a second value created for the same bucket",
            "The histogram part must be part of the key, encoded the same way every time.");
        two.Inc(4);
        ctx.Backend.Flush();
        ctx.ExpectExact(7, ctx.Get(one, "the first value"), "After Inc(4) and Flush on the second value, the first value",
            "Get must read the shared store (plus this process's unflushed updates), not only what this instance wrote.");
    }

    public static void CollectReturnsEveryStoredValue(CheckContext ctx)
    {
        var counter = Counter(ctx.Name("collect_total"), ["x", "y"]);
        var gauge = Gauge(ctx.Name("collect"));
        var histogram = Histogram(ctx.Name("collect_h"), [0.5, 1, double.PositiveInfinity], ["route"]);
        var summary = Summary(ctx.Name("collect_s"), ["kind"]);
        var expected = new List<(MetricDescriptor Family, IReadOnlyList<string> Labels, HistogramBucket? Part, double Value)>();
        var n = 0;
        void Add(MetricDescriptor family, string[] labels, HistogramBucket? part)
        {
            var value = ctx.Create(labels.Length == 0 && family.LabelNames.Count == 0 ? family : family.WithLabelValues(labels), part);
            var amount = ++n * 1.5;
            value.Inc(amount);
            expected.Add((family, labels, part, amount));
        }

        foreach (var pair in IsolationChecks.TrickyLabelPairs.Take(20))
        {
            Add(counter, pair, null);
        }

        Add(gauge, [], null);
        foreach (var route in new[] { "/", "/a,b" })
        {
            Add(histogram, [route], HistogramBucket.ForUpperBound(0.5));
            Add(histogram, [route], HistogramBucket.ForUpperBound(double.PositiveInfinity));
            Add(histogram, [route], HistogramBucket.Sum);
        }

        Add(summary, ["k\n"], HistogramBucket.Count);
        Add(summary, ["k\n"], HistogramBucket.Sum);

        MetricDescriptor[] families = [counter, gauge, histogram, summary];
        ctx.Step = "Collect";
        var collected = ctx.Backend.Collect(families);
        ctx.Expect(collected is not null,
            "Collect returned null, but the backend declares SharedAcrossProcesses: series created only in other processes would never be scraped. Implement Collect to read every stored value of the families in one batch.");
        ctx.Expect(collected!.Length == families.Length, $"Collect returned {collected.Length} lists for {families.Length} families; return one per family, in order.");
        for (var f = 0; f < families.Length; f++)
        {
            var family = families[f];
            var wanted = expected.Where(e => e.Family == family).ToList();
            foreach (var entry in collected[f])
            {
                var match = wanted.FindIndex(w => w.Labels.SequenceEqual(entry.LabelValues, StringComparer.Ordinal) && Nullable.Equals(w.Part, entry.Bucket));
                ctx.Expect(match >= 0,
                    $"Collect returned, for {family.Name}, the series {Literal(entry.LabelValues)} part {entry.Bucket?.ToString() ?? "(none)"} = {F(entry.Value)}, which this check never created " +
                    $"(it created {string.Join("; ", wanted.Select(w => Literal(w.Labels) + " " + (w.Part?.ToString() ?? string.Empty)))}). " +
                    "Keys are decoded wrongly (label values containing separators, quotes, newlines or Unicode), or the store is shared with other data (isolate configurations).");
                var w = wanted[match];
                ctx.ExpectExact(w.Value, entry.Value, $"Collect's value for {family.Name}{Literal(w.Labels)} {w.Part}",
                    "Collect must include this process's updates that are not flushed yet, with double precision.");
                wanted.RemoveAt(match);
            }

            ctx.Expect(wanted.Count == 0,
                $"Collect did not return, for {family.Name}, {string.Join("; ", wanted.Select(w => Literal(w.Labels) + " " + (w.Part?.ToString() ?? string.Empty)))}. " +
                "Collect must return every stored value of each family, including updates not flushed yet.");
        }
    }

    public static void OtherProcessesSeeFlushedValues(CheckContext ctx)
    {
        var series = SeriesFor(ctx);
        var values = series.Select(s => ctx.Create(s.Descriptor, s.Part)).ToList();
        for (var i = 0; i < values.Count; i++)
        {
            values[i].Inc((i + 1) * 1000);
        }

        ctx.Backend.Flush();
        var child = ChildProcess.Start(ctx, series, threads: 1, increments: 1);
        var output = child.WaitForExit(ctx);
        for (var i = 0; i < series.Count; i++)
        {
            var wrote = (i + 1) * 1000.0;
            var viaGet = output.Read("get", i);
            ctx.Expect(viaGet == wrote,
                $"A child process that selected the backend with the same configuration read {series[i].What} through Get as {F(viaGet)}, expected {F(wrote)} written and flushed by this process. " +
                "Values are not shared across processes: the store is process-local, Flush does not write it, or the child keys the series differently.");
            var viaCollect = output.Read("collect", i);
            ctx.Expect(viaCollect == wrote,
                $"A child process read {series[i].What} through Collect as {F(viaCollect)}{(double.IsNaN(viaCollect) ? " (missing)" : string.Empty)}, expected {F(wrote)} written and flushed by this process. " +
                "Collect must return every value in the shared store, including series this process never created.");
        }

        for (var i = 0; i < values.Count; i++)
        {
            var expected = ((i + 1) * 1000.0) + 1;
            ctx.ExpectExact(expected, ctx.Get(values[i], series[i].What), $"After a child process added 1 to {series[i].What} and flushed, this process's existing value",
                "Get must read the shared store: a value cached in this process hides the other processes' updates.");
        }

        var collected = CollectSeries(ctx, series);
        for (var i = 0; i < series.Count; i++)
        {
            ctx.ExpectExact(((i + 1) * 1000.0) + 1, collected[i], $"After a child process added 1 to {series[i].What} and flushed, Collect in this process",
                "Collect must read the shared store, including other processes' flushed updates.");
        }
    }

    public static void ConcurrentProcessesLoseNothing(CheckContext ctx)
    {
        var series = SeriesFor(ctx);
        var values = series.Select(s => ctx.Create(s.Descriptor, s.Part)).ToList();
        var children = Enumerable.Range(0, ctx.Options.ChildProcesses).Select(_ => ChildProcess.Start(ctx, series, threads: 2, increments: ctx.Options.ChildIncrements)).ToList();
        ctx.Step = "updating in this process while the children update";
        for (var n = 0; n < ctx.Options.ChildIncrements; n++)
        {
            foreach (var (value, spec) in values.Zip(series))
            {
                ChildProcess.Update(value, spec.Descriptor.Type);
            }
        }

        foreach (var child in children)
        {
            child.WaitForExit(ctx);
        }

        ctx.Backend.Flush();
        var expected = ((double)ctx.Options.ChildProcesses * 2 * ctx.Options.ChildIncrements) + ctx.Options.ChildIncrements;
        var collected = CollectSeries(ctx, series);
        for (var i = 0; i < series.Count; i++)
        {
            var what = series[i].What;
            const string Lost = "Updates were lost across processes: the read-modify-write on the shared store is not atomic between processes, or Flush returned before the updates were stored.";
            var existing = ctx.Get(values[i], what);
            ctx.Expect(existing == expected,
                $"{ctx.Options.ChildProcesses} child processes x 2 threads x {ctx.Options.ChildIncrements} updates plus {ctx.Options.ChildIncrements} in this process, all flushed: {what} read {F(existing)} through Get, expected {F(expected)}. {Lost}");
            var fresh = ctx.Get(ctx.Create(series[i].Descriptor, series[i].Part), what);
            ctx.ExpectExact(expected, fresh, $"The same totals through a newly created value of {what}", Lost);
            ctx.ExpectExact(expected, collected[i], $"The same totals of {what} through Collect", Lost);
        }
    }

    internal static List<SeriesSpec> SeriesFor(CheckContext ctx)
    {
        var histogram = Histogram(ctx.Name("mp_h"), [1, double.PositiveInfinity], ["route"], ["/a,b"]);
        var summary = Summary(ctx.Name("mp_s"));
        return
        [
            new("a labelled counter", Counter(ctx.Name("mp_total"), ["x", "y"], ["a,b", "c\n"]), null),
            new("a gauge (Inc(2), Dec(1) per update)", Gauge(ctx.Name("mp_g")), null),
            new("a histogram bucket", histogram, HistogramBucket.ForUpperBound(1)),
            new("a histogram sum", histogram, HistogramBucket.Sum),
            new("a summary count", summary, HistogramBucket.Count),
        ];
    }

    private static double[] CollectSeries(CheckContext ctx, List<SeriesSpec> series)
    {
        ctx.Step = "Collect";
        var families = Families(series);
        var collected = ctx.Backend.Collect(families);
        ctx.Expect(collected is not null && collected.Length == families.Length,
            "Collect returned null or the wrong number of lists; a shared backend must implement Collect, returning one list per family.");
        return [.. series.Select(s => Find(collected![IndexOf(families, s)], s))];
    }

    /// <summary>One descriptor per metric name, as the host passes them to Collect.</summary>
    internal static MetricDescriptor[] Families(IEnumerable<SeriesSpec> series) => [.. series.Select(s => s.Family).DistinctBy(f => f.Name)];

    internal static int IndexOf(MetricDescriptor[] families, SeriesSpec spec) => Array.FindIndex(families, f => f.Name == spec.Descriptor.Name);

    internal static double Find(IReadOnlyList<CollectedValue> values, SeriesSpec spec)
    {
        foreach (var value in values)
        {
            if (value.LabelValues.SequenceEqual(spec.Descriptor.LabelValues, StringComparer.Ordinal) && Nullable.Equals(value.Bucket, spec.Part))
            {
                return value.Value;
            }
        }

        return double.NaN;
    }
}

/// <summary>One value the multi-process checks update, and how to describe it.</summary>
internal sealed record SeriesSpec(string What, MetricDescriptor Descriptor, HistogramBucket? Part)
{
    private MetricDescriptor? _family;

    public MetricDescriptor Family => _family ??= new MetricDescriptor(Descriptor.Name, Descriptor.Help, Descriptor.Type, Descriptor.LabelNames, null, Descriptor.Buckets, Descriptor.GaugeAggregation);
}

/// <summary>What a child process is asked to do: select the backend with a configuration, read, update, flush.</summary>
internal sealed class ChildJob
{
    public Dictionary<string, string?> Config { get; set; } = [];

    public string ConfigPath { get; set; } = "Metrics:BackendConfig";

    public List<ChildSeries> Series { get; set; } = [];

    public int Threads { get; set; }

    public int Increments { get; set; }

    /// <summary>When set, the child reports each series' exemplar before updating and records this one (trace id) after.</summary>
    public string? ExemplarTrace { get; set; }

    /// <summary>The timestamp of the exemplar the child records.</summary>
    public double ExemplarTimestamp { get; set; }
}

/// <summary>A descriptor and part in a form JSON carries.</summary>
internal sealed class ChildSeries
{
    public string Name { get; set; } = string.Empty;

    public string Help { get; set; } = string.Empty;

    public MetricType Type { get; set; }

    public string[] LabelNames { get; set; } = [];

    public string[] LabelValues { get; set; } = [];

    public double[] Buckets { get; set; } = [];

    public string? Part { get; set; }

    public static ChildSeries From(SeriesSpec spec) => new()
    {
        Name = spec.Descriptor.Name,
        Help = spec.Descriptor.Help,
        Type = spec.Descriptor.Type,
        LabelNames = [.. spec.Descriptor.LabelNames],
        LabelValues = [.. spec.Descriptor.LabelValues],
        Buckets = [.. spec.Descriptor.Buckets],
        Part = spec.Part?.ToString(),
    };

    public SeriesSpec ToSpec() =>
        new(Name, new MetricDescriptor(Name, Help, Type, LabelNames, LabelValues, Buckets), Part is null ? null : HistogramBucket.Parse(Part));
}

/// <summary>A child process running the runner in <c>--child</c> mode, and the child side of the protocol.</summary>
internal sealed class ChildProcess
{
    private readonly Process _process;
    private readonly Task<string> _stdout;
    private readonly Task<string> _stderr;
    private readonly string _command;

    private ChildProcess(Process process, string command)
    {
        _process = process;
        _command = command;
        _stdout = process.StandardOutput.ReadToEndAsync();
        _stderr = process.StandardError.ReadToEndAsync();
    }

    public static ChildProcess Start(CheckContext ctx, List<SeriesSpec> series, int threads, int increments, (string Trace, double Timestamp)? exemplar = null)
    {
        var config = ctx.Config;
        var job = new ChildJob
        {
            Config = config.Keys.ToDictionary(k => k, k => config[k]),
            ConfigPath = config.Path,
            Series = [.. series.Select(ChildSeries.From)],
            Threads = threads,
            Increments = increments,
            ExemplarTrace = exemplar?.Trace,
            ExemplarTimestamp = exemplar?.Timestamp ?? 0,
        };
        var jobFile = ctx.TempFile(".json");
        File.WriteAllText(jobFile, JsonSerializer.Serialize(job, SharedChecks.Json));
        var runner = RunnerLocator.Find(ctx.Options);
        if (runner is null)
        {
            throw ctx.Fail(RunnerLocator.NotFoundMessage);
        }

        var start = new ProcessStartInfo(RunnerLocator.DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(runner);
        start.ArgumentList.Add("--child");
        start.ArgumentList.Add(jobFile);
        foreach (var argument in ctx.Target.ChildArguments)
        {
            start.ArgumentList.Add(argument);
        }

        var command = string.Join(' ', new[] { start.FileName }.Concat(start.ArgumentList).Select(a => a.Contains(' ', StringComparison.Ordinal) ? $"\"{a}\"" : a));
        ctx.Step = $"starting a child process: {command}";
        var process = Process.Start(start) ?? throw ctx.Fail($"Could not start the child process {command}.");
        ctx.Started(process);
        return new ChildProcess(process, command);
    }

    public ChildOutput WaitForExit(CheckContext ctx)
    {
        if (!_process.WaitForExit(ctx.Options.ChildTimeout))
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
            throw ctx.Fail($"The child process ({_command}) did not finish within {ctx.Options.ChildTimeout}: an update, Flush or Initialize blocks (a lock held across processes, or a store that is not reachable). Output so far: {_stdout.Result}{_stderr.Result}");
        }

        var stdout = _stdout.Result;
        var stderr = _stderr.Result;
        if (_process.ExitCode != 0)
        {
            throw ctx.Fail($"The child process ({_command}) exited with {_process.ExitCode}: {stderr.Trim()} {stdout.Trim()}");
        }

        return new ChildOutput(stdout);
    }

    public static void Update(IMetricBackend value, MetricType type)
    {
        if (type == MetricType.Gauge)
        {
            value.Inc(2);
            value.Dec(1);
        }
        else
        {
            value.Inc(1);
        }
    }

    /// <summary>The child side: select the backend, report what it reads, update, flush.</summary>
    public static int Run(ConformanceTarget target, string jobFile, TextWriter output)
    {
        var job = JsonSerializer.Deserialize<ChildJob>(File.ReadAllText(jobFile), SharedChecks.Json)
            ?? throw new InvalidDataException($"The child job file '{jobFile}' is empty.");
        var config = new BackendConfig(job.Config, job.ConfigPath);
        var backend = target.Open(config);
        var series = job.Series.Select(s => s.ToSpec()).ToList();
        var values = series.Select(s => backend.CreateValue(s.Descriptor, s.Part)).ToList();
        for (var i = 0; i < values.Count; i++)
        {
            output.WriteLine(FormattableString.Invariant($"get {i} {values[i].Get():R}"));
        }

        var families = SharedChecks.Families(series);
        var collected = backend.Collect(families);
        for (var i = 0; i < series.Count; i++)
        {
            var value = collected is null ? double.NaN : SharedChecks.Find(collected[SharedChecks.IndexOf(families, series[i])], series[i]);
            output.WriteLine(FormattableString.Invariant($"collect {i} {value:R}"));
            if (job.ExemplarTrace is not null)
            {
                var exemplar = collected is null ? values[i].GetExemplar() : ExemplarChecks.Find(collected[SharedChecks.IndexOf(families, series[i])], series[i]);
                output.WriteLine(FormattableString.Invariant($"exemplar {i} {(exemplar is { } e && e.Labels.Count > 0 ? e.Labels[0].Value : "-")}"));
            }
        }

        ValueChecks.RunThreads(Math.Max(1, job.Threads), _ =>
        {
            for (var n = 0; n < job.Increments; n++)
            {
                for (var i = 0; i < values.Count; i++)
                {
                    Update(values[i], series[i].Descriptor.Type);
                }
            }
        });
        if (job.ExemplarTrace is not null)
        {
            foreach (var value in values)
            {
                value.RecordExemplar(new RecordedExemplar(Exemplar.Of("trace_id", job.ExemplarTrace), 1, job.ExemplarTimestamp));
            }
        }

        backend.Flush();
        output.WriteLine("flushed");
        return 0;
    }
}

/// <summary>The lines a child printed.</summary>
internal sealed class ChildOutput(string text)
{
    /// <summary>The text after <c>kind index </c>; null when the line is missing or holds '-' (nothing).</summary>
    public string? ReadText(string kind, int index)
    {
        var prefix = FormattableString.Invariant($"{kind} {index} ");
        var line = text.Split('\n').Select(l => l.TrimEnd('\r')).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line is null || line[prefix.Length..] == "-" ? null : line[prefix.Length..];
    }

    public double Read(string kind, int index)
    {
        var prefix = FormattableString.Invariant($"{kind} {index} ");
        var line = text.Split('\n').Select(l => l.TrimEnd('\r')).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line is null ? double.NaN : double.Parse(line[prefix.Length..], NumberStyles.Float, CultureInfo.InvariantCulture);
    }
}
