using StackExchange.Redis;

namespace Metrics.Backends.Redis;

/// <summary>The Redis backend's settings, read once per configuration through the typed reads of <see cref="BackendConfig"/>.</summary>
internal sealed class RedisSettings
{
    internal const string ConnectionStringKey = "ConnectionString";
    internal const string KeyPrefixKey = "KeyPrefix";
    internal const string KeyExpiryKey = "KeyExpiry";
    internal const string FlushIntervalKey = "FlushInterval";
    internal const string MaxPendingSeriesKey = "MaxPendingSeries";
    internal const string ConnectTimeoutKey = "ConnectTimeout";
    internal const string OperationTimeoutKey = "OperationTimeout";
    internal const string UserKey = "User";
    internal const string PasswordKey = "Password";
    internal const string HeartbeatIntervalKey = "HeartbeatInterval";
    internal const string HeartbeatTimeoutKey = "HeartbeatTimeout";

    // StackExchange.Redis option names: after "password=", text up to the next ",<one of these>=" belongs to the
    // password, so a password may contain commas, '=' and spaces without being split into an endpoint or an option.
    private static readonly HashSet<string> KnownOptions = new(StringComparer.OrdinalIgnoreCase)
    {
        "abortConnect", "allowAdmin", "asyncTimeout", "channelPrefix", "checkCertificateRevocation", "configChannel",
        "configCheckSeconds", "connectRetry", "connectTimeout", "defaultDatabase", "highPrioritySocketThreads", "keepAlive",
        "name", "password", "protocol", "proxy", "resolveDns", "responseTimeout", "serviceName", "setlib", "ssl", "sslHost",
        "sslProtocols", "syncTimeout", "tiebreaker", "tunnel", "user", "version", "writeBuffer", "heartbeatInterval",
        "heartbeatConsistencyChecks", "includeDetailInExceptions", "includePerformanceCountersInExceptions",
    };

    private RedisSettings(ConfigurationOptions options, string[] secrets, string keyPrefix, TimeSpan keyExpiry, TimeSpan flushInterval,
        int maxPendingSeries, TimeSpan operationTimeout, TimeSpan heartbeatInterval, TimeSpan heartbeatTimeout)
    {
        HeartbeatInterval = heartbeatInterval;
        HeartbeatTimeout = heartbeatTimeout;
        Options = options;
        Secrets = secrets;
        KeyPrefix = keyPrefix;
        KeyExpiry = keyExpiry;
        KeyExpiryMs = keyExpiry > TimeSpan.Zero ? (long)keyExpiry.TotalMilliseconds : 0;
        FlushInterval = flushInterval;
        MaxPendingSeries = maxPendingSeries;
        OperationTimeout = operationTimeout;
        Endpoints = string.Join(",", options.EndPoints.Select(e => e.ToString()));
    }

    public ConfigurationOptions Options { get; }

    /// <summary>Strings that must never reach a message: the password, as written in the connection string.</summary>
    public string[] Secrets { get; }

    public string KeyPrefix { get; }

    public TimeSpan KeyExpiry { get; }

    /// <summary><see cref="KeyExpiry"/> in milliseconds as the scripts take it: 0 keeps keys forever.</summary>
    public long KeyExpiryMs { get; }

    public TimeSpan FlushInterval { get; }

    public int MaxPendingSeries { get; }

    public TimeSpan OperationTimeout { get; }

    /// <summary>How often a writer of per-process gauges (the Live modes, Max, Min) renews its liveness deadline.</summary>
    public TimeSpan HeartbeatInterval { get; }

    /// <summary>How long after its last heartbeat (by the Redis server's clock) a writer counts as dead.</summary>
    public TimeSpan HeartbeatTimeout { get; }

    /// <summary>The endpoints only, for messages: no password, no user, no other option.</summary>
    public string Endpoints { get; }

    /// <summary>
    /// How long a writer's last-applied-batch marker lives. A lost reply is re-sent within the flush interval once the
    /// server answers again, so the marker only has to outlive the longest outage the deduplication should cover.
    /// </summary>
    public TimeSpan MarkerExpiry => KeyExpiry > TimeSpan.FromHours(24) ? KeyExpiry : TimeSpan.FromHours(24);

    public static RedisSettings Read(BackendConfig config)
    {
        var connectionString = config.GetString(ConnectionStringKey, "127.0.0.1:6379")!;
        var (withoutPassword, embeddedPassword) = ExtractPassword(connectionString);
        var password = config.GetString(PasswordKey) ?? embeddedPassword;
        string[] secrets = [.. new[] { password, embeddedPassword }.Where(p => !string.IsNullOrEmpty(p)).Distinct(StringComparer.Ordinal).OrderByDescending(p => p!.Length).Select(p => p!)];
        ConfigurationOptions options;
        try
        {
            options = ConfigurationOptions.Parse(withoutPassword);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or NotSupportedException or KeyNotFoundException)
        {
            throw new BackendConfigException(FullKey(config, ConnectionStringKey),
                $"The setting '{FullKey(config, ConnectionStringKey)}' is not a valid StackExchange.Redis connection string ({Scrub(ex.Message, secrets)}). " +
                "Use 'host:port[,ssl=true][,user=...][,password=...]' (the password last), or the settings 'User' and 'Password', for example '127.0.0.1:6379'.");
        }

        if (password is not null)
        {
            options.Password = password;
        }

        if (config.GetString(UserKey) is { } user)
        {
            options.User = user;
        }

        if (options.EndPoints.Count == 0)
        {
            throw new BackendConfigException(FullKey(config, ConnectionStringKey),
                $"The setting '{FullKey(config, ConnectionStringKey)}' names no Redis endpoint. Use 'host:port[,password=...][,ssl=true]', for example '127.0.0.1:6379'.");
        }

        var prefix = config.GetString(KeyPrefixKey, "metrics:")!;
        if (prefix.Contains('{', StringComparison.Ordinal) || prefix.Contains('}', StringComparison.Ordinal))
        {
            // The backend puts each metric name in a hash tag; a brace in the prefix would become the tag instead and
            // scatter one metric's keys over several Cluster slots.
            throw new BackendConfigException(FullKey(config, KeyPrefixKey),
                $"The setting '{FullKey(config, KeyPrefixKey)}' is '{prefix}', which contains '{{' or '}}'. Use a prefix without braces, for example 'metrics:'.");
        }

        var keyExpiry = config.GetTimeSpan(KeyExpiryKey, TimeSpan.FromDays(1));
        var flushInterval = config.GetTimeSpan(FlushIntervalKey, TimeSpan.FromSeconds(1));
        RequirePositive(config, FlushIntervalKey, flushInterval, "'1s' or '250ms'");
        var connectTimeout = config.GetTimeSpan(ConnectTimeoutKey, TimeSpan.FromSeconds(5));
        RequirePositive(config, ConnectTimeoutKey, connectTimeout, "'5s'");
        var operationTimeout = config.GetTimeSpan(OperationTimeoutKey, TimeSpan.FromSeconds(5));
        RequirePositive(config, OperationTimeoutKey, operationTimeout, "'5s'");
        var heartbeatInterval = config.GetTimeSpan(HeartbeatIntervalKey, TimeSpan.FromSeconds(5));
        RequirePositive(config, HeartbeatIntervalKey, heartbeatInterval, "'5s'");
        var heartbeatTimeout = config.GetTimeSpan(HeartbeatTimeoutKey, TimeSpan.FromSeconds(30));
        if (heartbeatTimeout <= heartbeatInterval)
        {
            // A timeout within one interval would declare every idle writer dead between two of its own heartbeats.
            throw new BackendConfigException(FullKey(config, HeartbeatTimeoutKey),
                $"The setting '{FullKey(config, HeartbeatTimeoutKey)}' is {heartbeatTimeout}, which is not longer than HeartbeatInterval ({heartbeatInterval}). " +
                "Use a timeout of several intervals, for example '30s' with an interval of '5s'.");
        }

        var maxPending = config.GetInt32(MaxPendingSeriesKey, 100_000);
        if (maxPending < 1)
        {
            throw new BackendConfigException(FullKey(config, MaxPendingSeriesKey),
                $"The setting '{FullKey(config, MaxPendingSeriesKey)}' is {maxPending}, which is not a positive integer. Use a positive integer, for example 100000.");
        }

        options.AbortOnConnectFail = false;
        options.ConnectTimeout = ToMilliseconds(connectTimeout);
        options.SyncTimeout = ToMilliseconds(operationTimeout);
        options.AsyncTimeout = ToMilliseconds(operationTimeout);
        // Commands issued while disconnected must fail at once: the flusher keeps its batch and retries, and a scrape
        // must fail clearly instead of waiting in a backlog.
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ReconnectRetryPolicy = new ExponentialRetry(250, 2000);
        options.ClientName ??= "metrics";
        return new RedisSettings(options, secrets, prefix, keyExpiry, flushInterval, maxPending, operationTimeout, heartbeatInterval, heartbeatTimeout);
    }

    /// <summary>
    /// Masks every secret in <paramref name="message"/>, text that came from outside the backend (an exception of the
    /// client, a server reply). Only whole values are replaced, where they stand as a token, never part of a longer
    /// word: a one-letter password or one equal to a common word neither garbles a message nor reveals itself by the
    /// gaps it leaves. The backend's own text never contains a secret and is not passed through here.
    /// </summary>
    public string Scrub(string message) => Scrub(message, Secrets);

    internal static string Scrub(string message, string[] secrets)
    {
        foreach (var secret in secrets)
        {
            message = BackendConfig.MaskSecret(message, secret);
        }

        return message;
    }

    /// <summary>
    /// Splits the password out of a connection string: the value of <c>password=</c> runs to the next
    /// <c>,option=</c> naming a StackExchange.Redis option, or to the end, so commas, '=' and spaces stay in it.
    /// Returns the connection string without it, and the password (null when there is none).
    /// </summary>
    internal static (string WithoutPassword, string? Password) ExtractPassword(string connectionString)
    {
        var parts = connectionString.Split(',');
        var kept = new List<string>(parts.Length);
        string? password = null;
        for (var i = 0; i < parts.Length; i++)
        {
            var part = parts[i];
            var trimmed = part.TrimStart();
            if (!trimmed.StartsWith("password=", StringComparison.OrdinalIgnoreCase))
            {
                kept.Add(part);
                continue;
            }

            var value = new System.Text.StringBuilder(trimmed["password=".Length..]);
            while (i + 1 < parts.Length && !IsOption(parts[i + 1]))
            {
                value.Append(',').Append(parts[++i]);
            }

            password = value.ToString();
        }

        return (string.Join(",", kept), password);
    }

    private static bool IsOption(string part)
    {
        var equals = part.IndexOf('=', StringComparison.Ordinal);
        return equals > 0 && (KnownOptions.Contains(part[..equals].Trim()) || part.TrimStart().StartsWith('$'));
    }

    private static void RequirePositive(BackendConfig config, string key, TimeSpan value, string example)
    {
        if (value <= TimeSpan.Zero)
        {
            throw new BackendConfigException(FullKey(config, key),
                $"The setting '{FullKey(config, key)}' is {value}, which is not a positive duration. Use a positive duration, for example {example}.");
        }
    }

    private static int ToMilliseconds(TimeSpan value) => (int)Math.Clamp(value.TotalMilliseconds, 1, int.MaxValue);

    private static string FullKey(BackendConfig config, string key) => config.Path.Length == 0 ? key : $"{config.Path}:{key}";
}
