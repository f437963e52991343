using static Metrics.Conformance.CheckContext;

namespace Metrics.Conformance;

/// <summary>Checks of one value's arithmetic, precision, concurrency and visibility.</summary>
internal static class ValueChecks
{
    public static void NewValueReadsZero(CheckContext ctx)
    {
        var name = ctx.Name("zero");
        var histogram = Histogram(name + "_h", [0.5, 1, double.PositiveInfinity], ["k"], ["v"]);
        var summary = Summary(name + "_s", ["k"], ["v"]);
        (string What, IMetricBackend Value)[] values =
        [
            ("a counter", ctx.Create(Counter(name + "_c"))),
            ("a labelled counter", ctx.Create(Counter(name + "_l", ["k"], ["v"]))),
            ("a gauge", ctx.Create(Gauge(name + "_g"))),
            ("a histogram bucket le=0.5", ctx.Create(histogram, HistogramBucket.ForUpperBound(0.5))),
            ("a histogram bucket le=+Inf", ctx.Create(histogram, HistogramBucket.ForUpperBound(double.PositiveInfinity))),
            ("a histogram sum", ctx.Create(histogram, HistogramBucket.Sum)),
            ("a summary count", ctx.Create(summary, HistogramBucket.Count)),
            ("a summary sum", ctx.Create(summary, HistogramBucket.Sum)),
        ];
        foreach (var (what, value) in values)
        {
            var read = ctx.Get(value, what);
            ctx.Expect(read == 0,
                $"A new value ({what}) read {F(read)}, expected 0. A value must start at 0; a non-zero start means uninitialized storage, " +
                "a value shared with another series, or data left by an earlier run (make the test configuration point at a fresh store).");
        }
    }

    public static void IncDecSetGet(CheckContext ctx)
    {
        var gauge = ctx.Create(Gauge(ctx.Name("ops")));
        var counter = ctx.Create(Counter(ctx.Name("ops_total")));
        Step(ctx, counter, "counter", "Inc", 1, 1);
        Step(ctx, counter, "counter", "Inc", 1, 2);
        Step(ctx, counter, "counter", "Inc", 0.5, 2.5);
        Step(ctx, gauge, "gauge", "Inc", 5, 5);
        Step(ctx, gauge, "gauge", "Inc", 2.5, 7.5);
        Step(ctx, gauge, "gauge", "Dec", 3, 4.5);
        Step(ctx, gauge, "gauge", "Dec", 10, -5.5);
        Step(ctx, gauge, "gauge", "Set", 42, 42);
        Step(ctx, gauge, "gauge", "Inc", -2, 40);
        Step(ctx, gauge, "gauge", "Dec", -1, 41);
        Step(ctx, gauge, "gauge", "Set", -7.25, -7.25);
        Step(ctx, gauge, "gauge", "Dec", 0.75, -8);
        Step(ctx, gauge, "gauge", "Set", 0, 0);
    }

    /// <summary>
    /// The contract on <see cref="IMetricBackend.ValueCell"/>: the host's compare-and-swap at the cell is an
    /// update Get sees, and the moved marker only means a move when the backend moved the value: a value whose own bits
    /// are the marker (stored by Set) is NaN after Inc, at the same cell, like any other NaN.
    /// </summary>
    public static unsafe void ValueCellIsTheValueAndMovesOnlyWhenMoved(CheckContext ctx)
    {
        var name = ctx.Name("cell");
        var histogram = Histogram(name + "_h", [1, double.PositiveInfinity]);
        (string What, IMetricBackend Value)[] values =
        [
            ("a counter", ctx.Create(Counter(name + "_total"))),
            ("a gauge", ctx.Create(Gauge(name + "_g"))),
            ("a histogram sum", ctx.Create(histogram, HistogramBucket.Sum)),
        ];
        var marker = BitConverter.Int64BitsToDouble(AtomicDouble.MovedCell);
        foreach (var (what, value) in values)
        {
            var cell = value.ValueCell;
            if (cell != 0)
            {
                ctx.Expect(AtomicDouble.TryAddToCell(ref *(long*)cell, 2.5), $"The host's compare-and-swap at the value cell of {what} failed on a value nobody else updates.");
                ctx.ExpectExact(2.5, ctx.Get(value, what), $"Get on {what} after the host added 2.5 at its ValueCell",
                    "ValueCell must be the word Get reads: the host adds there instead of calling Inc.");
            }

            value.Set(marker);
            var read = ctx.Get(value, what);
            // Only a value cell must keep the payload: there the host tells the marker from other NaNs by its bits. A store
            // without cells may keep doubles as text (Redis), where every NaN reads back as the one quiet NaN.
            ctx.Expect(cell == 0 ? double.IsNaN(read) : BitConverter.DoubleToInt64Bits(read) == AtomicDouble.MovedCell,
                $"Set on {what} with the bits of AtomicDouble.MovedCell read back as {F(read)} (0x{BitConverter.DoubleToInt64Bits(read):X16}). " +
                (cell == 0 ? "Set(NaN) must read back as NaN." : "A value with a ValueCell must round-trip every bit pattern through Set."));
            if (cell != 0)
            {
                ctx.Expect(!AtomicDouble.TryAddToCell(ref *(long*)value.ValueCell, 1), $"AtomicDouble.TryAddToCell added to the moved marker of {what}.");
            }

            // What the host does when its compare-and-swap is refused.
            value.Inc(1);
            var after = ctx.Get(value, what);
            ctx.Expect(double.IsNaN(after),
                $"Inc(1) on {what} holding the bits of AtomicDouble.MovedCell (a NaN stored by Set) read {F(after)}, expected NaN. " +
                "Those bits mean a move only when the backend moved the value and wrote them itself; a value that did not move must treat them as a value (NaN + 1 = NaN), not restart somewhere else.");
            if (cell != 0)
            {
                var again = value.ValueCell;
                ctx.Expect(again == cell, $"The ValueCell of {what} changed from 0x{cell:X} to 0x{again:X} although the value did not move (its own bits were the marker).");
                value.Set(1);
                ctx.Expect(AtomicDouble.TryAddToCell(ref *(long*)again, 1), $"The host's compare-and-swap at the value cell of {what} failed after Set(1).");
                ctx.ExpectExact(2, ctx.Get(value, what), $"Get on {what} after Set(1) and the host adding 1 at its ValueCell");
            }
        }
    }

    public static void DoubleSumsAreExact(CheckContext ctx)
    {
        var name = ctx.Name("exact");
        var tenth = ctx.Create(Counter(name + "_tenth"));
        var tiny = ctx.Create(Gauge(name + "_tiny"));
        var huge = ctx.Create(Gauge(name + "_huge"));
        var third = ctx.Create(Gauge(name + "_third"));
        var walk = ctx.Create(Gauge(name + "_walk"));

        double expected = 0;
        float single = 0;
        for (var i = 0; i < 10; i++)
        {
            tenth.Inc(0.1);
            expected += 0.1;
            single += 0.1f;
        }

        var read = ctx.Get(tenth, "the counter");
        if (!Same(expected, read))
        {
            var bug = Same(read, single) ? "This is what single-precision (float) arithmetic gives: the value is stored or summed as a float."
                : read == 1 ? "Exactly 1 means decimal arithmetic or rounding through text with fewer than 17 significant digits."
                : "Values must be stored and summed as IEEE 754 doubles, without text or decimal round trips.";
            throw ctx.Fail($"Ten Inc(0.1) on a new value: expected {F(expected)} (what ten double additions give), read {F(read)}. {bug}");
        }

        tiny.Inc(1e-300);
        ctx.ExpectExact(1e-300, ctx.Get(tiny, "the gauge"), "Inc(1e-300) on a new value",
            "A tiny double was flushed to zero or rounded: the value is not stored as a double (float has no 1e-300).");
        tiny.Inc(1e-300);
        ctx.ExpectExact(2e-300, ctx.Get(tiny, "the gauge"), "A second Inc(1e-300)", "Sums must follow double arithmetic.");

        huge.Inc(1e300);
        ctx.ExpectExact(1e300, ctx.Get(huge, "the gauge"), "Inc(1e300) on a new value",
            "A huge double overflowed or lost digits: the value is not stored as a double (float overflows to +Inf).");
        huge.Dec(3e299);
        ctx.ExpectExact(1e300 - 3e299, ctx.Get(huge, "the gauge"), "Dec(3e299) after Inc(1e300)", "Sums must follow double arithmetic.");

        expected = 0;
        for (var i = 0; i < 3; i++)
        {
            third.Inc(1.0 / 3);
            expected += 1.0 / 3;
        }

        ctx.ExpectExact(expected, ctx.Get(third, "the gauge"), "Three Inc(1/3)", "Values must keep all 17 significant digits of a double.");

        // Mixed magnitudes and signs, each step checked against local double arithmetic.
        var random = new Random(20240917);
        expected = 0;
        for (var i = 0; i < 300; i++)
        {
            var amount = (random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-20, 21));
            if (i % 3 == 2)
            {
                walk.Dec(amount);
                expected -= amount;
            }
            else
            {
                walk.Inc(amount);
                expected += amount;
            }

            var got = ctx.Get(walk, "the gauge");
            if (!Same(expected, got))
            {
                throw ctx.Fail(
                    $"Step {i + 1} of a walk of Inc/Dec with amounts from 1e-20 to 1e20 ({(i % 3 == 2 ? "Dec" : "Inc")}({F(amount)})): expected {F(expected)}, read {F(got)}. " +
                    "Every update must be one double addition on the stored double; decimal, text (17-digit INCRBYFLOAT-style) or float intermediates change the result.");
            }
        }
    }

    public static void SetRoundTripsSpecialValues(CheckContext ctx)
    {
        var value = ctx.Create(Gauge(ctx.Name("special")));
        double[] specials =
        [
            0.1, 1e-300, 1e300, -1e300, double.Epsilon, -double.Epsilon, double.MaxValue, double.MinValue, 1.0 / 3, Math.PI,
            0.30000000000000004, 123456789.12345678, -2.5e-15, 2.2250738585072014E-308, double.NaN, double.PositiveInfinity,
            double.NegativeInfinity, 0.0, -0.0, 5,
        ];
        var previous = 0.0;
        foreach (var special in specials)
        {
            value.Set(special);
            var read = ctx.Get(value, "the gauge");
            if (Same(special, read))
            {
                previous = special;
                continue;
            }

            var bug = Same(read, previous) ? "Get returned the value from before the Set: the Set was lost or Get returned a stale (cached) value."
                : special == 0 && double.IsNegative(special) && read == 0 ? "The sign bit of negative zero was lost (for example by adding 0.0, or a text or integer round trip)."
                : double.IsNaN(special) ? "NaN must round-trip: store the double's bits, not a parsed text."
                : double.IsInfinity(special) ? "Infinities must round-trip: store the double's bits, not a parsed text."
                : Same(read, (float)special) ? "The value was stored as a float."
                : "Set must store the exact double (all 64 bits); a text round trip with fewer than 17 digits or a float loses it.";
            throw ctx.Fail($"Set({F(special)}) then Get(): expected {F(special)}, read {F(read)}. {bug}");
        }

        // Arithmetic on the special values follows IEEE 754 too.
        value.Set(double.PositiveInfinity);
        value.Inc(1);
        ctx.ExpectExact(double.PositiveInfinity, ctx.Get(value, "the gauge"), "Inc(1) on +Inf", "Sums must follow double arithmetic.");
        value.Set(double.MaxValue);
        value.Inc(double.MaxValue);
        ctx.ExpectExact(double.PositiveInfinity, ctx.Get(value, "the gauge"), "Inc(MaxValue) on MaxValue", "Double addition overflows to +Inf.");
        value.Set(double.NaN);
        value.Set(7);
        ctx.ExpectExact(7, ctx.Get(value, "the gauge"), "Set(7) after Set(NaN)", "A value that was NaN must accept a new value (a compare-and-swap loop comparing doubles with == never matches NaN).");
        value.Set(double.NaN);
        value.Inc(1);
        ctx.ExpectExact(double.NaN, ctx.Get(value, "the gauge"), "Inc(1) on NaN", "NaN + 1 is NaN; an update loop comparing doubles with == spins or loses it: compare the bits.");
    }

    public static void LargeIntegersStayDoubles(CheckContext ctx)
    {
        var value = ctx.Create(Gauge(ctx.Name("large")));
        const double TwoTo53 = 9007199254740992;
        double[] integers = [TwoTo53 - 1, TwoTo53, TwoTo53 + 2, Math.Pow(2, 60), Math.Pow(2, 63), Math.Pow(2, 64), Math.Pow(2, 100), -(TwoTo53 + 2), 1e17 + 16, 123456789012345680000.0];
        foreach (var integer in integers)
        {
            value.Set(integer);
            var read = ctx.Get(value, "the gauge");
            ctx.ExpectExact(integer, read, $"Set({F(integer)}) then Get()",
                "Integers beyond 2^53 are doubles like any other: store the 64 bits (a long, a 17-digit text or a float loses them; 2^63 overflows a long).");
        }

        // One Inc after each Set: a backend that coalesces pending increments (as a batching shared store must) sums
        // them before adding, so only a single addition onto a large base has one right answer.
        value.Set(TwoTo53);
        value.Inc(1);
        var sum = ctx.Get(value, "the gauge");
        ctx.ExpectExact(TwoTo53, sum, "Set(2^53), Inc(1)",
            "2^53 + 1 is not a double: the double addition rounds back to 2^53. Another result means the sum went through an integer, decimal or text form and was rounded differently.");
        value.Set(TwoTo53);
        value.Inc(2);
        ctx.ExpectExact(TwoTo53 + 2, ctx.Get(value, "the gauge"), "Set(2^53), Inc(2)", "2^53 + 2 is representable and must be read exactly.");
        value.Set(Math.Pow(2, 60));
        value.Inc(1);
        ctx.ExpectExact(Math.Pow(2, 60), ctx.Get(value, "the gauge"), "Inc(1) on 2^60", "1 is below the precision of 2^60: a double addition leaves it unchanged.");
        value.Inc(256);
        ctx.ExpectExact(Math.Pow(2, 60) + 256, ctx.Get(value, "the gauge"), "Inc(256) on 2^60", "Values keep all 53 bits of a double's mantissa (a 17-digit text round trip does not).");
    }

    public static void ConcurrentIncrementsAreExact(CheckContext ctx)
    {
        var value = ctx.Create(Counter(ctx.Name("concurrent_total")));
        var threads = ctx.Options.Threads;
        var perThread = ctx.Options.IncrementsPerThread;
        ctx.Step = $"{threads} threads x {perThread} Inc(1)";
        RunThreads(threads, _ =>
        {
            for (var i = 0; i < perThread; i++)
            {
                value.Inc(1);
            }
        });
        ctx.Backend.Flush();
        var read = ctx.Get(value, "the counter");
        var expected = (double)threads * perThread;
        if (read != expected)
        {
            throw ctx.Fail(read == 0
                ? $"{threads} threads x {perThread} Inc(1) on one value: expected {F(expected)}, read 0: no increment is visible at all. Get returns a stale (cached) value, or Inc does nothing."
                : read < expected
                ? $"{threads} threads x {perThread} Inc(1) on one value: expected {F(expected)}, read {F(read)}: {F(expected - read)} increments were lost. " +
                  "Inc is not atomic: two threads read the same old value and both write old + 1. Use a compare-and-swap loop on the double's bits (Interlocked.CompareExchange), a lock, or an atomic operation of the store."
                : $"{threads} threads x {perThread} Inc(1) on one value: expected {F(expected)}, read {F(read)}: {F(read - expected)} more than were made. Some increments were applied twice (a retried update that had already succeeded).");
        }
    }

    public static void ConcurrentFractionalSumsMatchSequentialAddition(CheckContext ctx)
    {
        var value = ctx.Create(Counter(ctx.Name("fraction_total")));
        var threads = Math.Max(2, ctx.Options.Threads);
        var perThread = ctx.Options.IncrementsPerThread;
        ctx.Step = $"{threads} threads x {perThread} Inc(0.1)";
        RunThreads(threads, _ =>
        {
            for (var i = 0; i < perThread; i++)
            {
                value.Inc(0.1);
            }
        });
        ctx.Backend.Flush();
        var expected = 0.0;
        for (var i = 0; i < threads * perThread; i++)
        {
            expected += 0.1;
        }

        var read = ctx.Get(value, "the counter");
        if (read != expected)
        {
            throw ctx.Fail(
                $"{threads} threads x {perThread} Inc(0.1) on one value: expected {F(expected)} (the same additions one at a time, in any order), read {F(read)}. " +
                (Math.Abs(read - expected) < 1e-6 * expected
                    ? "The total rounds differently from sequential addition: the backend adds partial sums (per-thread or per-core cells, or coalesced batches). Add fractional increments one at a time to the stored value, or declare BackendCapabilities.BatchesUpdates if updates are coalesced by design."
                    : "Increments were lost or duplicated: Inc must be an atomic read-modify-write of the stored double."));
        }
    }

    public static void ConcurrentIncAndDecAreExact(CheckContext ctx)
    {
        var value = ctx.Create(Gauge(ctx.Name("concurrent_mixed")));
        var threads = Math.Max(2, ctx.Options.Threads);
        var perThread = ctx.Options.IncrementsPerThread;
        ctx.Step = $"{threads} threads of Inc(3) and Dec(1)";
        RunThreads(threads, index =>
        {
            for (var i = 0; i < perThread; i++)
            {
                if (index % 2 == 0)
                {
                    value.Inc(3);
                }
                else
                {
                    value.Dec(1);
                }
            }
        });
        ctx.Backend.Flush();
        var incThreads = (threads + 1) / 2;
        var decThreads = threads / 2;
        var expected = ((double)incThreads * perThread * 3) - ((double)decThreads * perThread);
        var read = ctx.Get(value, "the gauge");
        if (read != expected)
        {
            var bug = read == ((double)incThreads * perThread * 3) + ((double)decThreads * perThread) ? "That is what Dec adding its amount gives: Dec must subtract."
                : "Concurrent Inc and Dec lost or duplicated updates: both must be atomic read-modify-writes of the same stored double (compare-and-swap on the bits, a lock, or an atomic store operation).";
            throw ctx.Fail($"{incThreads} threads x {perThread} Inc(3) racing {decThreads} threads x {perThread} Dec(1): expected {F(expected)}, read {F(read)}. {bug}");
        }
    }

    public static void ReadYourWrites(CheckContext ctx)
    {
        var counter = ctx.Create(Counter(ctx.Name("ryw_total")));
        var gauge = ctx.Create(Gauge(ctx.Name("ryw")));
        var before = ctx.Get(counter, "the counter");
        ctx.ExpectExact(0, before, "A new counter");
        for (var i = 1; i <= 1000; i++)
        {
            counter.Inc(1);
            var read = ctx.Get(counter, "the counter");
            if (read != i)
            {
                throw ctx.Fail(
                    $"After Inc(1) number {i} returned, Get() read {F(read)}, expected {i}{(read == i - 1 ? " (the value before that Inc)" : string.Empty)}: Get returned a stale value. " +
                    "Get must include every update of this process that has returned (read-your-writes), even when reads are cached or writes are batched to a shared store.");
            }
        }

        foreach (var (op, amount, expected) in new[] { ("Set", 10.0, 10.0), ("Dec", 4.0, 6.0), ("Set", -1.5, -1.5), ("Inc", 0.5, -1.0) })
        {
            Apply(gauge, op, amount);
            var read = ctx.Get(gauge, "the gauge");
            ctx.ExpectExact(expected, read, $"Get() right after {op}({F(amount)}) on a gauge",
                "Get returned a stale value: a read must include this process's own updates (read-your-writes).");
        }

        var thread = new Thread(() => counter.Inc(5));
        thread.Start();
        thread.Join();
        ctx.ExpectExact(1005, ctx.Get(counter, "the counter"), "Get() after another thread's Inc(5) returned (and the thread was joined)",
            "Updates made on one thread must be visible to reads on another once the update returned (publish with Volatile/Interlocked, not a thread-local cache).");
    }

    internal static void RunThreads(int count, Action<int> body)
    {
        using var barrier = new Barrier(count);
        var errors = new Exception?[count];
        var threads = new Thread[count];
        for (var t = 0; t < count; t++)
        {
            var index = t;
            threads[t] = new Thread(() =>
            {
                try
                {
                    barrier.SignalAndWait();
                    body(index);
                }
                catch (Exception ex)
                {
                    errors[index] = ex;
                }
            });
            threads[t].Start();
        }

        foreach (var thread in threads)
        {
            thread.Join();
        }

        var first = errors.FirstOrDefault(e => e is not null);
        if (first is not null)
        {
            throw new AggregateException("An update threw on a worker thread.", errors.Where(e => e is not null)!);
        }
    }

    private static void Apply(IMetricBackend value, string op, double amount)
    {
        switch (op)
        {
            case "Inc": value.Inc(amount); break;
            case "Dec": value.Dec(amount); break;
            default: value.Set(amount); break;
        }
    }

    private static void Step(CheckContext ctx, IMetricBackend value, string what, string op, double amount, double expected)
    {
        var before = ctx.Get(value, what);
        ctx.Step = $"{op}({F(amount)}) on the {what}";
        Apply(value, op, amount);
        var read = ctx.Get(value, what);
        if (Same(expected, read))
        {
            return;
        }

        var bug = op switch
        {
            "Dec" when read == before + amount => "Dec added its amount instead of subtracting it.",
            "Inc" when read == before - amount => "Inc subtracted its amount instead of adding it.",
            "Inc" or "Dec" when read == amount => $"{op} replaced the value instead of adding to it.",
            "Set" when read == before + amount => "Set added its amount instead of replacing the value.",
            _ when read == before => $"The {op} was lost, or Get returned a stale value.",
            _ => $"Inc(x) must add x, Dec(x) subtract x, Set(x) replace the value.",
        };
        throw ctx.Fail($"{op}({F(amount)}) on a {what} reading {F(before)}: expected {F(expected)}, read {F(read)}. {bug}");
    }
}
