using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Metrics.Benchmarks;
using Metrics.Benchmarks.SharedBackends;

// shared [bench|load|worker] ...: the Redis and SharedMemory benchmarks against Memory (SharedBackends/).
if (args.FirstOrDefault() == "shared")
{
    return SharedBackendsProgram.Run(args[1..]);
}

// --memory-backend <backend> <series>: the child process of one row of the per-backend table below.
if (args.FirstOrDefault() == BackendMemory.ChildMode)
{
    return BackendMemory.RunChild(args[1], int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture));
}

// --memory [--series N[,N...]]: prints the resident-bytes-per-series tables (against the peers, then per backend, each
// backend in its own process) and exits (a GC measurement, not a timing).
if (args.Contains("--memory"))
{
    MemoryFootprint.Run(Console.Out);
    var seriesAt = Array.IndexOf(args, "--series");
    int[] seriesCounts = seriesAt >= 0 && seriesAt + 1 < args.Length
        ? [.. args[seriesAt + 1].Split(',').Select(n => int.Parse(n, System.Globalization.CultureInfo.InvariantCulture))]
        : [100_000, 1_000_000];
    return BackendMemory.Run(Console.Out, seriesCounts);
}

// --scrape-size: prints the bytes of a native against a classic histogram in one scrape and exits (a count, not a timing).
if (args.Contains("--scrape-size"))
{
    ScrapeSize.Run(Console.Out);
    return 0;
}

// --ci: proves every benchmark runs, in-process and with one iteration each; the numbers mean nothing.
IConfig? config = null;
if (args.Contains("--ci"))
{
    args = [.. args.Where(a => a != "--ci")];
    if (!args.Contains("--filter"))
    {
        args = [.. args, "--filter", "*"];
    }

    // The table modes are part of what --ci proves works; they take well under a second.
    ScrapeSize.Run(Console.Out);
    config = DefaultConfig.Instance
        .AddJob(Job.Dry.WithToolchain(InProcessEmitToolchain.Instance))
        .AddDiagnoser(MemoryDiagnoser.Default)
        .WithOptions(ConfigOptions.StopOnFirstError);
}

// The shared-backend classes start servers and worker processes; they run only under "shared".
var peerComparisons = typeof(HotPathBenchmark).Assembly.GetTypes()
    .Where(t => t.Namespace != typeof(SharedBackendsProgram).Namespace && t.IsPublic && !t.IsAbstract
        && t.GetMethods().Any(m => m.IsDefined(typeof(BenchmarkDotNet.Attributes.BenchmarkAttribute), inherit: false)))
    .ToArray();
var summaries = BenchmarkSwitcher.FromTypes(peerComparisons).Run(args, config);
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
