using System.Text;

namespace Metrics.Extensions.Hosting;

/// <summary>
/// OpenTelemetry's Prometheus compatibility rules for turning a System.Diagnostics.Metrics instrument into a metric name
/// and its tags into label names: invalid characters become '_', the unit becomes a suffix, counters end in <c>_total</c>.
/// </summary>
public static class PrometheusNaming
{
    private static readonly Dictionary<string, string> Units = new(StringComparer.Ordinal)
    {
        ["d"] = "days", ["h"] = "hours", ["min"] = "minutes", ["s"] = "seconds", ["ms"] = "milliseconds",
        ["us"] = "microseconds", ["ns"] = "nanoseconds", ["By"] = "bytes", ["KiBy"] = "kibibytes", ["MiBy"] = "mebibytes",
        ["GiBy"] = "gibibytes", ["TiBy"] = "tibibytes", ["KBy"] = "kilobytes", ["MBy"] = "megabytes", ["GBy"] = "gigabytes",
        ["TBy"] = "terabytes", ["m"] = "meters", ["V"] = "volts", ["A"] = "amperes", ["J"] = "joules", ["W"] = "watts",
        ["g"] = "grams", ["Cel"] = "celsius", ["Hz"] = "hertz", ["%"] = "percent",
    };

    private static readonly Dictionary<string, string> PerUnits = new(StringComparer.Ordinal)
    {
        ["s"] = "second", ["m"] = "minute", ["h"] = "hour", ["d"] = "day", ["w"] = "week", ["mo"] = "month", ["y"] = "year",
    };

    /// <summary>
    /// The Prometheus metric name of an instrument: <c>http.server.request.duration</c> with unit <c>s</c> is
    /// <c>http_server_request_duration_seconds</c>; the counter <c>dotnet.gc.collections</c> (unit <c>{collection}</c>) is
    /// <c>dotnet_gc_collections_total</c>; a gauge in unit <c>1</c> ends in <c>_ratio</c>.
    /// </summary>
    /// <param name="instrumentName">The instrument's name.</param>
    /// <param name="unit">The instrument's UCUM unit, or null.</param>
    /// <param name="type">The metric type it is published as.</param>
    /// <returns>A valid metric name.</returns>
    public static string MetricName(string instrumentName, string? unit, MetricType type)
    {
        ArgumentNullException.ThrowIfNull(instrumentName);
        var name = Sanitize(instrumentName, metricName: true);
        var suffix = UnitSuffix(unit, type);
        if (suffix.Length > 0 && !name.EndsWith("_" + suffix, StringComparison.Ordinal) && name != suffix)
        {
            name = $"{name}_{suffix}";
        }

        if (type == MetricType.Counter && !name.EndsWith("_total", StringComparison.Ordinal))
        {
            name += "_total";
        }

        return name;
    }

    /// <summary>The label name of a tag: invalid characters become '_', a leading digit gets a <c>key_</c> prefix, a reserved <c>__</c> prefix becomes <c>_</c>.</summary>
    /// <param name="tagName">The tag's name, such as <c>http.request.method</c>.</param>
    /// <returns>A valid label name, such as <c>http_request_method</c>.</returns>
    public static string LabelName(string tagName)
    {
        ArgumentNullException.ThrowIfNull(tagName);
        return Sanitize(tagName, metricName: false);
    }

    /// <summary>The unit's name suffix: <c>s</c> gives <c>seconds</c>, <c>By/s</c> <c>bytes_per_second</c>, <c>{request}</c> nothing.</summary>
    /// <param name="unit">The UCUM unit, or null.</param>
    /// <param name="type">The metric type: <c>1</c> is <c>ratio</c> on gauges only.</param>
    /// <returns>The suffix without a leading '_', or empty.</returns>
    public static string UnitSuffix(string? unit, MetricType type)
    {
        if (string.IsNullOrWhiteSpace(unit))
        {
            return string.Empty;
        }

        unit = RemoveAnnotations(unit.Trim());
        if (unit == "1")
        {
            return type == MetricType.Gauge ? "ratio" : string.Empty;
        }

        var slash = unit.IndexOf('/', StringComparison.Ordinal);
        string main, per;
        if (slash < 0)
        {
            main = Map(unit, Units);
            per = string.Empty;
        }
        else
        {
            main = Map(unit[..slash], Units);
            per = Map(unit[(slash + 1)..], PerUnits);
        }

        var suffix = per.Length == 0 ? main : main.Length == 0 ? $"per_{per}" : $"{main}_per_{per}";
        return suffix.Length == 0 ? string.Empty : Sanitize(suffix, metricName: true).Trim('_');
    }

    private static string Map(string unit, Dictionary<string, string> table)
    {
        unit = unit.Trim();
        return unit.Length == 0 || unit == "1" ? string.Empty : table.TryGetValue(unit, out var mapped) ? mapped : unit;
    }

    private static string RemoveAnnotations(string unit)
    {
        // UCUM annotations ({request}, {collection}) describe what is counted, not a unit.
        var sb = new StringBuilder(unit.Length);
        var depth = 0;
        foreach (var c in unit)
        {
            if (c == '{')
            {
                depth++;
            }
            else if (c == '}' && depth > 0)
            {
                depth--;
            }
            else if (depth == 0)
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }

    private static string Sanitize(string name, bool metricName)
    {
        var sb = new StringBuilder(name.Length + 4);
        foreach (var c in name)
        {
            var valid = char.IsAsciiLetterOrDigit(c) || c == '_' || (metricName && c == ':');
            var next = valid ? c : '_';

            // Consecutive replaced characters collapse into one '_', as OpenTelemetry's translator does.
            if (next == '_' && sb.Length > 0 && sb[^1] == '_')
            {
                continue;
            }

            sb.Append(next);
        }

        if (sb.Length == 0)
        {
            return metricName ? "_" : "key_";
        }

        if (char.IsAsciiDigit(sb[0]))
        {
            sb.Insert(0, metricName ? "_" : "key_");
        }

        var result = sb.ToString();
        return result.StartsWith("__", StringComparison.Ordinal) ? result.TrimStart('_').Insert(0, "_") : result;
    }
}
