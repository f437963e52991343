using System.Reflection;
using Metrics.Tests;

namespace Metrics.SharedMemory.Tests;

/// <summary>The command line of Metrics.SharedMemory.Worker (<c>command store-path args...</c>), started through <see cref="ChildProcess"/>.</summary>
internal static class Worker
{
    private static readonly string WorkerPath = Path.GetFullPath(typeof(Worker).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "WorkerPath").Value!.Replace('\\', Path.DirectorySeparatorChar));

    public static ChildProcess Start(string storePath, IReadOnlyDictionary<string, string?>? environment, params string[] args) =>
        ChildProcess.StartDotnet(WorkerPath, [args[0], storePath, .. args.Skip(1)], environment);

    public static ChildProcess Start(string storePath, params string[] args) => Start(storePath, null, args);

    /// <summary>Runs a worker to completion and fails the test, with its output, if it does not exit with 0.</summary>
    public static void Run(string storePath, params string[] args) => Run(storePath, null, args);

    /// <inheritdoc cref="Run(string, string[])"/>
    public static void Run(string storePath, IReadOnlyDictionary<string, string?>? environment, params string[] args)
    {
        using var worker = Start(storePath, environment, args);
        // Commands that wait on stdin (gauge) finish at once.
        worker.CloseInput();
        Assert.True(worker.WaitForExit() == 0, worker.Output);
    }
}
