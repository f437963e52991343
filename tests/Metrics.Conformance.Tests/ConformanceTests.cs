using Metrics.Backends.Memory;

namespace Metrics.Conformance.Tests;

/// <summary>The Memory backend through the xunit adapter, written exactly as a third party would.</summary>
public class MemoryConformance : BackendConformanceTests<MemoryBackend>
{
}

/// <summary>A correct shared backend: the multi-process checks start real child processes and pass.</summary>
public class FileBackendConformance : BackendConformanceTests<FileBackend>
{
    protected override BackendConfig CreateConfig() =>
        new([new("Directory", Path.Combine(Path.GetTempPath(), "metrics-file-backend", Guid.NewGuid().ToString("N")))]);

    protected override IEnumerable<BackendConfig> InvalidConfigs => [new([new("Directory", "")])];

    // Every update is a locked file write: fewer of them keep the run short.
    protected override ConformanceOptions Options => new() { IncrementsPerThread = 2_000, ChildProcesses = 3, ChildIncrements = 300 };
}
