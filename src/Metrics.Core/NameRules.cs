namespace Metrics;

/// <summary>Validation of metric and label names, with messages that say how to fix the name.</summary>
internal static class NameRules
{
    public static void ValidateMetricName(string name, string paramName)
    {
        ArgumentNullException.ThrowIfNull(name, paramName);
        if (name.Length == 0 || !IsMetricNameStart(name[0]) || !AllMatch(name, IsMetricNameChar))
        {
            throw new ArgumentException(
                $"Metric name '{name}' is invalid: it must match [a-zA-Z_:][a-zA-Z0-9_:]* (letters, digits, '_' and ':', not starting with a digit). Replace other characters with '_'.",
                paramName);
        }

        if (name.StartsWith("__", StringComparison.Ordinal))
        {
            throw new ArgumentException($"Metric name '{name}' is invalid: names starting with '__' are reserved for Prometheus' internal use.", paramName);
        }
    }

    public static void ValidateLabelName(string metricName, string label, string paramName)
    {
        ArgumentNullException.ThrowIfNull(label, paramName);
        if (label.Length == 0 || !IsLabelNameStart(label[0]) || !AllMatch(label, IsLabelNameChar))
        {
            throw new ArgumentException(
                $"Label name '{label}' of metric '{metricName}' is invalid: it must match [a-zA-Z_][a-zA-Z0-9_]* (letters, digits and '_', not starting with a digit).",
                paramName);
        }

        if (label.StartsWith("__", StringComparison.Ordinal))
        {
            throw new ArgumentException($"Label name '{label}' of metric '{metricName}' is invalid: label names starting with '__' are reserved for Prometheus' internal use.", paramName);
        }
    }

    /// <summary>A counter's name without its <c>_total</c> suffix: the OpenMetrics family name.</summary>
    public static string CounterBase(string name)
    {
        var counterBase = name.EndsWith("_total", StringComparison.Ordinal) ? name[..^6] : name;
        if (counterBase.Length == 0)
        {
            throw new ArgumentException($"Counter name '{name}' is only the '_total' suffix; give it a name such as 'requests_total'.", nameof(name));
        }

        return counterBase;
    }

    private static bool AllMatch(string s, Func<char, bool> predicate)
    {
        foreach (var c in s)
        {
            if (!predicate(c))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsMetricNameStart(char c) => char.IsAsciiLetter(c) || c == '_' || c == ':';

    private static bool IsMetricNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_' || c == ':';

    private static bool IsLabelNameStart(char c) => char.IsAsciiLetter(c) || c == '_';

    private static bool IsLabelNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';
}
