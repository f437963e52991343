using System.Text.RegularExpressions;
using StackExchange.Redis;

namespace Metrics.Backends.Redis;

/// <summary>The Redis backend's settings, read once per configuration through the typed reads of <see cref="BackendConfig"/>.</summary>
internal sealed partial class RedisSettings
{
    internal const string ConnectionStringKey = "ConnectionString";
    internal const string KeyPrefixKey = "KeyPrefix";
    internal const string KeyExpiryKey = "KeyExpiry";
    internal const string FlushIntervalKey = "FlushInterval";
    internal const string MaxPendingSeriesKey = "MaxPendingSeries";
    internal const string ConnectTimeoutKey = "ConnectTimeout";
    internal const string OperationTimeoutKey = "OperationTimeout";

    private RedisSettings(ConfigurationOptions options, string[] secrets, string keyPrefix, TimeSpan keyExpiry, TimeSpan flushInterval,
        int maxPendingSeries, TimeSpan operationTimeout)
    {
        Options = options;
        Secrets = secrets;
        KeyPrefix = keyPrefix;
        KeyExpiry = keyExpiry;
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

    public TimeSpan FlushInterval { get; }

    public int MaxPendingSeries { get; }

    public TimeSpan OperationTimeout { get; }

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
        var secrets = FindSecrets(connectionString);
        ConfigurationOptions options;
        try
        {
            options = ConfigurationOptions.Parse(connectionString);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or NotSupportedException or KeyNotFoundException)
        {
            throw new BackendConfigException(FullKey(config, ConnectionStringKey),
                $"The setting '{FullKey(config, ConnectionStringKey)}' is not a valid StackExchange.Redis connection string ({Scrub(ex.Message, secrets)}). " +
                "Use 'host:port[,password=...][,ssl=true][,user=...]', for example '127.0.0.1:6379'.");
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
        return new RedisSettings(options, secrets, prefix, keyExpiry, flushInterval, maxPending, operationTimeout);
    }

    /// <summary>Removes every secret from <paramref name="message"/>.</summary>
    public string Scrub(string message) => Scrub(message, Secrets);

    private static string Scrub(string message, string[] secrets)
    {
        foreach (var secret in secrets)
        {
            message = message.Replace(secret, "***", StringComparison.Ordinal);
        }

        return message;
    }

    private static string[] FindSecrets(string connectionString)
    {
        var secrets = new List<string>();
        foreach (Match m in SecretOption().Matches(connectionString))
        {
            var value = m.Groups["v"].Value.Trim();
            if (value.Length > 0)
            {
                secrets.Add(value);
                if (value.Length > 2 && (value[0] == '"' || value[0] == '\''))
                {
                    secrets.Add(value[1..^1]);
                }
            }
        }

        // Longest first, so that a secret containing another is masked whole.
        return [.. secrets.Distinct(StringComparer.Ordinal).OrderByDescending(s => s.Length)];
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

    [GeneratedRegex(@"(?:^|,)\s*(?:password|sslpassword|pwd)\s*=(?<v>[^,]*)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SecretOption();
}
