using System.Net;
using System.Net.Sockets;
using System.Text;
using StackExchange.Redis;

namespace Metrics.Backends.Redis;

/// <summary>
/// Turns a failure into one line that names the cause and what to check: authentication refused, connection refused,
/// host unreachable, timeout, cluster down, a read-only replica. The client library reports most of these as the same
/// "not connected" state, so when there is no connection the endpoints are probed directly (a TCP connect, then AUTH and
/// PING over a raw socket), which tells them apart within one round trip.
/// </summary>
internal static class RedisDiagnosis
{
    /// <summary>
    /// Probes every endpoint in parallel. Returns null when one of them answers PING (the connection problem is not
    /// reachability or credentials), else the cause found at the first endpoint, with what to check.
    /// </summary>
    public static async Task<string?> ProbeAsync(RedisSettings settings, CancellationToken cancellationToken)
    {
        var endpoints = settings.Options.EndPoints.ToArray();
        if (endpoints.Length == 0)
        {
            return null;
        }

        var probes = endpoints.Select(e => ProbeOneAsync(settings, e, cancellationToken)).ToArray();
        var causes = await Task.WhenAll(probes).ConfigureAwait(false);
        if (causes.Any(c => c is null))
        {
            return null;
        }

        return causes.Length == 1 ? causes[0] : $"{causes[0]} ({causes.Length - 1} more endpoint(s) failed too)";
    }

    /// <summary>The cause of a failed command or connection, one line, secrets masked in whatever text came from outside.</summary>
    public static string Describe(RedisSettings settings, Exception exception)
    {
        var ex = exception is AggregateException { InnerException: { } inner } ? inner : exception;
        var text = ex.Message;
        if (FromServerReply(settings, text, null) is { } cause)
        {
            return cause;
        }

        if (ex is RedisConnectionException { FailureType: ConnectionFailureType.AuthenticationFailure })
        {
            return AuthenticationRefused(settings, null, "the server refused the credentials");
        }

        if (ex is RedisConnectionException connectionFailure)
        {
            // The client's text is a long state dump; the failure type and the node are what an operator needs.
            var node = System.Text.RegularExpressions.Regex.Match(text, @" on (?<n>[^\s/]+)/");
            var on = node.Success ? $" to {node.Groups["n"].Value}" : string.Empty;
            return $"the connection{on} failed ({connectionFailure.FailureType}): the node stopped, restarted or is failing over; " +
                "the client reconnects and follows a new master on its own, and updates are re-sent";
        }

        if (ex is RedisTimeoutException or TimeoutException)
        {
            return $"no answer within OperationTimeout ({settings.OperationTimeout}): Redis is overloaded or blocked by a slow command, or the network is slow. " +
                "Check the server's latency (redis-cli --latency) or raise Metrics:BackendConfig:OperationTimeout";
        }

        if (ex is OperationCanceledException)
        {
            // The backend passes the client no token of its own here: a cancelled command is one the client gave up on.
            return "the client abandoned the command when its connection was closed or reset (a node stopped or failed over); it is sent again";
        }

        return $"{ex.GetType().Name}: {settings.Scrub(FirstLine(text))}";
    }

    /// <summary>The cause named by a Redis error reply (<c>WRONGPASS</c>, <c>NOAUTH</c>, <c>READONLY</c>, <c>CLUSTERDOWN</c> ...), or null for another text.</summary>
    private static string? FromServerReply(RedisSettings settings, string reply, string? endpoint)
    {
        var at = endpoint is null ? string.Empty : $" at {endpoint}";
        if (Has(reply, "WRONGPASS") || Has(reply, "invalid password") || Has(reply, "invalid username-password"))
        {
            return AuthenticationRefused(settings, endpoint, "WRONGPASS: the user name and password do not match the server's");
        }

        if (Has(reply, "NOAUTH"))
        {
            return settings.Options.Password is null
                ? $"authentication required (NOAUTH): Redis{at} has a password and none is configured. Set Metrics:BackendConfig:Password (and User for an ACL user)"
                : AuthenticationRefused(settings, endpoint, "NOAUTH: the server did not accept the credentials");
        }

        if (Has(reply, "without any password configured") || Has(reply, "no password is set"))
        {
            return $"authentication refused: a password is configured but Redis{at} has none (no requirepass, no ACL user). " +
                "Remove the password from the configuration, or set one on the server";
        }

        if (Has(reply, "READONLY"))
        {
            return $"Redis{at} answered READONLY: the endpoint is a read-only replica, which takes no writes. " +
                "Point Metrics:BackendConfig:ConnectionString at the master, or list every node so the client finds the master";
        }

        if (Has(reply, "CLUSTERDOWN"))
        {
            return $"Redis Cluster{at} is down (CLUSTERDOWN): some hash slots have no reachable master. " +
                "Check 'redis-cli --cluster check <node>' and that a replica took over the failed master; writes resume once the cluster is up";
        }

        if (Has(reply, "MASTERDOWN"))
        {
            return $"Redis{at} is a replica that lost its master (MASTERDOWN). Check the master, or point ConnectionString at the current master";
        }

        if (Has(reply, "LOADING"))
        {
            return $"Redis{at} is loading its data set into memory (LOADING) and answers once it is loaded";
        }

        if (Has(reply, "DENIED"))
        {
            return $"Redis{at} refused the connection: {settings.Scrub(FirstLine(reply.TrimStart('-')))}";
        }

        return null;
    }

    private static string AuthenticationRefused(RedisSettings settings, string? endpoint, string detail)
    {
        var user = settings.Options.User is null ? string.Empty : " and Metrics:BackendConfig:User";
        var at = endpoint is null ? string.Empty : $" at {endpoint}";
        return $"authentication refused by Redis{at} ({detail}). Check Metrics:BackendConfig:Password (or password= in ConnectionString){user}";
    }

    private static async Task<string?> ProbeOneAsync(RedisSettings settings, EndPoint endpoint, CancellationToken cancellationToken)
    {
        var shown = Format(endpoint);
        var timeoutMs = settings.Options.ConnectTimeout;
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(timeoutMs);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, bounded.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return $"no answer from {shown} within ConnectTimeout ({timeoutMs} ms): the host is down or unreachable, or a firewall drops the connection. " +
                "Check the address in Metrics:BackendConfig:ConnectionString and the firewall, or raise ConnectTimeout for a slow network";
        }
        catch (SocketException ex)
        {
            return ex.SocketErrorCode switch
            {
                SocketError.ConnectionRefused =>
                    $"connection refused by {shown}: nothing listens on that port. Check that redis-server runs there and that host and port in Metrics:BackendConfig:ConnectionString are right",
                SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.HostDown or SocketError.NetworkDown =>
                    $"host unreachable: no route to {shown} ({ex.SocketErrorCode}). Check the address in Metrics:BackendConfig:ConnectionString and the network between this host and Redis",
                SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData =>
                    $"the host name of {shown} cannot be resolved ({ex.SocketErrorCode}). Check the host name in Metrics:BackendConfig:ConnectionString and DNS",
                SocketError.TimedOut =>
                    $"no answer from {shown} within ConnectTimeout ({timeoutMs} ms): the host is down or unreachable, or a firewall drops the connection. " +
                    "Check the address in Metrics:BackendConfig:ConnectionString and the firewall",
                _ => $"cannot connect to {shown} ({ex.SocketErrorCode}). Check the address in Metrics:BackendConfig:ConnectionString and the network",
            };
        }

        if (settings.Options.Ssl)
        {
            // A TLS handshake here would duplicate the client's; reachability is what the raw probe can tell.
            return null;
        }

        try
        {
            using var stream = new NetworkStream(socket, ownsSocket: false);
            var request = new StringBuilder();
            if (settings.Options.Password is { } password)
            {
                request.Append(settings.Options.User is { } user ? Command("AUTH", user, password) : Command("AUTH", password));
            }

            request.Append(Command("PING"));
            await stream.WriteAsync(Encoding.UTF8.GetBytes(request.ToString()), bounded.Token).ConfigureAwait(false);
            var reader = new LineReader(stream);
            if (settings.Options.Password is not null)
            {
                var auth = await reader.ReadLineAsync(bounded.Token).ConfigureAwait(false);
                if (auth is null)
                {
                    return ClosedWithoutAnswer(shown);
                }

                if (auth.StartsWith('-'))
                {
                    return FromServerReply(settings, auth, shown) ?? $"Redis at {shown} refused AUTH: {settings.Scrub(FirstLine(auth[1..]))}";
                }
            }

            var ping = await reader.ReadLineAsync(bounded.Token).ConfigureAwait(false);
            if (ping is null)
            {
                return ClosedWithoutAnswer(shown);
            }

            return ping.StartsWith('-') ? FromServerReply(settings, ping, shown) ?? $"Redis at {shown} answered PING with an error: {settings.Scrub(FirstLine(ping[1..]))}" : null;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return $"{shown} accepted the connection but did not answer within ConnectTimeout ({timeoutMs} ms): the port may not be a Redis server " +
                "(or it expects TLS: ssl=true), or Redis is overloaded";
        }
        catch (IOException)
        {
            return ClosedWithoutAnswer(shown);
        }
    }

    private static string ClosedWithoutAnswer(string shown) =>
        $"{shown} closed the connection without answering: check that the port is a Redis server (with TLS, set ssl=true), and the server's maxclients, bind and protected-mode settings";

    private static string Command(params string[] parts)
    {
        var text = new StringBuilder().Append('*').Append(parts.Length).Append("\r\n");
        foreach (var part in parts)
        {
            text.Append('$').Append(Encoding.UTF8.GetByteCount(part)).Append("\r\n").Append(part).Append("\r\n");
        }

        return text.ToString();
    }

    private static string Format(EndPoint endpoint) => endpoint switch
    {
        DnsEndPoint dns => $"{dns.Host}:{dns.Port}",
        IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } ip => $"[{ip.Address}]:{ip.Port}",
        IPEndPoint ip => $"{ip.Address}:{ip.Port}",
        _ => endpoint.ToString() ?? "?",
    };

    private static bool Has(string text, string word) => text.Contains(word, StringComparison.OrdinalIgnoreCase);

    private static string FirstLine(string text)
    {
        var end = text.IndexOfAny(['\r', '\n']);
        return (end < 0 ? text : text[..end]).TrimEnd('.', ' ');
    }

    /// <summary>Reads CRLF-terminated reply lines; a probe only needs the first line of each reply.</summary>
    private sealed class LineReader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[1024];
        private int _start;
        private int _end;

        public async Task<string?> ReadLineAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                var newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
                if (newline >= 0)
                {
                    var line = Encoding.UTF8.GetString(_buffer, _start, newline - _start).TrimEnd('\r');
                    _start = newline + 1;
                    return line;
                }

                if (_end == _buffer.Length)
                {
                    if (_start == 0)
                    {
                        return Encoding.UTF8.GetString(_buffer);
                    }

                    Array.Copy(_buffer, _start, _buffer, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                }

                var read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return null;
                }

                _end += read;
            }
        }
    }
}
