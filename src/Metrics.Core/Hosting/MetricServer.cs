using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Metrics.Hosting;

/// <summary>
/// A standalone HTTP/1.1 server exposing a registry on <c>http://127.0.0.1:port/metrics</c>, for applications without
/// ASP.NET Core. Loopback only unless another address is given; content negotiation and gzip as the ASP.NET Core endpoint.
/// </summary>
/// <example>
/// <code>
/// using var server = new MetricServer(port: 9464).Start();
/// </code>
/// </example>
/// <remarks>
/// Only <c>GET</c> and <c>HEAD</c> of the configured path are served (404 for other paths, 405 for other methods).
/// Connections are kept alive. Each response is rendered completely before it is sent with a <c>Content-Length</c>.
/// </remarks>
public sealed class MetricServer : IDisposable, IAsyncDisposable
{
    private const int MaxHeaderBytes = 16 * 1024;
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(30);
    private readonly IPAddress _address;
    private readonly int _requestedPort;
    private readonly IReadOnlyList<MetricRegistry>? _registries;
    private readonly Lock _lock = new();
    private readonly HashSet<Task> _connections = [];
    private Socket? _listener;
    private CancellationTokenSource? _stopping;
    private Task? _acceptLoop;

    /// <summary>Creates a server; call <see cref="Start"/> to listen.</summary>
    /// <param name="port">The TCP port; 0 picks a free one (read it from <see cref="Port"/> after <see cref="Start"/>).</param>
    /// <param name="host">The IP address to listen on; <c>127.0.0.1</c> by default. <c>localhost</c> means <c>127.0.0.1</c>.</param>
    /// <param name="path">The path served; <c>/metrics</c> by default.</param>
    /// <param name="registry">The registry exposed; <see cref="MetricRegistry.Default"/> when null.</param>
    /// <exception cref="ArgumentException">The host is not an IP address, the port is out of range, or the path does not start with '/'.</exception>
    public MetricServer(int port, string host = "127.0.0.1", string path = "/metrics", MetricRegistry? registry = null)
        : this(port, host, path, registry is null ? null : [registry])
    {
    }

    /// <summary>Creates a server exposing several registries in one response; call <see cref="Start"/> to listen.</summary>
    /// <param name="port">The TCP port; 0 picks a free one.</param>
    /// <param name="host">The IP address to listen on.</param>
    /// <param name="path">The path served.</param>
    /// <param name="registries">
    /// The registries, in the order their families appear; <see cref="MetricRegistry.Default"/> alone when null. A metric
    /// name in two of them fails the scrape with a 500 naming it.
    /// </param>
    /// <exception cref="ArgumentException">The host, port or path is invalid, or <paramref name="registries"/> is empty.</exception>
    public MetricServer(int port, string host, string path, IReadOnlyList<MetricRegistry>? registries)
    {
        if (registries is { Count: 0 })
        {
            throw new ArgumentException("Give at least one registry to serve, or null for the default registry.", nameof(registries));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(path);
        if (!path.StartsWith('/'))
        {
            throw new ArgumentException($"The metrics path '{path}' must start with '/'.", nameof(path));
        }

        _address = host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? IPAddress.Loopback
            : IPAddress.TryParse(host, out var address) ? address
            : throw new ArgumentException($"The host '{host}' is not an IP address; use 127.0.0.1 (loopback, the default) or the address of the interface to listen on.", nameof(host));
        _requestedPort = port;
        Path = path;
        _registries = registries is null ? null : [.. registries];
    }

    /// <summary>The path served.</summary>
    public string Path { get; }

    /// <summary>The port listened on: the requested one, or the one picked for port 0 once started.</summary>
    public int Port { get; private set; }

    /// <summary>The URL of the metrics endpoint; valid once started.</summary>
    public Uri Url => new($"http://{(_address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{_address}]" : _address.ToString())}:{Port}{Path}");

    private IReadOnlyList<MetricRegistry> Registries => _registries ?? [MetricRegistry.Default];

    /// <summary>Starts listening.</summary>
    /// <returns>This server.</returns>
    /// <exception cref="InvalidOperationException">Already started.</exception>
    /// <exception cref="SocketException">The port is in use or the address is not local.</exception>
    public MetricServer Start()
    {
        lock (_lock)
        {
            if (_listener is not null)
            {
                throw new InvalidOperationException("The metric server is already started.");
            }

            var listener = new Socket(_address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                listener.Bind(new IPEndPoint(_address, _requestedPort));
                listener.Listen(512);
            }
            catch
            {
                listener.Dispose();
                throw;
            }

            Port = ((IPEndPoint)listener.LocalEndPoint!).Port;
            _listener = listener;
            _stopping = new CancellationTokenSource();
            _acceptLoop = Task.Run(() => AcceptLoopAsync(listener, _stopping.Token));
            return this;
        }
    }

    /// <summary>Stops listening and closes open connections; waits for responses in progress.</summary>
    /// <returns>A task completing when stopped.</returns>
    public async Task StopAsync()
    {
        Task[] pending;
        lock (_lock)
        {
            if (_listener is null)
            {
                return;
            }

            _stopping!.Cancel();
            _listener.Dispose();
            _listener = null;
            pending = [_acceptLoop!, .. _connections];
        }

        await Task.WhenAll(pending).ConfigureAwait(false);
        _stopping.Dispose();
    }

    /// <summary>Stops the server (see <see cref="StopAsync"/>).</summary>
    public void Stop() => StopAsync().GetAwaiter().GetResult();

    /// <inheritdoc/>
    public void Dispose() => Stop();

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => new(StopAsync());

    private async Task AcceptLoopAsync(Socket listener, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException && stopping.IsCancellationRequested)
            {
                return;
            }

            client.NoDelay = true;
            var connection = ServeAsync(client, stopping);
            lock (_lock)
            {
                _connections.Add(connection);
            }

            _ = connection.ContinueWith(
                t =>
                {
                    lock (_lock)
                    {
                        _connections.Remove(t);
                    }
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(Socket client, CancellationToken stopping)
    {
        using var _ = client;
        await using var stream = new NetworkStream(client, ownsSocket: false);
        var buffer = new byte[MaxHeaderBytes];
        var filled = 0;
        try
        {
            while (true)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                idle.CancelAfter(IdleTimeout);
                int end;
                while ((end = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8)) < 0)
                {
                    if (filled == buffer.Length)
                    {
                        await WriteSimpleAsync(stream, 431, "Request Header Fields Too Large", "Request headers too large.\n", keepAlive: false, head: false, stopping).ConfigureAwait(false);
                        return;
                    }

                    var read = await stream.ReadAsync(buffer.AsMemory(filled), idle.Token).ConfigureAwait(false);
                    if (read == 0)
                    {
                        return;
                    }

                    filled += read;
                }

                var request = Request.Parse(Encoding.Latin1.GetString(buffer, 0, end));

                // A request body is not expected; a GET with a body would desynchronise the connection, so close it.
                var keepAlive = request.KeepAlive && request.ContentLength == 0;
                var consumed = end + 4;
                Buffer.BlockCopy(buffer, consumed, buffer, 0, filled - consumed);
                filled -= consumed;
                if (!await RespondAsync(stream, request, keepAlive, stopping).ConfigureAwait(false) || !keepAlive)
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The client went away, idled out, or the server is stopping: nothing to answer.
        }
    }

    private async Task<bool> RespondAsync(Stream stream, Request request, bool keepAlive, CancellationToken stopping)
    {
        if (request.Method is null)
        {
            await WriteSimpleAsync(stream, 400, "Bad Request", "Malformed request.\n", keepAlive: false, head: false, stopping).ConfigureAwait(false);
            return false;
        }

        var head = request.Method == "HEAD";
        var path = request.Target.Split('?', 2)[0];
        if (!string.Equals(path, Path, StringComparison.Ordinal))
        {
            await WriteSimpleAsync(stream, 404, "Not Found", $"Not found. Metrics are at {Path}\n", keepAlive, head, stopping).ConfigureAwait(false);
            return true;
        }

        if (request.Method is not ("GET" or "HEAD"))
        {
            await WriteSimpleAsync(stream, 405, "Method Not Allowed", "Use GET.\n", keepAlive, head: false, stopping, "Allow: GET, HEAD\r\n").ConfigureAwait(false);
            return true;
        }

        var response = await ScrapeResponse.RenderAsync(Registries, request.Accept, request.AcceptEncoding, stopping).ConfigureAwait(false);
        var headers = new StringBuilder(256)
            .Append("HTTP/1.1 ").Append(response.StatusCode).Append(response.StatusCode == 200 ? " OK" : " Internal Server Error").Append("\r\n")
            .Append("Content-Type: ").Append(response.ContentType).Append("\r\n")
            .Append("Content-Length: ").Append(response.Body.Length).Append("\r\n")
            .Append("Vary: ").Append(ScrapeResponse.Vary).Append("\r\n");
        if (response.ContentEncoding is not null)
        {
            headers.Append("Content-Encoding: ").Append(response.ContentEncoding).Append("\r\n");
        }

        headers.Append("Connection: ").Append(keepAlive ? "keep-alive" : "close").Append("\r\n\r\n");
        try
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(headers.ToString()), stopping).ConfigureAwait(false);
            if (!head)
            {
                await stream.WriteAsync(response.Body, stopping).ConfigureAwait(false);
            }
        }
        finally
        {
            response.Dispose();
        }

        return true;
    }

    private static async Task WriteSimpleAsync(Stream stream, int status, string reason, string body, bool keepAlive, bool head, CancellationToken stopping, string extraHeaders = "")
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var headers = $"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {bytes.Length}\r\n{extraHeaders}Connection: {(keepAlive ? "keep-alive" : "close")}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(headers), stopping).ConfigureAwait(false);
        if (!head)
        {
            await stream.WriteAsync(bytes, stopping).ConfigureAwait(false);
        }
    }

    private sealed record Request(string? Method, string Target, string? Accept, string? AcceptEncoding, bool KeepAlive, long ContentLength)
    {
        public static Request Parse(string head)
        {
            var lines = head.Split("\r\n");
            var requestLine = lines[0].Split(' ');
            if (requestLine.Length != 3 || !requestLine[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
            {
                return new Request(null, string.Empty, null, null, false, 0);
            }

            string? accept = null, acceptEncoding = null, connection = null;
            long contentLength = 0;
            foreach (var line in lines.AsSpan(1))
            {
                var colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon <= 0)
                {
                    continue;
                }

                var name = line[..colon].Trim();
                var value = line[(colon + 1)..].Trim();
                if (name.Equals("Accept", StringComparison.OrdinalIgnoreCase))
                {
                    accept = accept is null ? value : $"{accept}, {value}";
                }
                else if (name.Equals("Accept-Encoding", StringComparison.OrdinalIgnoreCase))
                {
                    acceptEncoding = acceptEncoding is null ? value : $"{acceptEncoding}, {value}";
                }
                else if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
                {
                    connection = value;
                }
                else if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    _ = long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out contentLength);
                }
                else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
                {
                    contentLength = -1;
                }
            }

            // HTTP/1.1 keeps connections alive unless told otherwise; HTTP/1.0 closes unless asked to keep alive.
            var keepAlive = requestLine[2] == "HTTP/1.1"
                ? !string.Equals(connection, "close", StringComparison.OrdinalIgnoreCase)
                : string.Equals(connection, "keep-alive", StringComparison.OrdinalIgnoreCase);
            return new Request(requestLine[0], requestLine[1], accept, acceptEncoding, keepAlive, contentLength);
        }
    }
}
