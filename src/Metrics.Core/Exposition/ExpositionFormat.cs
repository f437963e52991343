using System.Globalization;

namespace Metrics;

/// <summary>The formats a registry can be exposed in.</summary>
public enum ExpositionFormat
{
    /// <summary>Prometheus text format 0.0.4 (<c>text/plain; version=0.0.4</c>), understood by every Prometheus.</summary>
    PrometheusText,

    /// <summary>OpenMetrics 1.0.0 (<c>application/openmetrics-text; version=1.0.0</c>), with <c>_created</c> samples and <c># EOF</c>.</summary>
    OpenMetrics,

    /// <summary>
    /// The Prometheus protobuf format: length-delimited <c>io.prometheus.client.MetricFamily</c> messages, the only format
    /// that carries native histograms.
    /// </summary>
    Protobuf,
}

/// <summary>Content negotiation for a <c>/metrics</c> endpoint: the format from <c>Accept</c>, gzip from <c>Accept-Encoding</c>.</summary>
public static class Exposition
{
    /// <summary>The <c>Content-Type</c> of Prometheus text 0.0.4.</summary>
    public const string PrometheusTextContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>The <c>Content-Type</c> of OpenMetrics 1.0.0.</summary>
    public const string OpenMetricsContentType = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// <summary>The <c>Content-Type</c> of the protobuf format.</summary>
    public const string ProtobufContentType = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

    /// <summary>The <c>Content-Type</c> for <paramref name="format"/>.</summary>
    /// <param name="format">The format.</param>
    /// <returns>The header value.</returns>
    public static string ContentType(ExpositionFormat format) => format switch
    {
        ExpositionFormat.OpenMetrics => OpenMetricsContentType,
        ExpositionFormat.Protobuf => ProtobufContentType,
        _ => PrometheusTextContentType,
    };

    /// <summary>
    /// Picks the format an <c>Accept</c> header asks for: protobuf when it lists
    /// <c>application/vnd.google.protobuf</c> with <c>proto=io.prometheus.client.MetricFamily</c> and
    /// <c>encoding=delimited</c> at a quality no lower than either text format's; else OpenMetrics when it lists
    /// <c>application/openmetrics-text</c> (version 1.0.0, 0.0.1 or none) with a quality at least that of the text format;
    /// Prometheus text otherwise.
    /// </summary>
    /// <param name="accept">The header value; null or empty means Prometheus text.</param>
    /// <returns>The format to send.</returns>
    public static ExpositionFormat Negotiate(string? accept)
    {
        if (string.IsNullOrWhiteSpace(accept))
        {
            return ExpositionFormat.PrometheusText;
        }

        double openMetrics = -1, text = -1, protobuf = -1;
        foreach (var range in accept.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = range.Split(';', StringSplitOptions.TrimEntries);
            var mediaType = parts[0];
            var quality = 1.0;
            string? version = null, proto = null, encoding = null;
            foreach (var parameter in parts.AsSpan(1))
            {
                var eq = parameter.IndexOf('=', StringComparison.Ordinal);
                if (eq < 0)
                {
                    continue;
                }

                var key = parameter[..eq].Trim();
                var value = parameter[(eq + 1)..].Trim().Trim('"');
                if (key.Equals("q", StringComparison.OrdinalIgnoreCase) && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var q))
                {
                    quality = double.IsFinite(q) ? Math.Clamp(q, 0, 1) : 0;
                }
                else if (key.Equals("version", StringComparison.OrdinalIgnoreCase))
                {
                    version = value;
                }
                else if (key.Equals("proto", StringComparison.OrdinalIgnoreCase))
                {
                    proto = value;
                }
                else if (key.Equals("encoding", StringComparison.OrdinalIgnoreCase))
                {
                    encoding = value;
                }
            }

            if (mediaType.Equals("application/vnd.google.protobuf", StringComparison.OrdinalIgnoreCase))
            {
                // Only the delimited MetricFamily stream is written; other encodings (text, compact-text) are not offered.
                if (proto == "io.prometheus.client.MetricFamily" && encoding == "delimited")
                {
                    protobuf = Math.Max(protobuf, quality);
                }
            }
            else if (mediaType.Equals("application/openmetrics-text", StringComparison.OrdinalIgnoreCase))
            {
                // 0.0.1 is the pre-1.0 name of the same format; Prometheus still sends it.
                if (version is null || version.StartsWith("1.0", StringComparison.Ordinal) || version == "0.0.1")
                {
                    openMetrics = Math.Max(openMetrics, quality);
                }
            }
            else if (mediaType.Equals("text/plain", StringComparison.OrdinalIgnoreCase) || mediaType == "*/*" || mediaType.Equals("text/*", StringComparison.OrdinalIgnoreCase))
            {
                text = Math.Max(text, quality);
            }
        }

        if (protobuf > 0 && protobuf >= openMetrics && protobuf >= text)
        {
            return ExpositionFormat.Protobuf;
        }

        return openMetrics > 0 && openMetrics >= text ? ExpositionFormat.OpenMetrics : ExpositionFormat.PrometheusText;
    }

    private static double Quality(string[] parts)
    {
        foreach (var parameter in parts.AsSpan(1))
        {
            if (parameter.StartsWith("q=", StringComparison.OrdinalIgnoreCase)
                && double.TryParse(parameter.AsSpan(2), NumberStyles.Float, CultureInfo.InvariantCulture, out var q))
            {
                return double.IsFinite(q) ? Math.Clamp(q, 0, 1) : 0;
            }
        }

        return 1;
    }

    /// <summary>Whether an <c>Accept-Encoding</c> header accepts gzip (listed, or <c>*</c>, with a non-zero quality).</summary>
    /// <param name="acceptEncoding">The header value.</param>
    /// <returns>Whether to compress the response with gzip.</returns>
    public static bool AcceptsGzip(string? acceptEncoding)
    {
        if (string.IsNullOrWhiteSpace(acceptEncoding))
        {
            return false;
        }

        // An explicit gzip (or x-gzip) entry decides; '*' only covers codings the header does not name (RFC 9110 12.5.3).
        double? explicitQuality = null, wildcardQuality = null;
        foreach (var coding in acceptEncoding.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = coding.Split(';', StringSplitOptions.TrimEntries);
            var isGzip = parts[0].Equals("gzip", StringComparison.OrdinalIgnoreCase) || parts[0].Equals("x-gzip", StringComparison.OrdinalIgnoreCase);
            if (!isGzip && parts[0] != "*")
            {
                continue;
            }

            var quality = Quality(parts);
            if (isGzip)
            {
                explicitQuality = Math.Max(explicitQuality ?? 0, quality);
            }
            else
            {
                wildcardQuality = quality;
            }
        }

        return (explicitQuality ?? wildcardQuality ?? 0) > 0;
    }
}
