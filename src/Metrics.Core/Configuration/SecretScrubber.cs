using System.Text.RegularExpressions;

namespace Metrics.Configuration;

/// <summary>Removes a backend configuration's secret values from text a plugin produced, such as an exception message.</summary>
internal static partial class SecretScrubber
{
    internal const string Mask = "***";

    // Shorter values are too likely to be ordinary words or numbers of the message to be replaced wherever they stand.
    internal const int MinBareLength = 4;

    // "password=..." and the like inside a connection string, a URL query or a message that echoes one.
    [GeneratedRegex(@"(?<![A-Za-z0-9])(?!publickeytoken)(?<k>[A-Za-z_]*(?:password|passwd|pwd|secret|token|apikey|api_key|accesskey))(?<s>\s*=\s*)(?<v>""[^""]*""|'[^']*'|[^\s,;&""']+)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SecretAssignment();

    [GeneratedRegex(@"(?<![A-Za-z0-9])(?:password|pwd)\s*=(?<v>.*?)(?=,\s*\$?[A-Za-z][A-Za-z0-9_-]*\s*=|$)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Singleline)]
    private static partial Regex DelimitedPassword();

    /// <summary>
    /// Replaces with <c>***</c> the secret values of <paramref name="config"/> (the values of its secret keys, see
    /// <see cref="BackendConfig.IsSecretKey"/>, and the secret options inside any of its values), then every value
    /// assigned to a secret-looking name (<c>password=x</c>).
    /// </summary>
    /// <remarks>
    /// A value is replaced only where it stands as a token, not inside a longer word or number; one shorter than
    /// <see cref="MinBareLength"/> only where it is quoted (<c>'a'</c>) or assigned (<c>password=a</c>), so a one-letter
    /// password does not turn every such letter of the message into <c>***</c>.
    /// </remarks>
    public static string Scrub(string text, BackendConfig config)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(config);
        var scrubbed = text;
        foreach (var secret in Secrets(config))
        {
            scrubbed = secret.Length >= MinBareLength
                ? BackendConfig.MaskSecret(scrubbed, secret)
                : scrubbed.Replace($"'{secret}'", $"'{Mask}'", StringComparison.Ordinal).Replace($"\"{secret}\"", $"\"{Mask}\"", StringComparison.Ordinal);
        }

        return SecretAssignment().Replace(scrubbed, m => m.Groups["k"].Value + m.Groups["s"].Value + Mask);
    }

    /// <summary>The secret values of <paramref name="config"/>, longest first so that one containing another is masked whole.</summary>
    public static IReadOnlyList<string> Secrets(BackendConfig config)
    {
        var secrets = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in config.Keys)
        {
            var value = config[key];
            if (string.IsNullOrEmpty(value))
            {
                continue;
            }

            if (BackendConfig.IsSecretKey(key))
            {
                secrets.Add(value);
            }

            // A connection string's password may hold commas ("password=abc,def"): it runs to the next ",option=".
            foreach (Match m in DelimitedPassword().Matches(value))
            {
                secrets.Add(m.Groups["v"].Value);
            }

            foreach (Match m in SecretAssignment().Matches(value))
            {
                var v = m.Groups["v"].Value;
                secrets.Add(v);
                if (v.Length > 2 && (v[0] == '"' || v[0] == '\''))
                {
                    secrets.Add(v[1..^1]);
                }
            }
        }

        secrets.RemoveWhere(string.IsNullOrWhiteSpace);
        return [.. secrets.OrderByDescending(s => s.Length).ThenBy(s => s, StringComparer.Ordinal)];
    }
}
