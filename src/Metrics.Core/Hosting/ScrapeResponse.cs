using System.IO.Compression;

namespace Metrics.Hosting;

/// <summary>
/// A rendered <c>/metrics</c> response: status, headers and the complete body, so a server can send it with a
/// <c>Content-Length</c> in one write. Both <see cref="MetricServer"/> and the ASP.NET Core endpoint use it.
/// </summary>
public sealed class ScrapeResponse
{
    /// <summary>The <c>Vary</c> header every metrics response carries: the body depends on both negotiated headers.</summary>
    public const string Vary = "Accept, Accept-Encoding";

    private ScrapeResponse(int statusCode, string contentType, string? contentEncoding, byte[] body, int length)
    {
        StatusCode = statusCode;
        ContentType = contentType;
        ContentEncoding = contentEncoding;
        Body = new ReadOnlyMemory<byte>(body, 0, length);
    }

    /// <summary>200, or 500 when a backend failed while the values were read.</summary>
    public int StatusCode { get; }

    /// <summary>The <c>Content-Type</c> header.</summary>
    public string ContentType { get; }

    /// <summary>The <c>Content-Encoding</c> header (<c>gzip</c>), or null when the body is not compressed.</summary>
    public string? ContentEncoding { get; }

    /// <summary>The complete body.</summary>
    public ReadOnlyMemory<byte> Body { get; }

    /// <summary>
    /// Renders <paramref name="registry"/> as the request asks: OpenMetrics or Prometheus text by <c>Accept</c>, gzip by
    /// <c>Accept-Encoding</c>. A failure to read the values gives a 500 with a one-line <c>text/plain</c> reason instead of
    /// partial text, so Prometheus marks the scrape failed rather than storing half of it.
    /// </summary>
    /// <param name="registry">The registry to expose.</param>
    /// <param name="accept">The request's <c>Accept</c> header.</param>
    /// <param name="acceptEncoding">The request's <c>Accept-Encoding</c> header.</param>
    /// <param name="cancellationToken">Cancels the rendering.</param>
    /// <returns>The response to send.</returns>
    public static async Task<ScrapeResponse> RenderAsync(MetricRegistry registry, string? accept, string? acceptEncoding, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(registry);
        var format = Exposition.Negotiate(accept);
        var gzip = Exposition.AcceptsGzip(acceptEncoding);
        var buffer = new MemoryStream(16 * 1024);
        try
        {
            if (gzip)
            {
                // Fastest: a scrape is latency-bound, and the text compresses well even at this level.
                await using var compressor = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true);
                await registry.WriteAsync(compressor, format, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await registry.WriteAsync(buffer, format, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Failed(e);
        }

        return new ScrapeResponse(200, Exposition.ContentType(format), gzip ? "gzip" : null, buffer.GetBuffer(), (int)buffer.Length);
    }

    private static ScrapeResponse Failed(Exception e)
    {
        var reason = $"Collecting metrics failed: {e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}\n";
        var body = System.Text.Encoding.UTF8.GetBytes(reason);
        return new ScrapeResponse(500, "text/plain; charset=utf-8", null, body, body.Length);
    }
}
