using System.Buffers.Binary;
using Metrics.Backends.Redis;
using Metrics.Tests;
using StackExchange.Redis;

namespace Metrics.Redis.Tests;

/// <summary>
/// The layout scrapes read: one string of 8-byte values per family, named by a field list that a scraper reads once
/// and then only where it grew, until its generation changes (a removal, keys created afresh after a reset).
/// </summary>
public sealed class SlotLayoutTests(SharedRedis redis) : RedisTestBase
{
    private static readonly MetricDescriptor Counter = new("slot_total", "Counter.", MetricType.Counter, ["k"]);

    private string Cs => redis.Server.ConnectionString;

    [Fact]
    public void A_steady_scrape_reads_only_the_entries_added_to_the_field_list_since_the_last_one()
    {
        var writer = Config(Cs);
        new RedisBackend(writer, Counter.WithLabelValues(["a"]), null).Inc(1);
        new RedisBackend(writer, Counter.WithLabelValues(["b"]), null).Inc(2);
        FlushOrFail(writer);
        var dataKey = RedisFamily.DataKey(RedisStore.Get(writer).Settings, Counter.Name, Counter.DefinitionId);
        using var connection = ConnectionMultiplexer.Connect(Cs);
        var db = connection.GetDatabase();

        var first = Scrape(db, dataKey, [], 0);
        var generation = (byte[])first[0]!;
        Assert.Equal(8, generation.Length);
        Assert.Equal(8, (long)first[1]);
        Assert.Equal(16, ((byte[])first[3]!).Length);
        var known = 8 + ((byte[])first[2]!).Length;

        new RedisBackend(writer, Counter.WithLabelValues(["c"]), null).Inc(3);
        FlushOrFail(writer);
        var second = Scrape(db, dataKey, generation, known);
        Assert.Equal(generation, (byte[])second[0]!);
        Assert.Equal(known, (long)second[1]);
        var tail = (byte[])second[2]!;
        Assert.Equal((byte)'+', tail[0]);
        Assert.Equal(tail.Length - 5, BinaryPrimitives.ReadInt32LittleEndian(tail.AsSpan(1)));
        Assert.Equal(FieldCodec.Encode(["c"], null), tail[5..]);
        var values = (byte[])second[3]!;
        Assert.Equal(3.0, BinaryPrimitives.ReadDoubleLittleEndian(values.AsSpan(16)));

        // Nothing new: no list bytes travel, only the values.
        var third = Scrape(db, dataKey, generation, known + tail.Length);
        Assert.Empty((byte[])third[2]!);
        Assert.Equal(24, ((byte[])third[3]!).Length);
    }

    [Fact]
    public void A_removal_gives_the_field_list_a_new_generation_and_marks_the_entry_removed()
    {
        var writer = Config(Cs);
        new RedisBackend(writer, Counter.WithLabelValues(["keep"]), null).Inc(1);
        new RedisBackend(writer, Counter.WithLabelValues(["drop"]), null).Inc(2);
        FlushOrFail(writer);
        var dataKey = RedisFamily.DataKey(RedisStore.Get(writer).Settings, Counter.Name, Counter.DefinitionId);
        using var connection = ConnectionMultiplexer.Connect(Cs);
        var db = connection.GetDatabase();
        var before = Scrape(db, dataKey, [], 0);
        var known = 8 + ((byte[])before[2]!).Length;

        RedisBackend.RemoveSeries(writer, Counter.WithLabelValues(["drop"]));
        FlushOrFail(writer);
        var after = Scrape(db, dataKey, (byte[])before[0]!, known);
        Assert.NotEqual((byte[])before[0]!, (byte[])after[0]!);
        Assert.Equal(8, (long)after[1]);
        var entries = Entries((byte[])after[2]!);
        Assert.Equal('+', entries[Convert.ToBase64String(FieldCodec.Encode(["keep"], null))]);
        Assert.Equal('-', entries[Convert.ToBase64String(FieldCodec.Encode(["drop"], null))]);
        Assert.Equal([1.0], Collect(Config(Cs, "reader"), [Counter])[0].Select(v => v.Value));

        // The removed series comes back in a new slot, from 0.
        new RedisBackend(writer, Counter.WithLabelValues(["drop"]), null).Inc(5);
        FlushOrFail(writer);
        Assert.Equal(5, Read(Config(Cs, "reader2"), Counter, ["drop"]));
        Assert.Equal(24, db.StringLength(RedisFamily.ValuesKeyOf(dataKey)));
    }

    [Fact]
    public void A_scraper_that_named_the_slots_before_a_FLUSHALL_names_the_new_ones_afresh()
    {
        using var server = RedisServer.Start(durable: false);
        var reader = Config(server.ConnectionString, "reader");
        var first = Config(server.ConnectionString, "first");
        new RedisBackend(first, Counter.WithLabelValues(["a"]), null).Inc(1);
        new RedisBackend(first, Counter.WithLabelValues(["b"]), null).Inc(2);
        FlushOrFail(first);
        Assert.Equal(["a=1", "b=2"], Shown(reader));

        // After the reset another writer creates the slots in another order: slot 0 is now 'b'.
        server.Command("FLUSHALL");
        var second = Config(server.ConnectionString, "second");
        new RedisBackend(second, Counter.WithLabelValues(["b"]), null).Inc(7);
        new RedisBackend(second, Counter.WithLabelValues(["c"]), null).Inc(8);
        FlushOrFail(second);
        Assert.Equal(["b=7", "c=8"], Shown(reader));
    }

    [Fact]
    public void A_family_left_by_the_previous_hash_layout_is_started_afresh_by_the_first_write()
    {
        var writer = Config(Cs);
        var dataKey = RedisFamily.DataKey(RedisStore.Get(writer).Settings, Counter.Name, Counter.DefinitionId);
        using var connection = ConnectionMultiplexer.Connect(Cs);
        var db = connection.GetDatabase();
        var old = new byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(old, 41);
        db.HashSet(dataKey, FieldCodec.Encode(["old"], null), old);

        new RedisBackend(writer, Counter.WithLabelValues(["new"]), null).Inc(1);
        FlushOrFail(writer);
        Assert.Equal(["new=1"], Shown(Config(Cs, "reader")));
    }

    [Fact]
    public void A_values_key_that_does_not_hold_doubles_fails_the_scrape_with_its_name()
    {
        var writer = Config(Cs);
        new RedisBackend(writer, Counter.WithLabelValues(["a"]), null).Inc(1);
        FlushOrFail(writer);
        var dataKey = RedisFamily.DataKey(RedisStore.Get(writer).Settings, Counter.Name, Counter.DefinitionId);
        using var connection = ConnectionMultiplexer.Connect(Cs);
        connection.GetDatabase().StringAppend(RedisFamily.ValuesKeyOf(dataKey), "x");
        var error = Assert.Throws<RedisBackendException>(() => Collect(Config(Cs, "reader"), [Counter]));
        Assert.Contains($"'{RedisFamily.ValuesKeyOf(dataKey)}' does not hold 8-byte doubles", error.Message, StringComparison.Ordinal);
    }

    private static RedisResult[] Scrape(IDatabase db, string dataKey, byte[] generation, long known) =>
        (RedisResult[])db.ScriptEvaluate(
            Scripts.CollectSlots,
            [dataKey, dataKey + ":no-definitions", RedisFamily.ValuesKeyOf(dataKey), RedisFamily.ListKeyOf(dataKey)],
            [Counter.DefinitionId, "no-other-definitions:", 0, generation, known])!;

    /// <summary>The entries of a field list read from its start: field (base64) -> '+' or '-'.</summary>
    private static Dictionary<string, char> Entries(byte[] list)
    {
        var entries = new Dictionary<string, char>(StringComparer.Ordinal);
        for (var pos = 0; pos < list.Length;)
        {
            var length = BinaryPrimitives.ReadInt32LittleEndian(list.AsSpan(pos + 1));
            entries.Add(Convert.ToBase64String(list, pos + 5, length), (char)list[pos]);
            pos += 5 + length;
        }

        return entries;
    }

    private static string[] Shown(BackendConfig reader) =>
        [.. Collect(reader, [Counter])[0].Select(v => $"{v.LabelValues[0]}={v.Value}").Order(StringComparer.Ordinal)];
}
