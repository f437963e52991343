namespace Metrics.Tests;

/// <summary>
/// Asserts that a steady-state path allocates nothing on the calling thread, measured with
/// <see cref="GC.GetAllocatedBytesForCurrentThread"/>.
/// </summary>
/// <remarks>
/// That counter can over-report by up to one allocation quantum (about 8 KB) when a garbage collection, caused by
/// other tests' threads, lands inside the window (dotnet/runtime#13502, #74388). So the path is measured over several
/// rounds and passes when one round reads zero: a path that allocates even 24 bytes per call allocates in every round
/// (10,000 calls make 240 KB, far above the counter's error), so it still fails.
/// </remarks>
internal static class Allocations
{
    private const int Rounds = 5;

    /// <summary>Runs <paramref name="action"/> <paramref name="calls"/> times to warm up, then measures rounds of as many calls.</summary>
    /// <param name="what">What the action does, for the failure message.</param>
    /// <param name="action">The path under test; it may loop itself, then pass <paramref name="calls"/> 1.</param>
    /// <param name="calls">Calls per round.</param>
    public static void AssertNone(string what, Action action, int calls = 10_000)
    {
        // Warm up past tiered compilation so the measurement sees the steady state.
        for (var i = 0; i < calls; i++)
        {
            action();
        }

        var measured = new long[Rounds];
        for (var round = 0; round < Rounds; round++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < calls; i++)
            {
                action();
            }

            measured[round] = GC.GetAllocatedBytesForCurrentThread() - before;
            if (measured[round] == 0)
            {
                return;
            }
        }

        Assert.Fail($"{what} allocated in every one of {Rounds} rounds of {calls} calls: {string.Join(", ", measured)} bytes.");
    }
}
