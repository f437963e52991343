namespace Metrics.Backends.Redis;

/// <summary>The Lua scripts the backend runs; each runs atomically on the server.</summary>
internal static class Scripts
{
    /// <summary>
    /// Applies one writer's batch to one metric family's hash, once, and records the family's definition.
    /// KEYS[1] the family's data hash under one definition, KEYS[2] the writer's last-applied-sequence marker,
    /// KEYS[3] the name's definitions hash (all three share the name's hash tag, so one slot).
    /// ARGV[1] the batch sequence, ARGV[2] the hash expiry in ms (0: none), ARGV[3] the marker expiry in ms,
    /// ARGV[4] the definition id, ARGV[5] the definition text,
    /// then per entry: field, mode ('a': add d; 's': set s then add d), payload (d, or s followed by d, as
    /// little-endian IEEE 754 doubles). Returns the stored value of every entry's field after the batch, in order,
    /// then the marker as it was before the batch ('0' when missing).
    /// </summary>
    /// <remarks>
    /// Arithmetic happens on Lua numbers, which are IEEE doubles, and values are stored as the 8 bytes of the double,
    /// so nothing is rounded through text (INCRBYFLOAT keeps 17 significant digits and refuses NaN and infinities).
    /// A sequence at or below the marker means the batch was applied before and its reply was lost: the values are
    /// returned unchanged, so a re-sent batch is never counted twice. The add is always made, as IEEE addition: a writer
    /// with nothing to add sends -0.0, which leaves every value (a stored -0.0 included) as it is and creates a missing
    /// field as 0, while an Inc(0) sends +0.0, which turns a stored -0.0 into +0.0.
    /// All parts of a histogram series that one observation touched are entries of one batch, so they land together.
    /// A marker below the last sequence Redis acknowledged to this writer means the server lost data it had stored
    /// (a restart without persistence, FLUSHALL, a failover to a replica that missed writes): the writer reports it.
    /// </remarks>
    public const string ApplyBatch = """
        local seq = tonumber(ARGV[1])
        local last = redis.call('GET', KEYS[2])
        local fresh = (not last) or tonumber(last) < seq
        local out = {}
        local n = 0
        for i = 6, #ARGV, 3 do
          local field = ARGV[i]
          local cur = redis.call('HGET', KEYS[1], field)
          if cur and #cur ~= 8 then
            return redis.error_reply('METRICS field of ' .. KEYS[1] .. ' does not hold an 8-byte double; the key is not a Metrics hash')
          end
          local stored = cur
          if fresh then
            local v
            local d
            if ARGV[i + 1] == 's' then
              v, d = struct.unpack('<dd', ARGV[i + 2])
            else
              d = struct.unpack('<d', ARGV[i + 2])
              if cur then v = struct.unpack('<d', cur) else v = 0 end
            end
            v = v + d
            local packed = struct.pack('<d', v)
            if packed ~= cur then
              redis.call('HSET', KEYS[1], field, packed)
            end
            stored = packed
          end
          n = n + 1
          out[n] = stored or struct.pack('<d', 0)
        end
        if fresh then
          redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
        end
        redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
        if tonumber(ARGV[2]) > 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          redis.call('PEXPIRE', KEYS[3], ARGV[2])
        end
        out[n + 1] = last or '0'
        return out
        """;

    /// <summary>
    /// Reads one metric family for a scrape: every field of its data hash under the scraper's definition, and the other
    /// definitions of the name that still hold data. KEYS[1] the data hash, KEYS[2] the name's definitions hash;
    /// ARGV[1] the scraper's definition id, ARGV[2] the prefix of the name's data keys (a data key is it followed by a
    /// definition id), ARGV[3] the hash expiry in ms (0: none).
    /// Returns { the HGETALL reply of KEYS[1]; id, text, id, text... of each other definition whose data hash exists }.
    /// </summary>
    /// <remarks>
    /// One script, so the fields are one atomic snapshot (every part of a histogram series together). A definition whose
    /// data hash has expired has no live writer left: its record is removed here, so a conflict ends when the other
    /// process's keys expire. The other data keys are built in the script rather than passed as KEYS because the
    /// reader cannot know them beforehand; they carry the same hash tag, so in Redis Cluster they are in the same slot.
    /// </remarks>
    public const string CollectFamily = """
        local data = redis.call('HGETALL', KEYS[1])
        if #data > 0 and tonumber(ARGV[3]) > 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[3])
        end
        local defs = redis.call('HGETALL', KEYS[2])
        local others = {}
        local n = 0
        for i = 1, #defs, 2 do
          local id = defs[i]
          if id ~= ARGV[1] then
            if redis.call('EXISTS', ARGV[2] .. id) == 1 then
              others[n + 1] = id
              others[n + 2] = defs[i + 1]
              n = n + 2
            else
              redis.call('HDEL', KEYS[2], id)
            end
          end
        end
        return { data, others }
        """;

    /// <summary>
    /// Reads one field of a family's hash together with one writer's last-applied-sequence marker, atomically.
    /// KEYS[1] the family hash, KEYS[2] the writer's marker (same hash tag, same slot); ARGV[1] the field.
    /// Returns { the stored 8 bytes, or an empty string when the field is missing; the marker, or '0' when missing }.
    /// </summary>
    /// <remarks>
    /// Read separately, a batch could be applied between the two reads; the writer then could not tell whether the
    /// value it read includes its in-flight batch, and would count that batch twice or not at all.
    /// </remarks>
    public const string ReadValue = """
        local v = redis.call('HGET', KEYS[1], ARGV[1])
        local m = redis.call('GET', KEYS[2])
        return { v or '', m or '0' }
        """;
}
