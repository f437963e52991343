using Metrics.Backends.Memory;

namespace Metrics.Conformance.Tests;

/// <summary>The Memory backend through the xunit adapter, written exactly as a third party would.</summary>
public class MemoryConformance : BackendConformanceTests<MemoryBackend>
{
}

/// <summary>A correct shared backend: the multi-process checks start real child processes and pass.</summary>
public sealed class FileBackendConformance : BackendConformanceTests<FileBackend>, IDisposable
{
    // Static: the target, with this factory, is built once for the class and outlives the instance that built it. The
    // class's tests run one at a time, so after each test every directory here belongs to that test.
    private static readonly System.Collections.Concurrent.ConcurrentQueue<string> Directories = new();

    /// <summary>Deletes the store directories the test's configurations named (the check has ended its child processes).</summary>
    public void Dispose()
    {
        while (Directories.TryDequeue(out var directory))
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    protected override BackendConfig CreateConfig()
    {
        var directory = Path.Combine(Path.GetTempPath(), "metrics-file-backend", Guid.NewGuid().ToString("N"));
        Directories.Enqueue(directory);
        return new([new("Directory", directory)]);
    }

    protected override IEnumerable<BackendConfig> InvalidConfigs => [new([new("Directory", "")])];

    // Every update is a locked file write: fewer of them keep the run short.
    protected override ConformanceOptions Options => new() { IncrementsPerThread = 2_000, ChildProcesses = 3, ChildIncrements = 300 };
}
