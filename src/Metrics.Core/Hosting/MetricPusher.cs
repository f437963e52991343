using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Metrics.Hosting;

/// <summary>How a push replaces what the Prometheus pushgateway holds for the pusher's grouping key.</summary>
public enum PushMethod
{
    /// <summary><c>PUT</c>: every metric of the group is replaced by the pushed ones (metrics not pushed disappear).</summary>
    Put,

    /// <summary><c>POST</c>: only metrics with the pushed names are replaced; others of the group stay.</summary>
    Post,
}

/// <summary>Settings of a <see cref="MetricPusher"/>.</summary>
public sealed class MetricPusherOptions
{
    /// <summary>The pushgateway's base address, for example <c>http://127.0.0.1:9091</c>. Required.</summary>
    public Uri? Endpoint { get; set; }

    /// <summary>The <c>job</c> label of the group; required.</summary>
    public string? Job { get; set; }

    /// <summary>Further labels of the grouping key (for example <c>instance</c>), in the order given.</summary>
    public IDictionary<string, string> GroupingLabels { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The registry pushed; <see cref="MetricRegistry.Default"/> when null.</summary>
    public MetricRegistry? Registry { get; set; }

    /// <summary>How often <see cref="MetricPusher.Start"/> pushes; 15 seconds by default.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary><see cref="PushMethod.Put"/> (the default) or <see cref="PushMethod.Post"/>.</summary>
    public PushMethod Method { get; set; } = PushMethod.Put;

    /// <summary>User name for HTTP basic authentication; none when null.</summary>
    public string? Username { get; set; }

    /// <summary>Password for HTTP basic authentication. Never shown in messages.</summary>
    public string? Password { get; set; }

    /// <summary>Extra request headers (an API key, a tenant id).</summary>
    public IDictionary<string, string> Headers { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);

    /// <summary>Attempts per push after the first one fails; 3 by default.</summary>
    public int Retries { get; set; } = 3;

    /// <summary>The wait before the first retry, doubled before each further one; 1 second by default.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long one HTTP request may take; 10 seconds by default.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The handler the pusher's <see cref="HttpClient"/> sends through (proxies, certificates, tests); a new one when null.</summary>
    public HttpMessageHandler? Handler { get; set; }
}

/// <summary>
/// Pushes a registry to a Prometheus pushgateway, for batch jobs and other processes that live too briefly to be scraped:
/// on an interval once started, once more when disposed, and whenever <see cref="PushAsync"/> is called.
/// </summary>
/// <remarks>
/// <para>
/// The body is the Prometheus text format. The grouping key is the job plus <see cref="MetricPusherOptions.GroupingLabels"/>;
/// values that are empty or contain <c>/</c> are sent base64url-encoded as the pushgateway requires.
/// </para>
/// <para>
/// A network fault never reaches the caller: a push is retried with a doubling delay, and one that still fails is counted
/// in <see cref="FailedPushes"/> and reported through <see cref="BackendLog"/> (the host's <c>ILogger</c> or the
/// <c>Metrics</c> EventSource) under the name <c>Pushgateway</c>. Wrong settings throw at construction.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// await using var pusher = new MetricPusher(new MetricPusherOptions { Endpoint = new Uri("http://127.0.0.1:9091"), Job = "nightly_import" });
/// // ... the job's work ...
/// // disposing pushes the final values
/// </code>
/// </example>
public sealed class MetricPusher : IAsyncDisposable, IDisposable
{
    private const string LogName = "Pushgateway";
    private readonly MetricPusherOptions _options;
    private readonly HttpClient _http;
    private readonly Uri _groupUrl;
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private Task? _loop;
    private long _pushes;
    private long _failed;
    private int _disposed;

    /// <summary>Creates a pusher; call <see cref="Start"/> to push on the interval.</summary>
    /// <param name="options">The settings.</param>
    /// <exception cref="ArgumentException">A setting is missing or invalid; the message names it.</exception>
    public MetricPusher(MetricPusherOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Endpoint is not { IsAbsoluteUri: true } endpoint || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"MetricPusherOptions.Endpoint must be an absolute http or https address such as http://127.0.0.1:9091; it is '{options.Endpoint}'.", nameof(options));
        }

        if (string.IsNullOrEmpty(options.Job))
        {
            throw new ArgumentException("MetricPusherOptions.Job is required: it becomes the 'job' label of everything pushed, for example \"nightly_import\".", nameof(options));
        }

        foreach (var (name, value) in options.GroupingLabels)
        {
            NameRules.ValidateLabelName("the pushgateway grouping key", name, nameof(options));
            if (name == "job")
            {
                throw new ArgumentException("The grouping label 'job' is set through MetricPusherOptions.Job, not GroupingLabels.", nameof(options));
            }

            ArgumentNullException.ThrowIfNull(value, $"GroupingLabels[{name}]");
        }

        if (options.Interval <= TimeSpan.Zero)
        {
            throw new ArgumentException($"MetricPusherOptions.Interval must be positive; it is {options.Interval}.", nameof(options));
        }

        if (options.Retries < 0 || options.RetryDelay < TimeSpan.Zero || options.Timeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("MetricPusherOptions.Retries and RetryDelay must not be negative, and Timeout must be positive.", nameof(options));
        }

        _options = options;
        _groupUrl = BuildGroupUrl(endpoint, options.Job, options.GroupingLabels);
        _http = options.Handler is null ? new HttpClient() : new HttpClient(options.Handler, disposeHandler: false);
        _http.Timeout = options.Timeout;
        if (options.Username is not null)
        {
            var credentials = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{options.Username}:{options.Password}"));
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", credentials);
        }

        foreach (var (name, value) in options.Headers)
        {
            _http.DefaultRequestHeaders.TryAddWithoutValidation(name, value);
        }
    }

    /// <summary>The URL of this pusher's group on the pushgateway (<c>.../metrics/job/&lt;job&gt;/&lt;label&gt;/&lt;value&gt;</c>).</summary>
    public Uri GroupUrl => _groupUrl;

    /// <summary>Pushes that were stored by the pushgateway.</summary>
    public long SuccessfulPushes => Interlocked.Read(ref _pushes);

    /// <summary>Pushes that failed after every retry; each is reported through <see cref="BackendLog"/>.</summary>
    public long FailedPushes => Interlocked.Read(ref _failed);

    /// <summary>Starts pushing every <see cref="MetricPusherOptions.Interval"/>, the first push right away.</summary>
    /// <returns>This pusher.</returns>
    /// <exception cref="InvalidOperationException">Already started.</exception>
    public MetricPusher Start()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (Interlocked.CompareExchange(ref _loop, Task.CompletedTask, null) is not null)
        {
            throw new InvalidOperationException("The metric pusher is already started.");
        }

        _loop = Task.Run(() => LoopAsync(_stopping.Token));
        return this;
    }

    /// <summary>Pushes the registry now, retrying as configured.</summary>
    /// <param name="cancellationToken">Stops waiting (and retrying).</param>
    /// <returns>Whether the pushgateway stored the push; a failure is counted and logged, never thrown.</returns>
    public Task<bool> PushAsync(CancellationToken cancellationToken = default) =>
        SendAsync(_options.Method == PushMethod.Put ? HttpMethod.Put : HttpMethod.Post, withBody: true, cancellationToken);

    /// <summary>Deletes this pusher's group from the pushgateway (for a job that is gone for good).</summary>
    /// <param name="cancellationToken">Stops waiting (and retrying).</param>
    /// <returns>Whether the pushgateway deleted it; a failure is counted and logged, never thrown.</returns>
    public Task<bool> DeleteAsync(CancellationToken cancellationToken = default) => SendAsync(HttpMethod.Delete, withBody: false, cancellationToken);

    /// <summary>Stops the interval and pushes the final values once.</summary>
    /// <returns>A task completing when the last push is done or has failed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is { } loop)
        {
            await loop.ConfigureAwait(false);
        }

        await PushAsync(CancellationToken.None).ConfigureAwait(false);
        _http.Dispose();
        _stopping.Dispose();
    }

    /// <summary>Stops the interval and pushes the final values once, blocking (see <see cref="DisposeAsync"/>).</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private static Uri BuildGroupUrl(Uri endpoint, string job, IDictionary<string, string> labels)
    {
        var path = new StringBuilder(endpoint.AbsolutePath.TrimEnd('/')).Append("/metrics");
        Append("job", job);
        foreach (var (name, value) in labels)
        {
            Append(name, value);
        }

        return new UriBuilder(endpoint) { Path = path.ToString() }.Uri;

        void Append(string name, string value)
        {
            // The pushgateway's rule: a value that is empty or holds '/' travels base64url-encoded, marked by '@base64'.
            if (value.Length == 0 || value.Contains('/', StringComparison.Ordinal))
            {
                var encoded = Convert.ToBase64String(Encoding.UTF8.GetBytes(value)).Replace('+', '-').Replace('/', '_');
                path.Append('/').Append(name).Append("@base64/").Append(encoded.Length == 0 ? "=" : encoded);
            }
            else
            {
                path.Append('/').Append(name).Append('/').Append(Uri.EscapeDataString(value));
            }
        }
    }

    private async Task LoopAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(_options.Interval);
        try
        {
            do
            {
                await PushAsync(stopping).ConfigureAwait(false);
            }
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Disposed: the final push follows in DisposeAsync.
        }
    }

    private async Task<bool> SendAsync(HttpMethod method, bool withBody, CancellationToken cancellationToken)
    {
        await _oneAtATime.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            string? error = null;
            var delay = _options.RetryDelay;
            for (var attempt = 0; attempt <= _options.Retries; attempt++)
            {
                if (attempt > 0)
                {
                    await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                    delay *= 2;
                }

                try
                {
                    using var request = new HttpRequestMessage(method, _groupUrl);
                    if (withBody)
                    {
                        using var body = await (_options.Registry ?? MetricRegistry.Default).RenderAsync(ExpositionFormat.PrometheusText, cancellationToken).ConfigureAwait(false);
                        request.Content = new ByteArrayContent(body.Written.ToArray());
                        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(Exposition.ContentType(ExpositionFormat.PrometheusText));
                    }

                    using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
                    if (response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref _pushes);
                        return true;
                    }

                    var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                    error = $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}: {text.Trim()}";

                    // A 4xx other than 408/429 is a refusal of this push (bad name, conflicting labels): retrying gives the same answer.
                    if ((int)response.StatusCode is >= 400 and < 500 && response.StatusCode is not (HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests))
                    {
                        break;
                    }
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested)
                {
                    // A network fault, a timeout, or a shared backend that could not be read: reported below, never thrown.
                    error = $"{e.GetType().Name}: {e.Message}";
                }
            }

            Interlocked.Increment(ref _failed);
            BackendLog.Write(LogName, BackendLogLevel.Warning, $"{method} {_groupUrl} failed after {_options.Retries + 1} attempt(s): {error} The values stay in the registry and are pushed again next time.");
            return false;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return false;
        }
        finally
        {
            _oneAtATime.Release();
        }
    }
}
