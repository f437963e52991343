using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Metrics.Backends.SharedMemory;

/// <summary>
/// An exemplar kept in a store entry's payload, written by any process and read by every scrape. Writers take a small
/// lock word (holding when it was taken, so a process that died holding it is overtaken after a second); readers take no
/// lock and retry while a version word shows a write in progress, so a scrape never reads half of two exemplars.
/// </summary>
/// <remarks>
/// Layout: lock (int64, 0 or the Unix milliseconds when taken), version (int64, odd while written), timestamp and value
/// (double bits), byte count (int32), then each label name and value as a uint16 count of UTF-16 units and the units.
/// 128 characters of labels fit in at most 1024 bytes that way (a name is one unit at least, a character two at most).
/// </remarks>
internal static unsafe class ExemplarRecord
{
    public const int LabelCapacity = 1024;
    public const int Size = 40 + LabelCapacity;

    private const int Lock = 0;
    private const int Version = 8;
    private const int Timestamp = 16;
    private const int Value = 24;
    private const int Length = 32;
    private const int Labels = 40;
    private const long StaleLockMilliseconds = 1000;

    // The byte count of a record emptied by a removal: no exemplar has it, and readers treat it as none.
    private const int Empty = -1;

    /// <summary>Stores <paramref name="exemplar"/> unless a later one is stored; gives up (keeping the other) while another writer holds the record.</summary>
    public static void Write(byte* record, in RecordedExemplar exemplar)
    {
        ref var lockWord = ref Unsafe.AsRef<long>(record + Lock);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var held = Volatile.Read(ref lockWord);
        if (held != 0 && now - held < StaleLockMilliseconds)
        {
            // Another writer is storing an exemplar of the same value at this moment: either one is a fine sample.
            return;
        }

        if (Interlocked.CompareExchange(ref lockWord, Math.Max(now, 1), held) != held)
        {
            return;
        }

        try
        {
            ref var version = ref Unsafe.AsRef<long>(record + Version);
            var current = Volatile.Read(ref version);
            if (current != 0 && (current & 1) == 0 && BitConverter.Int64BitsToDouble(Volatile.Read(ref Unsafe.AsRef<long>(record + Timestamp))) > exemplar.TimestampUnixSeconds)
            {
                return;
            }

            // Odd while written (a writer that died mid-write left it odd already: it stays odd until this write ends).
            Volatile.Write(ref version, current | 1);
            var labels = new Span<byte>(record + Labels, LabelCapacity);
            var length = 0;
            foreach (var part in exemplar.Labels.Pairs())
            {
                var units = MemoryMarshal.AsBytes(part.AsSpan());
                if (length + 2 + units.Length > LabelCapacity)
                {
                    break;
                }

                Unsafe.WriteUnaligned(ref labels[length], (ushort)part.Length);
                units.CopyTo(labels[(length + 2)..]);
                length += 2 + units.Length;
            }

            Volatile.Write(ref Unsafe.AsRef<long>(record + Timestamp), BitConverter.DoubleToInt64Bits(exemplar.TimestampUnixSeconds));
            Volatile.Write(ref Unsafe.AsRef<long>(record + Value), BitConverter.DoubleToInt64Bits(exemplar.Value));
            Volatile.Write(ref Unsafe.AsRef<int>(record + Length), length);
            Volatile.Write(ref version, (current | 1) + 1);
        }
        finally
        {
            Volatile.Write(ref lockWord, 0);
        }
    }

    /// <summary>
    /// Empties the record for a removed series: the next exemplar is stored whatever its timestamp. Waits for a writer
    /// holding the lock (or overtakes one that died holding it), since a removal must not be skipped as a write may be.
    /// The version keeps counting up, so a reader never mistakes the emptied record for the one it started reading.
    /// </summary>
    public static void Clear(byte* record)
    {
        ref var lockWord = ref Unsafe.AsRef<long>(record + Lock);
        var spinner = default(SpinWait);
        while (true)
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var held = Volatile.Read(ref lockWord);
            if ((held == 0 || now - held >= StaleLockMilliseconds) && Interlocked.CompareExchange(ref lockWord, Math.Max(now, 1), held) == held)
            {
                break;
            }

            spinner.SpinOnce();
        }

        try
        {
            ref var version = ref Unsafe.AsRef<long>(record + Version);
            var current = Volatile.Read(ref version);
            if (current == 0)
            {
                return;
            }

            Volatile.Write(ref version, current | 1);
            Volatile.Write(ref Unsafe.AsRef<long>(record + Timestamp), BitConverter.DoubleToInt64Bits(double.NegativeInfinity));
            Volatile.Write(ref Unsafe.AsRef<int>(record + Length), Empty);
            Volatile.Write(ref version, (current | 1) + 1);
        }
        finally
        {
            Volatile.Write(ref lockWord, 0);
        }
    }

    /// <summary>Reads the stored exemplar; null when none was written, a write kept it busy, or it does not decode (a damaged store).</summary>
    public static RecordedExemplar? Read(byte* record)
    {
        ref var version = ref Unsafe.AsRef<long>(record + Version);
        Span<byte> copy = stackalloc byte[LabelCapacity];
        for (var attempt = 0; attempt < 16; attempt++)
        {
            var before = Volatile.Read(ref version);
            if (before == 0)
            {
                return null;
            }

            if ((before & 1) != 0)
            {
                Thread.SpinWait(1 << Math.Min(attempt, 10));
                continue;
            }

            var timestamp = BitConverter.Int64BitsToDouble(Volatile.Read(ref Unsafe.AsRef<long>(record + Timestamp)));
            var value = BitConverter.Int64BitsToDouble(Volatile.Read(ref Unsafe.AsRef<long>(record + Value)));
            var length = Volatile.Read(ref Unsafe.AsRef<int>(record + Length));
            if (length is < 0 or > LabelCapacity)
            {
                // Emptied by a removal (Empty), or damaged.
                return null;
            }

            new ReadOnlySpan<byte>(record + Labels, length).CopyTo(copy);
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref version) != before)
            {
                continue;
            }

            return Decode(copy[..length], value, timestamp);
        }

        return null;
    }

    private static RecordedExemplar? Decode(ReadOnlySpan<byte> labels, double value, double timestamp)
    {
        var parts = new List<string>(4);
        var position = 0;
        while (position < labels.Length)
        {
            if (position + 2 > labels.Length)
            {
                return null;
            }

            var units = Unsafe.ReadUnaligned<ushort>(ref MemoryMarshal.GetReference(labels[position..])) * 2;
            if (position + 2 + units > labels.Length)
            {
                return null;
            }

            parts.Add(new string(MemoryMarshal.Cast<byte, char>(labels.Slice(position + 2, units))));
            position += 2 + units;
        }

        try
        {
            return new RecordedExemplar(Exemplar.FromPairs([.. parts]), value, timestamp);
        }
        catch (ArgumentException)
        {
            // Labels no valid exemplar has: the store was changed by something else. No exemplar is shown for the value.
            return null;
        }
    }
}
