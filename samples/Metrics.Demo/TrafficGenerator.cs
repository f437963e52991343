namespace Metrics.Demo;

/// <summary>Sends real HTTP requests to the demo's own endpoints: a few routes, mostly reads, some misses and failures.</summary>
internal static class TrafficGenerator
{
    private static readonly (HttpMethod Method, string Path, int Weight)[] Routes =
        [(HttpMethod.Get, "/", 30), (HttpMethod.Get, "/api/items", 30), (HttpMethod.Post, "/api/items", 12), (HttpMethod.Get, "/api/items/{id}", 25), (HttpMethod.Delete, "/api/items/{id}", 3)];

    public static async Task RunAsync(Uri baseUrl, int requestsPerSecond, CancellationToken stopping)
    {
        using var client = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(10) };
        var concurrency = 4;
        var pause = TimeSpan.FromSeconds(concurrency / (double)Math.Max(1, requestsPerSecond));
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(() => LoopAsync(client, pause, stopping), CancellationToken.None)));
    }

    private static async Task LoopAsync(HttpClient client, TimeSpan pause, CancellationToken stopping)
    {
        var totalWeight = Routes.Sum(r => r.Weight);
        while (!stopping.IsCancellationRequested)
        {
            var pick = Random.Shared.Next(totalWeight);
            var (method, path, _) = Routes.First(r => (pick -= r.Weight) < 0);
            using var request = new HttpRequestMessage(method, path.Replace("{id}", Random.Shared.Next(1, 101).ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));
            try
            {
                using var response = await client.SendAsync(request, stopping);
                await Task.Delay(pause, stopping);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (HttpRequestException)
            {
                // The server is stopping; the next iteration sees the token.
            }
        }
    }
}
