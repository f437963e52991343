using System.Net.Http.Headers;
using Metrics.Tests;

namespace Metrics.Hosting.Tests;

/// <summary><see cref="MetricPusher"/> against a real Prometheus pushgateway on a loopback port.</summary>
public class PusherTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_push_is_scraped_from_the_gateway_with_its_grouping_key()
    {
        using var gateway = Pushgateway.Start();
        var registry = new MetricRegistry();
        new Counter("batch_rows_total", "Rows imported.", ["status"], registry: registry).Labels("ok").Inc(3);
        new Gauge("batch_last_success_seconds", "When the job last succeeded.", registry: registry).Set(1_700_000_000);
        new Histogram("batch_duration_seconds", "Job duration.", registry: registry, buckets: [1, 10]).Observe(4);
        await using var pusher = new MetricPusher(new MetricPusherOptions { Endpoint = gateway.Url, Job = "import", Registry = registry, GroupingLabels = { ["shard"] = "eu/west" } });

        Assert.True(await pusher.PushAsync(Token));

        // The gateway adds an empty instance label to a group that has none, and sorts labels by name (le last).
        var scraped = await gateway.ScrapeAsync();
        Assert.Contains("batch_rows_total{instance=\"\",job=\"import\",shard=\"eu/west\",status=\"ok\"} 3\n", scraped, StringComparison.Ordinal);
        Assert.Contains("batch_last_success_seconds{instance=\"\",job=\"import\",shard=\"eu/west\"} 1.7e+09\n", scraped, StringComparison.Ordinal);
        Assert.Contains("batch_duration_seconds_bucket{instance=\"\",job=\"import\",shard=\"eu/west\",le=\"10\"} 1\n", scraped, StringComparison.Ordinal);
        Assert.Equal((1, 0), (pusher.SuccessfulPushes, pusher.FailedPushes));
        Assert.EndsWith("/metrics/job/import/shard@base64/ZXUvd2VzdA==", pusher.GroupUrl.AbsolutePath, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Put_replaces_the_group_post_merges_into_it_and_delete_removes_it()
    {
        using var gateway = Pushgateway.Start();
        var first = new MetricRegistry();
        new Counter("kept_total", "Pushed first.", registry: first).Inc(1);
        new Counter("dropped_total", "Pushed first only.", registry: first).Inc(1);
        var second = new MetricRegistry();
        new Counter("kept_total", "Pushed again.", registry: second).Inc(2);
        var third = new MetricRegistry();
        new Counter("added_total", "Posted.", registry: third).Inc(5);
        var options = (MetricRegistry r, PushMethod m) => new MetricPusherOptions { Endpoint = gateway.Url, Job = "methods", Registry = r, Method = m };

        await using (var pusher = new MetricPusher(options(first, PushMethod.Put)))
        {
            Assert.True(await pusher.PushAsync(Token));
        }

        await using (var pusher = new MetricPusher(options(second, PushMethod.Put)))
        {
            Assert.True(await pusher.PushAsync(Token));
        }

        var afterPut = await gateway.ScrapeAsync();
        Assert.Contains("kept_total{instance=\"\",job=\"methods\"} 2\n", afterPut, StringComparison.Ordinal);
        Assert.DoesNotContain("dropped_total", afterPut, StringComparison.Ordinal);

        await using (var pusher = new MetricPusher(options(third, PushMethod.Post)))
        {
            Assert.True(await pusher.PushAsync(Token));
            var afterPost = await gateway.ScrapeAsync();
            Assert.Contains("kept_total{instance=\"\",job=\"methods\"} 2\n", afterPost, StringComparison.Ordinal);
            Assert.Contains("added_total{instance=\"\",job=\"methods\"} 5\n", afterPost, StringComparison.Ordinal);

            Assert.True(await pusher.DeleteAsync(Token));
            Assert.DoesNotContain("job=\"methods\"", await gateway.ScrapeAsync(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_interval_pushes_on_its_own_and_dispose_pushes_the_final_values()
    {
        using var gateway = Pushgateway.Start();
        var registry = new MetricRegistry();
        var counter = new Counter("ticks_total", "Ticks.", registry: registry);
        using var recorder = new RecordingHandler();
        var pusher = new MetricPusher(new MetricPusherOptions { Endpoint = gateway.Url, Job = "interval", Registry = registry, Interval = TimeSpan.FromMilliseconds(50), Handler = recorder }).Start();
        for (var i = 0; i < 3; i++)
        {
            Assert.True(await recorder.Answered.WaitAsync(TimeSpan.FromSeconds(30), Token), $"push {i + 1} on the interval was not answered");
        }

        Assert.True(pusher.SuccessfulPushes >= 3, $"{pusher.SuccessfulPushes} pushes succeeded");

        counter.Inc(7);
        await pusher.DisposeAsync();

        Assert.Contains("ticks_total{instance=\"\",job=\"interval\"} 7\n", await gateway.ScrapeAsync(), StringComparison.Ordinal);
        Assert.Equal(0, pusher.FailedPushes);
    }

    [Fact]
    public async Task A_gateway_that_is_down_is_counted_and_logged_never_thrown_and_the_next_push_reaches_it_once_up()
    {
        var port = RedisServer.FreeLoopbackPort();
        var registry = new MetricRegistry();
        new Counter("late_total", "Pushed late.", registry: registry).Inc(9);
        var logged = new List<string>();
        var previous = BackendLog.Handler;
        BackendLog.Handler = (name, _, message, _) =>
        {
            lock (logged)
            {
                logged.Add($"{name}: {message}");
            }
        };
        try
        {
            await using var pusher = new MetricPusher(new MetricPusherOptions
            {
                Endpoint = new Uri($"http://127.0.0.1:{port}"),
                Job = "late",
                Registry = registry,
                Retries = 1,
                RetryDelay = TimeSpan.FromMilliseconds(10),
                Password = "s3cret-pass",
                Username = "pusher",
            });

            Assert.False(await pusher.PushAsync(Token));
            Assert.Equal(1, pusher.FailedPushes);
            string line;
            lock (logged)
            {
                line = Assert.Single(logged, l => l.StartsWith("Pushgateway: PUT http://127.0.0.1:", StringComparison.Ordinal));
            }

            Assert.Contains("failed after 2 attempt(s)", line, StringComparison.Ordinal);
            Assert.DoesNotContain("s3cret-pass", line, StringComparison.Ordinal);

            using var gateway = Pushgateway.Start(port);
            Assert.True(await pusher.PushAsync(Token));
            Assert.Contains("late_total{instance=\"\",job=\"late\"} 9\n", await gateway.ScrapeAsync(), StringComparison.Ordinal);
        }
        finally
        {
            BackendLog.Handler = previous;
        }
    }

    [Fact]
    public async Task Basic_authentication_and_extra_headers_are_sent_with_every_push()
    {
        using var gateway = Pushgateway.Start();
        using var recorder = new RecordingHandler();
        await using var pusher = new MetricPusher(new MetricPusherOptions
        {
            Endpoint = gateway.Url,
            Job = "auth",
            Registry = new MetricRegistry(),
            Username = "pusher",
            Password = "p:ss wörd",
            Headers = { ["X-Scope-OrgID"] = "tenant-1" },
            Handler = recorder,
        });

        Assert.True(await pusher.PushAsync(Token));

        var request = Assert.Single(recorder.Requests);
        Assert.Equal(new AuthenticationHeaderValue("Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("pusher:p:ss wörd"))), request.Headers.Authorization);
        Assert.Equal(["tenant-1"], request.Headers.GetValues("X-Scope-OrgID"));
        Assert.Equal(HttpMethod.Put, request.Method);
    }

    [Theory]
    [InlineData(null, "import", "Endpoint must be an absolute http or https address")]
    [InlineData("ftp://127.0.0.1:9091", "import", "Endpoint must be an absolute http or https address")]
    [InlineData("http://127.0.0.1:9091", "", "MetricPusherOptions.Job is required")]
    public void Wrong_settings_are_refused_with_the_setting_named(string? endpoint, string job, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => new MetricPusher(new MetricPusherOptions { Endpoint = endpoint is null ? null : new Uri(endpoint), Job = job }));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Grouping_labels_must_be_label_names_and_not_job()
    {
        var bad = Assert.Throws<ArgumentException>(() => new MetricPusher(new MetricPusherOptions { Endpoint = new Uri("http://127.0.0.1:9091"), Job = "x", GroupingLabels = { ["bad-name"] = "v" } }));
        Assert.Contains("bad-name", bad.Message, StringComparison.Ordinal);
        var job = Assert.Throws<ArgumentException>(() => new MetricPusher(new MetricPusherOptions { Endpoint = new Uri("http://127.0.0.1:9091"), Job = "x", GroupingLabels = { ["job"] = "v" } }));
        Assert.Contains("set through MetricPusherOptions.Job", job.Message, StringComparison.Ordinal);
    }

    /// <summary>Forwards requests to the network, keeps what was sent and signals each answer.</summary>
    private sealed class RecordingHandler() : DelegatingHandler(new HttpClientHandler())
    {
        public List<HttpRequestMessage> Requests { get; } = [];

        public SemaphoreSlim Answered { get; } = new(0);

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            lock (Requests)
            {
                Requests.Add(request);
            }

            var response = await base.SendAsync(request, cancellationToken);
            Answered.Release();
            return response;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                Answered.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    /// <summary>A real <c>prometheus-pushgateway</c> on a loopback port, without persistence, stopped on dispose.</summary>
    private sealed class Pushgateway : IDisposable
    {
        private readonly ChildProcess _process;

        private Pushgateway(ChildProcess process, int port)
        {
            _process = process;
            Url = new Uri($"http://127.0.0.1:{port}");
        }

        public Uri Url { get; }

        public static Pushgateway Start(int? port = null)
        {
            var chosen = port ?? RedisServer.FreeLoopbackPort();

            // Its log goes to stderr; merged into stdout so the readiness line can be waited for.
            var process = ChildProcess.Start("/bin/sh", ["-c", $"exec prometheus-pushgateway --web.listen-address=127.0.0.1:{chosen} 2>&1"]);
            try
            {
                process.WaitForLine(l => l.Contains("Listening on", StringComparison.Ordinal), "the pushgateway's 'Listening on' line", TimeSpan.FromSeconds(30));
            }
            catch
            {
                process.Dispose();
                throw;
            }

            return new Pushgateway(process, chosen);
        }

        public async Task<string> ScrapeAsync()
        {
            using var http = new HttpClient();
            return await http.GetStringAsync(new Uri(Url, "/metrics"), TestContext.Current.CancellationToken);
        }

        public void Dispose() => _process.Dispose();
    }
}
