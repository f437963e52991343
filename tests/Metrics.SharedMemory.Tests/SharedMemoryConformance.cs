using Metrics.Backends.SharedMemory;
using Metrics.Conformance;

namespace Metrics.SharedMemory.Tests;

/// <summary>
/// The conformance suite on the SharedMemory backend, through the same xunit adapter a third party uses; the
/// multi-process checks start the conformance runner as real child processes that map the same store files.
/// </summary>
public sealed class SharedMemoryConformance(SharedMemoryConformance.StoreDirectory stores) : BackendConformanceTests<SharedMemoryBackend>, IClassFixture<SharedMemoryConformance.StoreDirectory>
{
    protected override BackendConfig CreateConfig() => stores.Create();

    protected override IEnumerable<BackendConfig> InvalidConfigs => [new([new("MaxProcesses", "many")]), new([new("InitialSize", "-1x")])];

    /// <summary>One directory for the store files of every check, released and deleted after the last one.</summary>
    public sealed class StoreDirectory : IDisposable
    {
        private readonly System.Collections.Concurrent.ConcurrentBag<BackendConfig> _created = [];

        public string Path { get; } = Directory.CreateTempSubdirectory("metrics-shm-conformance-").FullName;

        public BackendConfig Create()
        {
            var config = new BackendConfig([new("Path", System.IO.Path.Combine(Path, Guid.NewGuid().ToString("N") + ".store"))]);
            _created.Add(config);
            return config;
        }

        public void Dispose()
        {
            // Releasing closes each file and frees its slot; what values still point into is unmapped once they are collected.
            foreach (var config in _created)
            {
                Assert.True(SharedMemoryBackend.ShutdownAsync(config, CancellationToken.None).IsCompletedSuccessfully);
            }

            Directory.Delete(Path, recursive: true);
        }
    }
}
