using static Metrics.Conformance.CheckContext;

namespace Metrics.Conformance;

/// <summary>Checks of IEEE 754 arithmetic on every update path, and of Set against concurrent increments.</summary>
internal static class ArithmeticChecks
{
    private static readonly (double Start, string Op, double Amount)[] IeeeCases =
    [
        (0.0, "Inc", -0.0), (-0.0, "Inc", 0.0), (-0.0, "Inc", -0.0), (-0.0, "Dec", 0.0), (-0.0, "Dec", -0.0), (0.0, "Dec", 0.0),
        (5, "Dec", 5), (-5, "Inc", 5), (double.Epsilon, "Dec", double.Epsilon), (-double.Epsilon, "Inc", double.Epsilon),
        (double.PositiveInfinity, "Inc", double.NegativeInfinity), (double.PositiveInfinity, "Dec", double.PositiveInfinity),
        (double.NegativeInfinity, "Dec", 1), (double.NegativeInfinity, "Inc", double.PositiveInfinity), (1, "Inc", double.PositiveInfinity),
        (double.NaN, "Dec", 1), (1, "Inc", double.NaN), (double.MaxValue, "Dec", -double.MaxValue), (-double.MaxValue, "Dec", double.MaxValue),
        (1e308, "Inc", 1e308), (0.1, "Inc", -0.1), (-0.0, "Inc", 1e-320),
    ];

    public static void ArithmeticFollowsIeee754(CheckContext ctx)
    {
        var name = ctx.Name("ieee");
        var histogram = Histogram(name + "_h", [1, double.PositiveInfinity]);
        (string What, Func<IMetricBackend> Create)[] paths =
        [
            ("a gauge", () => ctx.Create(Gauge(ctx.Name("ieee_g")))),
            ("a counter", () => ctx.Create(Counter(ctx.Name("ieee_total")))),
            ("a histogram sum", () => ctx.Create(Histogram(ctx.Name("ieee_h"), [1, double.PositiveInfinity]), HistogramBucket.Sum)),
            ("a summary sum", () => ctx.Create(Summary(ctx.Name("ieee_s")), HistogramBucket.Sum)),
        ];
        foreach (var (what, create) in paths)
        {
            foreach (var (start, op, amount) in IeeeCases)
            {
                // A new value per case: no case depends on what an earlier one left behind.
                var value = create();
                ctx.Step = $"Set({F(start)}) then {op}({F(amount)}) on {what}";
                if (!(start == 0 && !double.IsNegative(start)))
                {
                    value.Set(start);
                }

                if (op == "Inc")
                {
                    value.Inc(amount);
                }
                else
                {
                    value.Dec(amount);
                }

                var expected = op == "Inc" ? start + amount : start - amount;
                var read = ctx.Get(value, what);
                if (!Same(expected, read))
                {
                    throw ctx.Fail($"{(start == 0 && !double.IsNegative(start) ? "A new value" : $"Set({F(start)})")} then {op}({F(amount)}) on {what}: expected {F(expected)} (IEEE 754 double arithmetic), read {F(read)}. {IeeeBug(start, op, amount, expected, read)}");
                }
            }
        }

        if (ctx.Backend.Capabilities.HasFlag(BackendCapabilities.AtomicHistogramObserve))
        {
            var series = histogram.WithLabelValues([]);
            var bucket = ctx.Create(series, HistogramBucket.ForUpperBound(1));
            var sum = ctx.Create(series, HistogramBucket.Sum);
            ctx.Step = "ObserveHistogram(bucket, -0) after Set(-0) on the sum";
            sum.Set(-0.0);
            sum.ObserveHistogram(bucket, 0.0);
            ctx.ExpectExact(0.0, ctx.Get(sum, "the histogram sum"), "Set(-0) on a histogram sum, then ObserveHistogram(bucket, 0)",
                "-0 + 0 is +0 in IEEE 754: ObserveHistogram must add the observed value to the sum as an ordinary double addition, without skipping zeros.");
        }
    }

    private static string IeeeBug(double start, string op, double amount, double expected, double read)
    {
        if (expected == 0 && read == 0)
        {
            return double.IsNegative(read)
                ? $"{F(start)} {(op == "Inc" ? "+" : "-")} {F(amount)} is +0 in IEEE 754, but the stored negative zero was kept: the update was skipped for a zero amount (an 'if (amount == 0) return' shortcut), or x - x was not computed as a double subtraction."
                : "The result keeps the sign of zero in IEEE 754 (-0 + -0 = -0, -0 - 0 = -0), but +0 was read: the update went through an accumulator or pending sum starting at +0 (the additive identity of doubles is -0), an integer, or a text form.";
        }

        if (double.IsNaN(expected))
        {
            return "Opposite infinities and NaN give NaN in IEEE 754: the backend saturates, special-cases infinities or NaN, or converts through a type without them (a decimal, a long, a text parse).";
        }

        if (double.IsInfinity(expected))
        {
            return "Double addition overflows to an infinity and infinities absorb finite amounts: the backend clamps, or stores through a type without infinities.";
        }

        return "Every update must be one IEEE 754 double addition (or subtraction) on the stored double.";
    }

    public static void SetIsLinearizableWithConcurrentInc(CheckContext ctx)
    {
        var value = ctx.Create(Gauge(ctx.Name("set_race")));
        // Set targets are far apart and far above what the increments add, so a read tells which Set it follows.
        const double Spacing = 1L << 40;
        const int MaxSets = 2000;
        var incThreads = Math.Max(1, ctx.Options.Threads - 1);

        // The increments run for as long as the Sets do, so every Set races them however the threads are scheduled (a
        // fixed number of increments could all finish before the Set thread first runs, and then nothing races). The cap
        // only bounds a backend so slow that the Sets never end.
        var cap = 10L * Math.Max(1000, ctx.Options.IncrementsPerThread / 4);
        long completed = 0;
        var finished = 0;
        var running = true;
        string? violation = null;
        double lastTarget = 0;
        long beforeLast = 0;
        long afterLast = 0;
        ctx.Step = $"1 thread calling Set racing {incThreads} threads calling Inc(1)";
        ValueChecks.RunThreads(incThreads + 1, index =>
        {
            if (index > 0)
            {
                try
                {
                    for (var i = 0L; i < cap && Volatile.Read(ref running); i++)
                    {
                        value.Inc(1);
                        Interlocked.Increment(ref completed);
                    }
                }
                finally
                {
                    Interlocked.Increment(ref finished);
                }

                return;
            }

            try
            {
                // The first Set waits for the first increment, so the race has begun.
                var spinner = default(SpinWait);
                while (Interlocked.Read(ref completed) == 0 && Volatile.Read(ref finished) < incThreads)
                {
                    spinner.SpinOnce();
                }

                for (var j = 1; j <= MaxSets && Volatile.Read(ref finished) < incThreads; j++)
                {
                    var target = j * Spacing;
                    var before = Interlocked.Read(ref completed);
                    value.Set(target);
                    var after = Interlocked.Read(ref completed);
                    var read = value.Get();
                    var afterRead = Interlocked.Read(ref completed);
                    (lastTarget, beforeLast, afterLast) = (target, before, after);
                    // After Set(target) returned only increments can land: at most those completed meanwhile plus those in flight.
                    var most = target + (afterRead - before) + (2 * incThreads);
                    if (violation is null && (read < target || read > most))
                    {
                        violation = read < target
                            ? $"Get right after Set({F(target)}) returned read {F(read)}, below the value just set, while other threads called Inc(1): the Set was lost. " +
                              "An increment that read the old value before the Set wrote its result after it (a read-modify-write under a lock that Set does not take, " +
                              "or a pending increment applied over the Set). Make Set and Inc atomic against each other: one compare-and-swap loop or one lock for both, " +
                              "or an atomic operation of the store."
                            : $"Get right after Set({F(target)}) returned read {F(read)}, more than the value set plus every increment made since ({F(most)} at most): " +
                              "increments made before the Set were added on top of it (per-thread or pending increments that Set does not discard).";
                    }
                }
            }
            finally
            {
                Volatile.Write(ref running, false);
            }
        });
        var total = Interlocked.Read(ref completed);
        if (violation is not null)
        {
            throw ctx.Fail(violation);
        }

        ctx.Backend.Flush();
        var final = ctx.Get(value, "the gauge");
        var low = lastTarget + (total - afterLast - incThreads);
        var high = lastTarget + (total - beforeLast);
        ctx.Expect(final >= low && final <= high,
            $"After the last Set({F(lastTarget)}) raced the remaining Inc(1) calls, the value read {F(final)}, expected between {F(low)} and {F(high)} " +
            "(the value set plus the increments made after it). " +
            (final < lastTarget ? "The last Set was lost: an increment that read the value before the Set wrote its result after it (Set does not take the lock or compare-and-swap of Inc)." : "Increments were lost or applied twice around the Set."));
    }
}
