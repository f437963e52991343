using Metrics.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Metrics.AspNetCore;

/// <summary>Maps a Prometheus scrape endpoint in an ASP.NET Core application.</summary>
public static class MetricsEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Serves <paramref name="registry"/> on <c>GET</c>/<c>HEAD</c> <paramref name="pattern"/>: OpenMetrics when the
    /// <c>Accept</c> header asks for it, Prometheus text 0.0.4 otherwise, gzip when accepted, and a 500 with a short
    /// <c>text/plain</c> reason when a backend fails while the values are read.
    /// </summary>
    /// <param name="endpoints">The application or route builder.</param>
    /// <param name="pattern">The route; <c>/metrics</c> by default.</param>
    /// <param name="registry">The registry; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <returns>The endpoint builder, to add authorization, host filtering and the like.</returns>
    public static IEndpointConventionBuilder MapMetrics(this IEndpointRouteBuilder endpoints, string pattern = "/metrics", MetricRegistry? registry = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(pattern);
        return endpoints.MapMethods(pattern, ["GET", "HEAD"], (HttpContext context) => WriteAsync(context, registry is null ? [MetricRegistry.Default] : [registry]));
    }

    /// <summary>
    /// Serves several registries in one response on <c>GET</c>/<c>HEAD</c> <paramref name="pattern"/>, negotiated as
    /// <see cref="MapMetrics(IEndpointRouteBuilder, string, MetricRegistry?)"/>. A metric name in two of them fails the
    /// scrape with a 500 naming it and both registries.
    /// </summary>
    /// <param name="endpoints">The application or route builder.</param>
    /// <param name="pattern">The route.</param>
    /// <param name="registries">The registries, in the order their families appear; at least one.</param>
    /// <returns>The endpoint builder.</returns>
    public static IEndpointConventionBuilder MapMetrics(this IEndpointRouteBuilder endpoints, string pattern, IReadOnlyList<MetricRegistry> registries)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(registries);
        if (registries.Count == 0 || registries.Any(r => r is null))
        {
            throw new ArgumentException("Give at least one registry, and no null entries.", nameof(registries));
        }

        MetricRegistry[] served = [.. registries];
        return endpoints.MapMethods(pattern, ["GET", "HEAD"], (HttpContext context) => WriteAsync(context, served));
    }

    private static async Task WriteAsync(HttpContext context, IReadOnlyList<MetricRegistry> registries)
    {
        var request = context.Request;
        using var response = await ScrapeResponse.RenderAsync(registries, request.Headers.Accept.ToString(), request.Headers.AcceptEncoding.ToString(), context.RequestAborted).ConfigureAwait(false);
        var http = context.Response;
        http.StatusCode = response.StatusCode;
        http.ContentType = response.ContentType;
        http.ContentLength = response.Body.Length;
        http.Headers.Vary = ScrapeResponse.Vary;
        if (response.ContentEncoding is not null)
        {
            http.Headers.ContentEncoding = response.ContentEncoding;
        }

        if (!HttpMethods.IsHead(request.Method))
        {
            await http.Body.WriteAsync(response.Body, context.RequestAborted).ConfigureAwait(false);
        }
    }
}
