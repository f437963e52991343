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

    /// <summary>
    /// Checks a unit against the name it belongs to: OpenMetrics wants the family name to end with <c>_&lt;unit&gt;</c>
    /// (a counter's before <c>_total</c>).
    /// </summary>
    /// <param name="name">The metric name as declared (without the registry prefix).</param>
    /// <param name="unit">The unit, or null for none.</param>
    /// <param name="type">The metric type, for the counter rule and the message.</param>
    public static void ValidateUnit(string name, string? unit, MetricType type)
    {
        if (unit is null)
        {
            return;
        }

        if (unit.Length == 0 || !AllMatch(unit, c => char.IsAsciiLetterOrDigit(c) || c == '_') || unit[0] == '_' || unit[^1] == '_')
        {
            throw new ArgumentException(
                $"Unit '{unit}' of metric '{name}' is invalid: use letters, digits and inner '_' only, such as 'seconds', 'bytes' or 'celsius', or null for no unit.",
                nameof(unit));
        }

        var familyName = type == MetricType.Counter ? CounterBase(name) : name;
        if (!familyName.EndsWith("_" + unit, StringComparison.Ordinal) || familyName.Length == unit.Length + 1)
        {
            var fix = type == MetricType.Counter ? $"'{familyName}_{unit}_total'" : $"'{familyName}_{unit}'";
            throw new ArgumentException(
                $"Metric '{name}' has unit '{unit}', but OpenMetrics requires the name to end with '_{unit}'" +
                (type == MetricType.Counter ? " before '_total'" : string.Empty) +
                $". Rename it, for example to {fix}, or leave the unit out.",
                nameof(unit));
        }
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
