namespace Metrics.Backends.Redis;

/// <summary>The Lua scripts the backend runs; each runs atomically on the server.</summary>
internal static class Scripts
{
    /// <summary>
    /// Applies one writer's batch to one metric family's hash, once.
    /// KEYS[1] the family hash, KEYS[2] the writer's last-applied-sequence marker (same hash tag, same slot).
    /// ARGV[1] the batch sequence, ARGV[2] the hash expiry in ms (0: none), ARGV[3] the marker expiry in ms,
    /// then per entry: field, mode ('a': add d; 's': set s then add d), payload (d, or s followed by d, as
    /// little-endian IEEE 754 doubles). Returns the stored value of every entry's field after the batch, in order.
    /// </summary>
    /// <remarks>
    /// Arithmetic happens on Lua numbers, which are IEEE doubles, and values are stored as the 8 bytes of the double,
    /// so nothing is rounded through text (INCRBYFLOAT keeps 17 significant digits and refuses NaN and infinities).
    /// A sequence at or below the marker means the batch was applied before and its reply was lost: the values are
    /// returned unchanged, so a re-sent batch is never counted twice. An add of exactly zero leaves the stored value
    /// alone, which keeps a stored negative zero and only creates the field (as 0) when it is missing.
    /// </remarks>
    public const string ApplyBatch = """
        local seq = tonumber(ARGV[1])
        local last = redis.call('GET', KEYS[2])
        local fresh = (not last) or tonumber(last) < seq
        local out = {}
        local n = 0
        for i = 4, #ARGV, 3 do
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
            if d ~= 0 then v = v + d end
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
        if tonumber(ARGV[2]) > 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return out
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
