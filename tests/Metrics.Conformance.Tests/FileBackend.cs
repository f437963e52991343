using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Metrics.Conformance.Tests;

/// <summary>
/// A small but correct shared backend: one file per value in the configured directory, updated under an exclusive
/// file lock. It proves the multi-process checks pass for a backend that does share values. A removed series loses its
/// key files (so collection leaves it out), its values are set to 0 and its exemplars deleted; the next update writes
/// the key again. Each value's latest exemplar is a file of its own, replaced under the same kind of lock.
/// </summary>
public sealed class FileBackend(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket) : IMetricBackend<FileBackend>
{
    private readonly FileValue _value = new(config, metric, histogramBucket);

    public static BackendCapabilities Capabilities => BackendCapabilities.SharedAcrossProcesses | BackendCapabilities.RemovesSeries | BackendCapabilities.CountsSeries | BackendCapabilities.Exemplars;

    public static void Initialize(BackendConfig config) => FileValue.Initialize(config);

    public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families) => FileValue.Collect(config, families);

    public static void RemoveSeries(BackendConfig config, MetricDescriptor series) => FileValue.RemoveSeries(config, series, resetValues: true);

    public void RecordExemplar(in RecordedExemplar exemplar) => _value.RecordExemplar(exemplar);

    public RecordedExemplar? GetExemplar() => _value.GetExemplar();

    public static long SeriesCount(BackendConfig config, MetricDescriptor family) => FileValue.SeriesCount(config, family, countParts: false);

    public void Inc(double value) => _value.Inc(value);

    public void Dec(double value) => _value.Dec(value);

    public void Set(double value) => _value.Set(value);

    public double Get() => _value.Get();
}

/// <summary>One value of the file backends: a value file and a key file naming its series and part.</summary>
internal sealed class FileValue
{
    private static readonly ConcurrentDictionary<string, Lock> Locks = new();
    private readonly string _path;
    private readonly string _identityPath;
    private readonly string _identity;
    private readonly Lock _lock;

    public FileValue(BackendConfig config, MetricDescriptor metric, HistogramBucket? histogramBucket)
    {
        var directory = config.GetRequiredString("Directory");
        _identity = JsonSerializer.Serialize(new Identity(metric.Name, [.. metric.LabelValues], histogramBucket?.ToString()));
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(_identity)));
        _path = Path.Combine(directory, hash + ".value");
        _identityPath = Path.Combine(directory, hash + ".key");
        WriteKey();
        _lock = Locks.GetOrAdd(_path, _ => new Lock());
    }

    public static IReadOnlyList<CollectedValue>[]? Collect(BackendConfig config, IReadOnlyList<MetricDescriptor> families)
    {
        var stored = Stored(config);
        return [.. families.Select(family => (IReadOnlyList<CollectedValue>)[.. stored
            .Where(s => s.Identity.Name == family.Name)
            .Select(s => new CollectedValue(s.Identity.Labels, s.Identity.Part is null ? null : HistogramBucket.Parse(s.Identity.Part), Read(s.Value)) { Exemplar = ReadExemplar(ExemplarPath(s.Value)) })])];
    }

    /// <summary>Replaces the stored exemplar unless it is later, in one exclusive open of the exemplar file (so across processes too).</summary>
    public void RecordExemplar(in RecordedExemplar exemplar)
    {
        var stored = new StoredExemplar([.. exemplar.Labels.Pairs()], BitConverter.DoubleToInt64Bits(exemplar.Value), BitConverter.DoubleToInt64Bits(exemplar.TimestampUnixSeconds));
        lock (_lock)
        {
            while (true)
            {
                try
                {
                    using var stream = new FileStream(ExemplarPath(_path), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                    if (stream.Length > 0 && JsonSerializer.Deserialize<StoredExemplar>(stream) is { } held
                        && BitConverter.Int64BitsToDouble(held.Timestamp) > exemplar.TimestampUnixSeconds)
                    {
                        return;
                    }

                    stream.SetLength(0);
                    JsonSerializer.Serialize(stream, stored);
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

    public RecordedExemplar? GetExemplar()
    {
        lock (_lock)
        {
            return ReadExemplar(ExemplarPath(_path));
        }
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

    public static void RemoveSeries(BackendConfig config, MetricDescriptor series, bool resetValues, bool keepExemplars = false)
    {
        foreach (var (identity, value) in Stored(config))
        {
            if (identity.Name == series.Name && (series.LabelValues.Count == 0 || identity.Labels.SequenceEqual(series.LabelValues)))
            {
                // Under the value's lock, so an update either lands before (and is reset) or writes the key again after.
                lock (Locks.GetOrAdd(value, _ => new Lock()))
                {
                    File.Delete(Path.ChangeExtension(value, ".key"));
                    if (resetValues)
                    {
                        Write(value, _ => 0);
                    }

                    if (!keepExemplars)
                    {
                        File.Delete(ExemplarPath(value));
                    }
                }
            }
        }
    }

    public static long SeriesCount(BackendConfig config, MetricDescriptor family, bool countParts)
    {
        var series = Stored(config).Where(s => s.Identity.Name == family.Name).Select(s => string.Join("\u0001", s.Identity.Labels) + (countParts ? s.Identity.Part : null));
        return series.Distinct(StringComparer.Ordinal).Count();
    }

    public static void Initialize(BackendConfig config) => Directory.CreateDirectory(config.GetRequiredString("Directory"));

    private static List<(Identity Identity, string Value)> Stored(BackendConfig config)
    {
        var result = new List<(Identity, string)>();
        foreach (var path in Directory.GetFiles(config.GetRequiredString("Directory"), "*.key"))
        {
            try
            {
                result.Add((JsonSerializer.Deserialize<Identity>(File.ReadAllText(path))!, Path.ChangeExtension(path, ".value")));
            }
            catch (FileNotFoundException)
            {
                // Removed since the listing: the series is gone.
            }
        }

        return result;
    }

    private void WriteKey()
    {
        if (!File.Exists(_identityPath))
        {
            var temporary = _identityPath + "." + Guid.NewGuid().ToString("N");
            File.WriteAllText(temporary, _identity);
            File.Move(temporary, _identityPath, overwrite: true);
        }
    }

    private static string ExemplarPath(string valuePath) => Path.ChangeExtension(valuePath, ".exemplar");

    private static RecordedExemplar? ReadExemplar(string path)
    {
        while (true)
        {
            try
            {
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
                if (stream.Length == 0 || JsonSerializer.Deserialize<StoredExemplar>(stream) is not { } stored)
                {
                    return null;
                }

                return new RecordedExemplar(Exemplar.FromPairs(stored.Pairs), BitConverter.Int64BitsToDouble(stored.Value), BitConverter.Int64BitsToDouble(stored.Timestamp));
            }
            catch (FileNotFoundException)
            {
                return null;
            }
            catch (IOException)
            {
                // Another process holds the exclusive lock for a write.
                Thread.Yield();
            }
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
            Write(_path, apply);

            // An update brings a removed series back.
            WriteKey();
        }
    }

    private static void Write(string path, Func<double, double> apply)
    {
        while (true)
        {
            try
            {
                using var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
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

    private sealed record Identity(string Name, string[] Labels, string? Part);

    // Doubles as their bits: a JSON number would not keep -0 or NaN payloads, and the checks compare exactly.
    private sealed record StoredExemplar(string[] Pairs, long Value, long Timestamp);
}
