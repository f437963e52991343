namespace Metrics.Demo;

/// <summary>Simulates a web service's traffic: a few routes, mostly successes, a long latency tail.</summary>
internal static class TrafficGenerator
{
    private static readonly (string Method, string Route, int Weight)[] Routes =
        [("GET", "/", 50), ("GET", "/api/items", 30), ("POST", "/api/items", 12), ("GET", "/api/items/{id}", 25), ("DELETE", "/api/items/{id}", 3)];

    public static async Task RunAsync(DemoMetrics metrics, int requestsPerSecond, CancellationToken stopping)
    {
        var concurrency = 4;
        var delay = TimeSpan.FromSeconds(concurrency / (double)Math.Max(1, requestsPerSecond));
        var tasks = Enumerable.Range(0, concurrency).Select(_ => Task.Run(() => LoopAsync(metrics, delay, stopping))).ToArray();
        await Task.WhenAll(tasks);
    }

    private static async Task LoopAsync(DemoMetrics metrics, TimeSpan pause, CancellationToken stopping)
    {
        var totalWeight = Routes.Sum(r => r.Weight);
        while (!stopping.IsCancellationRequested)
        {
            var pick = Random.Shared.Next(totalWeight);
            var (method, route, _) = Routes.First(r => (pick -= r.Weight) < 0);

            // Log-normal-ish latency: most requests are quick, a few are slow.
            var seconds = Math.Min(2, 0.004 * Math.Exp(Random.Shared.NextDouble() * 4.5));
            var code = Random.Shared.NextDouble() switch { < 0.01 => 500, < 0.05 => 404, _ => method == "POST" ? 201 : 200 };
            using (metrics.InProgress.TrackInProgress())
            {
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(seconds / 10), stopping);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            metrics.Record(method, route, code, seconds, Random.Shared.Next(100, 20_000));
            try
            {
                await Task.Delay(pause, stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
