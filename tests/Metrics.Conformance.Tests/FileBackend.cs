using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Metrics.Conformance.Tests;

/// <summary>
/// A small but correct shared backend: one file per value in the configured directory, updated under an exclusive
/// file lock. It proves the multi-process checks pass for a backend that does share values.
/// </summary>
public sealed class FileBackend : IMetricBackend<FileBackend>
{
    private static readonly ConcurrentDictionary<string, Lock> Locks = new();
    private readonly string _path;
    private readonly Lock _lock;

    public FileBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
        var directory = config.GetRequiredString("Directory");
        var identity = JsonSerializer.Serialize(new Identity(metric.Name, [.. metric.LabelValues], histogramBucket?.ToString()));
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(identity)));
        _path = Path.Combine(directory, hash + ".value");
        var identityPath = Path.Combine(directory, hash + ".key");
        if (!File.Exists(identityPath))
        {
            var temporary = identityPath + "." + Guid.NewGuid().ToString("N");
            File.WriteAllText(temporary, identity);
            File.Move(temporary, identityPath, overwrite: true);
        }

        _lock = Locks.GetOrAdd(_path, _ => new Lock());
    }

    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses;

    public static void Initialize(BackendConfig config) => Directory.CreateDirectory(config.GetRequiredString("Directory"));

    public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families)
    {
        var directory = config.GetRequiredString("Directory");
        var stored = Directory.GetFiles(directory, "*.key")
            .Select(path => (Identity: JsonSerializer.Deserialize<Identity>(File.ReadAllText(path))!, Value: Path.ChangeExtension(path, ".value")))
            .ToList();
        return [.. families.Select(family => (IReadOnlyList<CollectedValue>)[.. stored
            .Where(s => s.Identity.Name == family.Name)
            .Select(s => new CollectedValue(s.Identity.Labels, s.Identity.Part is null ? null : HistogramBucket.Parse(s.Identity.Part), Read(s.Value)))])];
    }

    public void Inc(double value) => Update(current => current + value);

    public void Dec(double value) => Update(current => current - value);

    public void Set(double value) => Update(_ => value);

    public double Get()
    {
        lock (_lock)
        {
            return Read(_path);
        }
    }

    private static double Read(string path)
    {
        while (true)
        {
            try
            {
                using var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Read, FileShare.Read);
                Span<byte> bytes = stackalloc byte[8];
                return stream.Read(bytes) == 8 ? BitConverter.ToDouble(bytes) : 0;
            }
            catch (IOException)
            {
                // Another process holds the exclusive lock for an update.
                Thread.Yield();
            }
        }
    }

    private void Update(Func<double, double> apply)
    {
        lock (_lock)
        {
            while (true)
            {
                try
                {
                    using var stream = new FileStream(_path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                    Span<byte> bytes = stackalloc byte[8];
                    var current = stream.Read(bytes) == 8 ? BitConverter.ToDouble(bytes) : 0;
                    BitConverter.TryWriteBytes(bytes, apply(current));
                    stream.Position = 0;
                    stream.Write(bytes);
                    return;
                }
                catch (IOException)
                {
                    // Another process holds the lock; retry.
                    Thread.Yield();
                }
            }
        }
    }

    private sealed record Identity(string Name, string[] Labels, string? Part);
}
