using System.IO.Compression;

namespace Metrics.Hosting;

/// <summary>
/// A rendered <c>/metrics</c> response: status, headers and the complete body, so a server can send it with a
/// <c>Content-Length</c> in one write. Both <see cref="MetricServer"/> and the ASP.NET Core endpoint use it.
/// </summary>
/// <remarks>An uncompressed body lives in a pooled buffer: dispose the response once it is sent to return it.</remarks>
public sealed class ScrapeResponse : IDisposable
{
    /// <summary>The <c>Vary</c> header every metrics response carries: the body depends on both negotiated headers.</summary>
    public const string Vary = "Accept, Accept-Encoding";

    private byte[]? _pooled;

    private ScrapeResponse(int statusCode, string contentType, string? contentEncoding, byte[] body, int length, bool pooled = false)
    {
        _pooled = pooled ? body : null;
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
    public static Task<ScrapeResponse> RenderAsync(MetricRegistry registry, string? accept, string? acceptEncoding, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return RenderAsync([registry], accept, acceptEncoding, cancellationToken);
    }

    /// <summary>
    /// Renders several registries in one response, as <see cref="RenderAsync(MetricRegistry, string?, string?, CancellationToken)"/>
    /// does one. A metric name in two of them gives a 500 whose reason names it and the two registries.
    /// </summary>
    /// <param name="registries">The registries, in the order their families appear; at least one.</param>
    /// <param name="accept">The request's <c>Accept</c> header.</param>
    /// <param name="acceptEncoding">The request's <c>Accept-Encoding</c> header.</param>
    /// <param name="cancellationToken">Cancels the rendering.</param>
    /// <returns>The response to send.</returns>
    public static async Task<ScrapeResponse> RenderAsync(IReadOnlyList<MetricRegistry> registries, string? accept, string? acceptEncoding, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(registries);
        if (registries.Count == 0 || registries.Any(r => r is null))
        {
            throw new ArgumentException("Give at least one registry, and no null entries.", nameof(registries));
        }

        var format = Exposition.Negotiate(accept);
        var gzip = Exposition.AcceptsGzip(acceptEncoding);
        ExpositionBuffer rendered;
        try
        {
            rendered = await MetricRegistry.RenderAsync(registries, format, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return Failed(e);
        }

        if (!gzip)
        {
            // Sent straight from the pooled buffer: a large scrape would otherwise grow a fresh array on the large object
            // heap on every request.
            var body = rendered.Detach(out var length);
            return new ScrapeResponse(200, Exposition.ContentType(format), null, body, length, pooled: true);
        }

        using (rendered)
        {
            var compressed = new MemoryStream(Math.Max(4096, rendered.Position / 4));
            // Fastest: a scrape is latency-bound, and the text compresses well even at this level.
            using (var compressor = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
            {
                compressor.Write(rendered.Written);
            }

            return new ScrapeResponse(200, Exposition.ContentType(format), "gzip", compressed.GetBuffer(), (int)compressed.Length);
        }
    }

    /// <summary>
    /// Returns a pooled body to its pool; <see cref="Body"/> must not be read afterwards. A response that is never
    /// disposed is simply collected.
    /// </summary>
    public void Dispose()
    {
        var pooled = Interlocked.Exchange(ref _pooled, null);
        if (pooled is not null)
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(pooled);
        }
    }

    private static ScrapeResponse Failed(Exception e)
    {
        var reason = $"Collecting metrics failed: {e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}\n";
        var body = System.Text.Encoding.UTF8.GetBytes(reason);
        return new ScrapeResponse(500, "text/plain; charset=utf-8", null, body, body.Length);
    }
}
