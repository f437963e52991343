using System.Globalization;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Metrics.Benchmarks.SharedBackends;

/// <summary>
/// <c>shared bench [--ci] [BenchmarkDotNet arguments]</c>: the update and scrape benchmarks of the shared backends
/// against Memory. <c>shared load [--ci] [--seconds N]</c>: the Redis sustained-load table. <c>shared --ci</c>: both,
/// short. <c>shared scrape-loop shm|redis|memory [--seconds N] [--allocations]</c>: the 11,000-series scrape in a stopwatch loop (for a
/// profiler). <c>shared scrape-1m [--series N]</c>: a scrape of a million Redis series. <c>shared worker ...</c>: a child
/// process the others start.
/// </summary>
public static class SharedBackendsProgram
{
    private static readonly Type[] Benchmarks = [typeof(SharedCounterInc), typeof(SharedHistogramObserve), typeof(SharedScrape11kSeries)];

    public static int Run(string[] args)
    {
        var ci = args.Contains("--ci");
        var command = args.FirstOrDefault(a => !a.StartsWith('-')) ?? (ci ? "all" : "");
        if (command == "worker")
        {
            return SharedWorker.Run(args[1..]);
        }

        // Children (BenchmarkDotNet's processes and the workers they start) inherit it and start workers from this build.
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(SharedBackendSetup.HostAssemblyVariable)))
        {
            Environment.SetEnvironmentVariable(SharedBackendSetup.HostAssemblyVariable, typeof(SharedBackendsProgram).Assembly.Location);
        }

        var rest = args.Where(a => a != "--ci" && a != command).ToArray();
        switch (command)
        {
            case "bench":
                return Bench(rest, ci);
            case "load":
                return SustainedLoad.Run(Console.Out, ci, Seconds(rest, ci));
            case "scrape-loop":
                return ScrapeTiming.Loop(Console.Out, rest.FirstOrDefault(a => !a.StartsWith('-')) ?? "shm", Seconds(rest, ci), rest.Contains("--allocations"));
            case "scrape-1m":
                return ScrapeTiming.Redis1M(Console.Out, Series(rest, ci));
            case "all":
                var failed = Bench(rest, ci);
                return SustainedLoad.Run(Console.Out, ci, Seconds(rest, ci)) | failed;
            default:
                Console.Error.WriteLine("usage: shared bench [--ci] [BenchmarkDotNet arguments] | shared load [--ci] [--seconds N] | shared scrape-loop shm|redis|memory [--seconds N] [--allocations] | shared scrape-1m [--series N] | shared --ci");
                return 2;
        }
    }

    private static double Seconds(string[] args, bool ci)
    {
        var i = Array.IndexOf(args, "--seconds");
        return i >= 0 && i + 1 < args.Length ? double.Parse(args[i + 1], CultureInfo.InvariantCulture) : ci ? 1 : 10;
    }

    private static int Series(string[] args, bool ci)
    {
        var i = Array.IndexOf(args, "--series");
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : ci ? 10_000 : 1_000_000;
    }

    private static int Bench(string[] args, bool ci)
    {
        args = [.. args.Where(a => a != "--seconds")];
        if (!args.Contains("--filter"))
        {
            args = [.. args, "--filter", "*"];
        }

        IConfig? config = null;
        if (ci)
        {
            // As the peer benchmarks' --ci: in-process, one iteration each; proves every case runs, the numbers mean nothing.
            config = DefaultConfig.Instance
                .AddJob(Job.Dry.WithToolchain(InProcessEmitToolchain.Instance))
                .AddDiagnoser(MemoryDiagnoser.Default)
                .WithOptions(ConfigOptions.StopOnFirstError);
        }

        var summaries = BenchmarkSwitcher.FromTypes(Benchmarks).Run(args, config);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }
}
