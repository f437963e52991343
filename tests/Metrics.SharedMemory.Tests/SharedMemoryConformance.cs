using Metrics.Backends.SharedMemory;
using Metrics.Conformance;

namespace Metrics.SharedMemory.Tests;

/// <summary>
/// The conformance suite on the SharedMemory backend, through the same xunit adapter a third party uses; the
/// multi-process checks start the conformance runner as real child processes that map the same store files.
/// </summary>
public sealed class SharedMemoryConformance(SharedMemoryConformance.StoreDirectory stores) : BackendConformanceTests<SharedMemoryBackend>, IClassFixture<SharedMemoryConformance.StoreDirectory>
{
    protected override BackendConfig CreateConfig() =>
        new([new("Path", Path.Combine(stores.Path, Guid.NewGuid().ToString("N") + ".store"))]);

    /// <summary>One directory for the store files of every check, deleted after the last one.</summary>
    public sealed class StoreDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("metrics-shm-conformance-").FullName;

        // The stores stay mapped until the process exits; on Linux and macOS removing a mapped file only unlinks its name.
        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
