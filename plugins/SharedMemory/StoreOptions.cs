using System.Reflection;

namespace Metrics.Backends.SharedMemory;

/// <summary>The settings of one store, read and validated from the backend's configuration section.</summary>
internal sealed record StoreOptions(string Path, long InitialSize, long MaxSize, int MaxProcesses, int IndexBuckets, TimeSpan CheckInterval, bool IsDefaultPath, string ConfigPath)
{
    public const string PathKey = "Path";
    public const string ApplicationNameKey = "ApplicationName";
    public const string InitialSizeKey = "InitialSize";
    public const string MaxSizeKey = "MaxSize";
    public const string MaxProcessesKey = "MaxProcesses";
    public const string IndexBucketsKey = "IndexBuckets";
    public const string CheckIntervalKey = "CheckInterval";

    public const long DefaultInitialSize = 1L << 20;
    public const int DefaultMaxProcesses = 256;
    public const int DefaultIndexBuckets = 16384;

    /// <summary>Entry indexes are 32-bit counts of 64-byte units.</summary>
    public const long LargestMaxSize = 64L << 30;

    /// <summary>
    /// 1 GiB on Linux, where it is address space only: the file grows under the mapping with the series. 64 MiB
    /// elsewhere, where the file is created at its full size.
    /// </summary>
    public static long DefaultMaxSize => OperatingSystem.IsLinux() ? 1L << 30 : 64L << 20;

    public static TimeSpan DefaultCheckInterval => TimeSpan.FromSeconds(1);

    /// <summary>The default store of the application running this process: its entry assembly's name.</summary>
    public static string DefaultPath => DefaultPathFor(DefaultApplicationName);

    /// <summary>The entry assembly's name, else the process's name: what names the default store.</summary>
    public static string DefaultApplicationName =>
        Assembly.GetEntryAssembly()?.GetName().Name is { Length: > 0 } name ? name : System.Diagnostics.Process.GetCurrentProcess().ProcessName;

    /// <summary>
    /// Lets a test stand another directory in for <see cref="DefaultDirectory"/> (a link, another user's directory) in
    /// its own flow of execution only, so tests running beside it keep the real one.
    /// </summary>
    internal static AsyncLocal<string?> DefaultDirectoryForTests { get; } = new();

    /// <summary>The per-user directory the default stores live in: <c>/dev/shm/metrics-&lt;uid&gt;</c> on Linux.</summary>
    public static string DefaultDirectory
    {
        get
        {
            if (DefaultDirectoryForTests.Value is { } forTests)
            {
                return forTests;
            }

            // tmpfs keeps the store in RAM: no disk writes on the update path, and the file vanishes at reboot,
            // which is when every process that wrote it is gone anyway.
            if (OperatingSystem.IsLinux() && Directory.Exists("/dev/shm"))
            {
                return $"/dev/shm/metrics-{Native.GetEuid()}";
            }

            return System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"metrics-{Sanitize(Environment.UserName)}");
        }
    }

    /// <summary>The default store of <paramref name="applicationName"/>: one per application and user.</summary>
    public static string DefaultPathFor(string applicationName) =>
        System.IO.Path.Combine(DefaultDirectory, Sanitize(applicationName) + ".store");

    public string Key(string key) => ConfigPath.Length == 0 ? key : $"{ConfigPath}:{key}";

    public static StoreOptions Read(BackendConfig config)
    {
        var configured = config.GetString(PathKey);
        var path = System.IO.Path.GetFullPath(configured ?? DefaultPathFor(config.GetString(ApplicationNameKey) ?? DefaultApplicationName));
        var initial = config.GetInt64(InitialSizeKey, DefaultInitialSize);
        var max = config.GetInt64(MaxSizeKey, DefaultMaxSize);
        var processes = config.GetInt32(MaxProcessesKey, DefaultMaxProcesses);
        var buckets = config.GetInt32(IndexBucketsKey, DefaultIndexBuckets);
        var interval = config.GetTimeSpan(CheckIntervalKey, DefaultCheckInterval);
        var options = new StoreOptions(path, initial, max, processes, buckets, interval, configured is null, config.Path);

        if (config.GetString(ApplicationNameKey) is { } application && Sanitize(application).Trim('_').Length == 0)
        {
            throw new BackendConfigException(options.Key(ApplicationNameKey), $"The setting '{options.Key(ApplicationNameKey)}' is '{application}', which has no letter or digit to name a store file with; use the application's name, such as 'orders-api'.");
        }

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

        if (interval < TimeSpan.FromMilliseconds(10) || interval > TimeSpan.FromHours(1))
        {
            throw new BackendConfigException(options.Key(CheckIntervalKey), $"The setting '{options.Key(CheckIntervalKey)}' is {interval}, which is out of range: use between 10 ms and 1 hour (for example '00:00:01').");
        }

        return options;
    }

    // A file name from any application name: path separators and other characters a shell would trip over become '_'.
    private static string Sanitize(string name)
    {
        var chars = name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_').ToArray();
        var sanitized = new string(chars).TrimStart('.');
        return sanitized.Length == 0 ? "_" : sanitized;
    }

    private BackendConfigException Invalid(string key, long value, string expected) =>
        new(Key(key), $"The setting '{Key(key)}' is {value}, which is out of range: use {expected}.");
}
