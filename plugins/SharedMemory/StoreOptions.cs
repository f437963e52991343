namespace Metrics.Backends.SharedMemory;

/// <summary>The settings of one store, read and validated from the backend's configuration section.</summary>
internal sealed record StoreOptions(string Path, long InitialSize, long MaxSize, int MaxProcesses, int IndexBuckets, string ConfigPath)
{
    public const string PathKey = "Path";
    public const string InitialSizeKey = "InitialSize";
    public const string MaxSizeKey = "MaxSize";
    public const string MaxProcessesKey = "MaxProcesses";
    public const string IndexBucketsKey = "IndexBuckets";

    public const long DefaultInitialSize = 1L << 20;
    public const long DefaultMaxSize = 64L << 20;
    public const int DefaultMaxProcesses = 256;
    public const int DefaultIndexBuckets = 16384;

    /// <summary>Entry indexes are 32-bit counts of 64-byte units.</summary>
    public const long LargestMaxSize = 64L << 30;

    public static string DefaultPath
    {
        get
        {
            // tmpfs keeps the store in RAM: no disk writes on the update path, and the file vanishes at reboot,
            // which is when every process that wrote it is gone anyway.
            var directory = OperatingSystem.IsLinux() && Directory.Exists("/dev/shm") ? "/dev/shm" : System.IO.Path.GetTempPath();
            return System.IO.Path.Combine(directory, $"metrics-{Environment.UserName}.store");
        }
    }

    public string Key(string key) => ConfigPath.Length == 0 ? key : $"{ConfigPath}:{key}";

    public static StoreOptions Read(BackendConfig config)
    {
        var path = System.IO.Path.GetFullPath(config.GetString(PathKey, DefaultPath)!);
        var initial = config.GetInt64(InitialSizeKey, DefaultInitialSize);
        var max = config.GetInt64(MaxSizeKey, DefaultMaxSize);
        var processes = config.GetInt32(MaxProcessesKey, DefaultMaxProcesses);
        var buckets = config.GetInt32(IndexBucketsKey, DefaultIndexBuckets);
        var options = new StoreOptions(path, initial, max, processes, buckets, config.Path);

        if (processes is < 1 or > 65536)
        {
            throw options.Invalid(MaxProcessesKey, processes, "between 1 and 65536");
        }

        if (buckets < 1 || buckets > (1 << 24) || (buckets & (buckets - 1)) != 0)
        {
            throw options.Invalid(IndexBucketsKey, buckets, "a power of two between 1 and 16777216");
        }

        var minimum = SharedMemoryStore.DataStart(processes, buckets) + (64 * 1024);
        if (max < minimum || max > LargestMaxSize)
        {
            throw options.Invalid(MaxSizeKey, max, $"between {minimum} (the header for {processes} processes and {buckets} index buckets, plus 64 KiB) and {LargestMaxSize} bytes");
        }

        if (initial < minimum || initial > max)
        {
            throw options.Invalid(InitialSizeKey, initial, $"between {minimum} and {options.Key(MaxSizeKey)} ({max}) bytes");
        }

        return options;
    }

    private BackendConfigException Invalid(string key, long value, string expected) =>
        new(Key(key), $"The setting '{Key(key)}' is {value}, which is out of range: use {expected}.");
}
