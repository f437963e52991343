using System.Globalization;

namespace Metrics;

/// <summary>
/// A backend's configuration section (<c>Metrics:BackendConfig</c>, from JSON, environment variables or code),
/// flattened to keys and string values. Nested keys use <c>:</c> (<c>Pool:Size</c>); keys are case-insensitive.
/// </summary>
/// <remarks>
/// The typed reads throw <see cref="BackendConfigException"/> naming the full key, the expected type and an
/// example, so a wrong setting fails at startup with a message the operator can act on. Values of keys that look
/// secret (password, secret, token, connection string, credential) are never included in messages.
/// Two configurations are equal when they hold the same keys and values; the host initializes a backend type once
/// per distinct configuration.
/// </remarks>
public sealed class BackendConfig : IEquatable<BackendConfig>
{
    private static readonly string[] SecretMarkers = ["password", "secret", "token", "connectionstring", "credential", "auth"];
    private readonly Dictionary<string, string?> _values;

    /// <summary>Creates a configuration from key/value pairs.</summary>
    /// <param name="values">The keys (relative to the section, nested with <c>:</c>) and values.</param>
    /// <param name="path">The section's path, used in messages.</param>
    public BackendConfig(IEnumerable<KeyValuePair<string, string?>> values, string path = "Metrics:BackendConfig")
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(path);
        _values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in values)
        {
            _values[key] = value;
        }

        Path = path;
    }

    /// <summary>An empty configuration: every typed read returns its default.</summary>
    public static BackendConfig Empty { get; } = new([]);

    /// <summary>The section's path, for example <c>Metrics:BackendConfig</c>.</summary>
    public string Path { get; }

    /// <summary>The keys present, relative to the section.</summary>
    public IEnumerable<string> Keys => _values.Keys;

    /// <summary>The raw value of <paramref name="key"/>, or <see langword="null"/> when absent.</summary>
    /// <param name="key">The key relative to the section.</param>
    public string? this[string key] => _values.TryGetValue(key, out var v) ? v : null;

    /// <summary>Reads a string.</summary>
    /// <param name="key">The key relative to the section.</param>
    /// <param name="defaultValue">Returned when the key is absent or empty.</param>
    /// <returns>The value or the default.</returns>
    public string? GetString(string key, string? defaultValue = null)
    {
        var raw = this[key];
        return string.IsNullOrEmpty(raw) ? defaultValue : raw;
    }

    /// <summary>Reads a string that must be present.</summary>
    /// <param name="key">The key relative to the section.</param>
    /// <returns>The non-empty value.</returns>
    /// <exception cref="BackendConfigException">The key is absent or empty.</exception>
    public string GetRequiredString(string key)
    {
        var raw = this[key];
        if (string.IsNullOrEmpty(raw))
        {
            throw new BackendConfigException(FullKey(key), $"The setting '{FullKey(key)}' is required. Set it in appsettings.json or as the environment variable '{FullKey(key).Replace(":", "__", StringComparison.Ordinal)}'.");
        }

        return raw;
    }

    /// <summary>Reads a 32-bit integer (invariant culture).</summary>
    /// <param name="key">The key relative to the section.</param>
    /// <param name="defaultValue">Returned when the key is absent or empty.</param>
    /// <returns>The value or the default.</returns>
    /// <exception cref="BackendConfigException">The value is not an integer.</exception>
    public int GetInt32(string key, int defaultValue) =>
        Read(key, defaultValue, "an integer", "100", static s => (int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v), v));

    /// <summary>Reads a 64-bit integer (invariant culture).</summary>
    /// <param name="key">The key relative to the section.</param>
    /// <param name="defaultValue">Returned when the key is absent or empty.</param>
    /// <returns>The value or the default.</returns>
    /// <exception cref="BackendConfigException">The value is not an integer.</exception>
    public long GetInt64(string key, long defaultValue) =>
        Read(key, defaultValue, "an integer", "1048576", static s => (long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v), v));

    /// <summary>Reads a double (invariant culture, <c>.</c> as decimal separator).</summary>
    /// <param name="key">The key relative to the section.</param>
    /// <param name="defaultValue">Returned when the key is absent or empty.</param>
    /// <returns>The value or the default.</returns>
    /// <exception cref="BackendConfigException">The value is not a number.</exception>
    public double GetDouble(string key, double defaultValue) =>
        Read(key, defaultValue, "a number", "0.5", static s => (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v), v));

    /// <summary>Reads a boolean (<c>true</c>/<c>false</c>, case-insensitive).</summary>
    /// <param name="key">The key relative to the section.</param>
    /// <param name="defaultValue">Returned when the key is absent or empty.</param>
    /// <returns>The value or the default.</returns>
    /// <exception cref="BackendConfigException">The value is not a boolean.</exception>
    public bool GetBoolean(string key, bool defaultValue) =>
        Read(key, defaultValue, "a boolean", "true", static s => (bool.TryParse(s, out var v), v));

    /// <summary>
    /// Reads a duration: <c>hh:mm:ss[.fff]</c>, or a number with a unit: <c>250ms</c>, <c>5s</c>, <c>2m</c>, <c>1h</c>.
    /// A bare number is refused, because its unit would be a guess.
    /// </summary>
    /// <param name="key">The key relative to the section.</param>
    /// <param name="defaultValue">Returned when the key is absent or empty.</param>
    /// <returns>The value or the default.</returns>
    /// <exception cref="BackendConfigException">The value is not a duration, or is negative.</exception>
    public TimeSpan GetTimeSpan(string key, TimeSpan defaultValue) =>
        Read(key, defaultValue, "a duration", "'00:00:01', '250ms', '5s', '2m' or '1h'", static s => TryParseDuration(s, out var v) ? (true, v) : (false, default));

    /// <summary>Reads an enum value by name (case-insensitive).</summary>
    /// <typeparam name="TEnum">The enum type.</typeparam>
    /// <param name="key">The key relative to the section.</param>
    /// <param name="defaultValue">Returned when the key is absent or empty.</param>
    /// <returns>The value or the default.</returns>
    /// <exception cref="BackendConfigException">The value is not one of the enum's names.</exception>
    public TEnum GetEnum<TEnum>(string key, TEnum defaultValue)
        where TEnum : struct, Enum =>
        Read(key, defaultValue, $"one of {string.Join(", ", Enum.GetNames<TEnum>())}", Enum.GetNames<TEnum>()[0],
            static s => ParseEnum<TEnum>(s));

    /// <summary>Returns the subsection under <paramref name="prefix"/> (keys <c>prefix:*</c>).</summary>
    /// <param name="prefix">The subsection name.</param>
    /// <returns>The subsection; empty when absent.</returns>
    public BackendConfig GetSection(string prefix)
    {
        var start = prefix + ":";
        return new BackendConfig(
            _values.Where(kv => kv.Key.StartsWith(start, StringComparison.OrdinalIgnoreCase))
                   .Select(kv => new KeyValuePair<string, string?>(kv.Key[start.Length..], kv.Value)),
            FullKey(prefix));
    }

    /// <summary>Whether a key's value must never appear in messages or logs.</summary>
    /// <param name="key">The key.</param>
    /// <returns><see langword="true"/> for keys naming passwords, secrets, tokens, connection strings or credentials.</returns>
    public static bool IsSecretKey(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        foreach (var marker in SecretMarkers)
        {
            if (key.Contains(marker, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Replaces with <c>***</c> each occurrence of <paramref name="secret"/> in <paramref name="text"/> that stands as a
    /// token: not where it is part of a longer word or number. For text from outside a backend (a client's exception, a
    /// server reply) that may quote a password: a one-letter password or one equal to a common word then neither garbles
    /// the message nor reveals itself by the gaps it leaves.
    /// </summary>
    /// <param name="text">The text to mask.</param>
    /// <param name="secret">The secret value; an empty one masks nothing.</param>
    /// <returns>The text with every standalone occurrence of the secret masked.</returns>
    public static string MaskSecret(string text, string secret)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(secret);
        if (secret.Length == 0)
        {
            return text;
        }

        var builder = new System.Text.StringBuilder(text.Length);
        var start = 0;
        while (true)
        {
            var at = text.IndexOf(secret, start, StringComparison.Ordinal);
            if (at < 0)
            {
                break;
            }

            var end = at + secret.Length;
            var standsAlone = (at == 0 || !IsWordChar(text[at - 1]) || !IsWordChar(secret[0]))
                && (end == text.Length || !IsWordChar(text[end]) || !IsWordChar(secret[^1]));
            builder.Append(text, start, at - start).Append(standsAlone ? "***" : secret);
            start = end;
        }

        return builder.Append(text, start, text.Length - start).ToString();

        static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
    }

    /// <inheritdoc/>
    public bool Equals(BackendConfig? other)
    {
        if (other is null)
        {
            return false;
        }

        if (ReferenceEquals(this, other))
        {
            return true;
        }

        if (other._values.Count != _values.Count)
        {
            return false;
        }

        foreach (var (key, value) in _values)
        {
            if (!other._values.TryGetValue(key, out var otherValue) || !string.Equals(value, otherValue, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as BackendConfig);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = 0;
        foreach (var (key, value) in _values)
        {
            // Order-independent: XOR of per-entry hashes.
            hash ^= HashCode.Combine(StringComparer.OrdinalIgnoreCase.GetHashCode(key), value is null ? 0 : StringComparer.Ordinal.GetHashCode(value));
        }

        return hash;
    }

    /// <summary>Lists the keys, with secret values masked.</summary>
    /// <returns>Text such as <c>Metrics:BackendConfig{Prefix=app, ConnectionString=***}</c>.</returns>
    public override string ToString() =>
        $"{Path}{{{string.Join(", ", _values.OrderBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase).Select(kv => $"{kv.Key}={(IsSecretKey(kv.Key) ? "***" : kv.Value)}"))}}}";

    private string FullKey(string key) => Path.Length == 0 ? key : $"{Path}:{key}";

    private T Read<T>(string key, T defaultValue, string expected, string example, Func<string, (bool Ok, T Value)> parse)
    {
        var raw = this[key];
        if (string.IsNullOrWhiteSpace(raw))
        {
            return defaultValue;
        }

        var (ok, value) = parse(raw.Trim());
        if (ok)
        {
            return value;
        }

        var shown = IsSecretKey(key) ? "(value hidden)" : $"'{raw}'";
        throw new BackendConfigException(FullKey(key), $"The setting '{FullKey(key)}' is {shown}, which is not {expected}. Use {expected}, for example {example}.");
    }

    private static (bool Ok, TEnum Value) ParseEnum<TEnum>(string s)
        where TEnum : struct, Enum
    {
        // Numbers parse as enums too, but would accept undefined values; only names are allowed.
        if (char.IsAsciiDigit(s[0]) || s[0] == '-')
        {
            return (false, default);
        }

        return Enum.TryParse<TEnum>(s, ignoreCase: true, out var v) ? (true, v) : (false, default);
    }

    private static bool TryParseDuration(string s, out TimeSpan value)
    {
        value = default;
        (string Suffix, double Scale)[] units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)];
        foreach (var (suffix, scale) in units)
        {
            if (s.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)
                && double.TryParse(s.AsSpan(0, s.Length - suffix.Length), NumberStyles.Float, CultureInfo.InvariantCulture, out var n)
                && n >= 0 && !double.IsInfinity(n))
            {
                value = TimeSpan.FromMilliseconds(n * scale);
                return true;
            }
        }

        if (s.Contains(':', StringComparison.Ordinal) && TimeSpan.TryParse(s, CultureInfo.InvariantCulture, out value) && value >= TimeSpan.Zero)
        {
            return true;
        }

        return false;
    }
}
