namespace Metrics.Backends.Redis;

/// <summary>The Lua scripts the backend runs; each runs atomically on the server.</summary>
internal static class Scripts
{
    /// <summary>
    /// Applies one writer's batch to one metric family's values, once, and records the family's definition.
    /// KEYS[1] the family's slot directory hash under one definition (field -> slot), KEYS[2] the writer's
    /// last-applied-sequence marker, KEYS[3] the name's definitions hash, KEYS[4] the family's values string, KEYS[5] its
    /// field list (all five share the name's hash tag, so one slot).
    /// ARGV[1] the batch sequence, ARGV[2] the hash expiry in ms (0: none), ARGV[3] the marker expiry in ms,
    /// ARGV[4] the definition id, ARGV[5] the definition text,
    /// then per entry: field, mode ('a': add d; 's': set s then add d), payload (d, or s followed by d, as
    /// little-endian IEEE 754 doubles). Returns the stored value of every entry's field after the batch, in order,
    /// then the marker as it was before the batch ('0' when missing).
    /// </summary>
    /// <remarks>
    /// <para>
    /// The layout is made for scrapes: every value of the family is one little-endian double at a stable offset (slot × 8)
    /// of one string, so a scrape reads all values as one bulk string instead of two per value; the field list names the
    /// slots in order and only grows, so a scraper reads it once and then only its new tail. The field list starts with an
    /// 8-byte generation (Redis TIME when it was created, renewed by every removal): a scraper that finds another
    /// generation reads the whole list again, which is how it learns of removed series and of keys created afresh. Each
    /// entry of the list is '+' (or '-' once removed), the field's length as a 4-byte little-endian integer, the field.
    /// The hash maps each live field to 's', its slot and the offset of its entry in the list (two 4-byte integers).
    /// </para>
    /// <para>
    /// Arithmetic happens on Lua numbers, which are IEEE doubles, and values are stored as the 8 bytes of the double,
    /// so nothing is rounded through text (INCRBYFLOAT keeps 17 significant digits and refuses NaN and infinities).
    /// A sequence at or below the marker means the batch was applied before and its reply was lost: the values are
    /// returned unchanged, so a re-sent batch is never counted twice. The add is always made, as IEEE addition: a writer
    /// with nothing to add sends -0.0, which leaves every value (a stored -0.0 included) as it is and creates a missing
    /// field as 0, while an Inc(0) sends +0.0, which turns a stored -0.0 into +0.0.
    /// All parts of a histogram series that one observation touched are entries of one batch, so they land together.
    /// A marker below the last sequence Redis acknowledged to this writer means the server lost data it had stored
    /// (a restart without persistence, FLUSHALL, a failover to a replica that missed writes): the writer reports it.
    /// </para>
    /// </remarks>
    public const string ApplyBatch = """
        local seq = tonumber(ARGV[1])
        local last = redis.call('GET', KEYS[2])
        local fresh = (not last) or tonumber(last) < seq
        local out = {}
        local n = 0
        local listLen = redis.call('STRLEN', KEYS[5])
        if fresh and listLen < 8 then
          -- Slots without their field list (part of the keys deleted by hand) cannot be named: start the family afresh.
          redis.call('DEL', KEYS[1], KEYS[4], KEYS[5])
          local t = redis.call('TIME')
          redis.call('SET', KEYS[5], struct.pack('<d', tonumber(t[1]) * 1000000 + tonumber(t[2])))
          listLen = 8
        end
        local valuesLen = redis.call('STRLEN', KEYS[4])
        for i = 6, #ARGV, 3 do
          local field = ARGV[i]
          local entry = redis.call('HGET', KEYS[1], field)
          local slot
          local cur
          if entry then
            if #entry ~= 9 or string.sub(entry, 1, 1) ~= 's' then
              return redis.error_reply('METRICS ' .. KEYS[1] .. ' is not a slot directory of the Metrics Redis backend (an older version of the backend or another program wrote it); use another KeyPrefix or delete the key')
            end
            slot = struct.unpack('<I4', entry, 2)
            if slot * 8 + 8 <= valuesLen then
              cur = redis.call('GETRANGE', KEYS[4], slot * 8, slot * 8 + 7)
            end
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
            if not slot then
              slot = valuesLen / 8
              redis.call('APPEND', KEYS[5], '+' .. struct.pack('<I4', #field) .. field)
              redis.call('HSET', KEYS[1], field, 's' .. struct.pack('<I4I4', slot, listLen))
              listLen = listLen + 5 + #field
            end
            if packed ~= cur then
              redis.call('SETRANGE', KEYS[4], slot * 8, packed)
              if slot * 8 + 8 > valuesLen then valuesLen = slot * 8 + 8 end
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
          redis.call('PEXPIRE', KEYS[4], ARGV[2])
          redis.call('PEXPIRE', KEYS[5], ARGV[2])
        end
        out[n + 1] = last or '0'
        return out
        """;

    /// <summary>
    /// Stores exemplars of one family, each unless the stored one of its field is later. KEYS[1] the family's exemplar
    /// hash (its data key followed by <c>:ex</c>, so the same hash tag and slot); ARGV[1] the hash expiry in ms (0: none);
    /// then per exemplar: field, payload (the timestamp and value as little-endian doubles, then the labels). Idempotent,
    /// so a batch whose reply was lost is simply sent again.
    /// </summary>
    public const string StoreExemplars = """
        for i = 2, #ARGV, 2 do
          local cur = redis.call('HGET', KEYS[1], ARGV[i])
          local newer = true
          if cur and #cur >= 8 then
            newer = struct.unpack('<d', ARGV[i + 1]) >= struct.unpack('<d', cur)
          end
          if newer then
            redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
          end
        end
        if tonumber(ARGV[1]) > 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[1])
        end
        return #ARGV
        """;

    /// <summary>
    /// Removes series from a per-process gauge family's data hash and their exemplars from its exemplar hash (families with
    /// one shared value per series are stored in slots and use <see cref="RemoveSlots"/>). KEYS[1] the data hash, KEYS[2]
    /// the exemplar hash (same hash tag); ARGV[1] the field prefix naming the series (its encoded label values, up to and
    /// including '#'), or '' for every series of the family; ARGV[2] '1' when data fields start with a writer id and '|'
    /// (per-process gauge modes; exemplar fields never do). Returns the number of data fields removed.
    /// </summary>
    /// <remarks>
    /// Label values are length-prefixed in a field, so a prefix ending at '#' matches the fields of exactly one series.
    /// A field is created again by the next batch that adds to it, starting from 0.
    /// </remarks>
    public const string RemoveFields = """
        if ARGV[1] == '' then
          redis.call('DEL', KEYS[2])
          return redis.call('DEL', KEYS[1])
        end
        for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do
          if string.sub(f, 1, #ARGV[1]) == ARGV[1] then
            redis.call('HDEL', KEYS[2], f)
          end
        end
        local n = 0
        for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
          local s = f
          if ARGV[2] == '1' then
            local bar = string.find(f, '|', 1, true)
            if bar then s = string.sub(f, bar + 1) end
          end
          if string.sub(s, 1, #ARGV[1]) == ARGV[1] then
            redis.call('HDEL', KEYS[1], f)
            n = n + 1
          end
        end
        return n
        """;

    /// <summary>
    /// Removes series from a family stored in slots (see <see cref="ApplyBatch"/>), and their exemplars. KEYS[1] the slot
    /// directory hash, KEYS[2] the values string, KEYS[3] the field list, KEYS[4] the exemplar hash; ARGV[1] the field
    /// prefix naming the series (its encoded label values, up to and including '#'), or '' for every series of the family.
    /// Returns the number of fields removed.
    /// </summary>
    /// <remarks>
    /// A removed field's entry in the list is marked '-' and its slot is not used again (the next update of the series
    /// takes a new slot, starting from 0); the list's generation changes, so every scraper reads the list again and
    /// stops showing the series. Removed slots stay in the strings until the family's keys expire or are removed whole.
    /// </remarks>
    public const string RemoveSlots = """
        if ARGV[1] == '' then
          redis.call('DEL', KEYS[4])
          return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
        end
        for _, f in ipairs(redis.call('HKEYS', KEYS[4])) do
          if string.sub(f, 1, #ARGV[1]) == ARGV[1] then
            redis.call('HDEL', KEYS[4], f)
          end
        end
        local n = 0
        for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
          if string.sub(f, 1, #ARGV[1]) == ARGV[1] then
            local entry = redis.call('HGET', KEYS[1], f)
            if #entry == 9 then
              local _, offset = struct.unpack('<I4I4', entry, 2)
              redis.call('SETRANGE', KEYS[3], offset, '-')
            end
            redis.call('HDEL', KEYS[1], f)
            n = n + 1
          end
        end
        if n > 0 and redis.call('STRLEN', KEYS[3]) >= 8 then
          local t = redis.call('TIME')
          local generation = tonumber(t[1]) * 1000000 + tonumber(t[2])
          local old = struct.unpack('<d', redis.call('GETRANGE', KEYS[3], 0, 7))
          if generation <= old then generation = old + 1 end
          redis.call('SETRANGE', KEYS[3], 0, struct.pack('<d', generation))
        end
        return n
        """;

    /// <summary>
    /// Reads a family stored in slots for a scrape, as one atomic snapshot, renews its expiry and finds the other
    /// definitions of the name that still hold data. KEYS[1] the slot directory hash, KEYS[2] the name's definitions hash,
    /// KEYS[3] the values string, KEYS[4] the field list; ARGV[1] the scraper's definition id, ARGV[2] the prefix of the
    /// name's data keys (a data key is it followed by a definition id), ARGV[3] the hash expiry in ms (0: none), ARGV[4]
    /// the generation of the field list the scraper knows ('' for none), ARGV[5] the length of the list it has read.
    /// Returns { generation ('' when the family has no data), offset the tail starts at, tail of the field list, values,
    /// { id, text, id, text... of each other definition whose data hash exists } }.
    /// </summary>
    /// <remarks>
    /// The scraper names slots from the list it has already read: only entries added since are sent, or the whole list
    /// (from offset 8) when its generation changed (a removal, or keys created afresh after a reset or an expiry). The
    /// values are one string, one bulk reply, copied once, instead of a Lua table or two bulk strings per value.
    /// PEXPIRE does nothing to a key that does not exist. A definition whose data hash has expired has no live writer
    /// left: its record is removed here, so a conflict ends when the other process's keys expire. The other data keys
    /// are built in the script rather than passed as KEYS because the reader cannot know them beforehand; they carry the
    /// same hash tag, so in Redis Cluster they are in the same slot.
    /// </remarks>
    public const string CollectSlots = ReadList + "\n" + """
        local expiry = tonumber(ARGV[3])
        if expiry > 0 then
          redis.call('PEXPIRE', KEYS[1], expiry)
          redis.call('PEXPIRE', KEYS[3], expiry)
          redis.call('PEXPIRE', KEYS[4], expiry)
        end
        local generation, from, tail = readList(KEYS[4], ARGV[4], ARGV[5])
        local values = redis.call('GET', KEYS[3]) or ''
        """ + "\n" + OtherDefinitions + "\n" + """
        return { generation, from, tail, values, others }
        """;

    // The other definitions of the name that still hold data (KEYS[2] the definitions hash, ARGV[1] the reader's
    // definition id, ARGV[2] the data key prefix); records of expired ones are removed. Leaves them in 'others'.
    private const string OtherDefinitions = """
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
        """;

    // Redis TIME as milliseconds and microseconds: one clock for every host, so deadlines and write times compare.
    private const string Now = """
        local t = redis.call('TIME')
        local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local nowUs = tonumber(t[1]) * 1000000 + tonumber(t[2])
        """;

    /// <summary>
    /// Stores one writer's own values of a per-process gauge family (LiveSum, Max, LiveMax, Min, LiveMin,
    /// LiveMostRecent, LivePerProcess) and renews its liveness deadline.
    /// KEYS[1] the family's data hash, KEYS[2] its liveness hash (writer id -> deadline in Redis ms), KEYS[3] the name's
    /// definitions hash. ARGV[1] the writer id, ARGV[2] the heartbeat timeout in ms, ARGV[3] the hash expiry in ms (0: none),
    /// ARGV[4] the definition id, ARGV[5] the definition text, then per entry: series field, value (8-byte little-endian double).
    /// Each entry is stored as field '&lt;writer id&gt;|&lt;series field&gt;' = value and write time (Redis TIME, microseconds), 16 bytes.
    /// Returns 1 when the writer was alive before (its deadline had not passed), 0 when it was missing or expired.
    /// </summary>
    /// <remarks>
    /// Only this writer writes its fields and it sends absolute values, so a batch re-sent after a lost reply changes
    /// nothing and no sequence marker is needed. A 0 reply tells a writer that was declared dead (its fields may have been
    /// pruned by a scrape) or whose data Redis lost to send every value again.
    /// </remarks>
    public const string ApplyOwned = Now + "\n" + """
        local old = redis.call('HGET', KEYS[2], ARGV[1])
        local wasAlive = old and tonumber(old) > nowMs
        redis.call('HSET', KEYS[2], ARGV[1], nowMs + tonumber(ARGV[2]))
        local stamp = struct.pack('<d', nowUs)
        local prefix = ARGV[1] .. '|'
        for i = 6, #ARGV, 2 do
          redis.call('HSET', KEYS[1], prefix .. ARGV[i], ARGV[i + 1] .. stamp)
        end
        redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
        if tonumber(ARGV[3]) > 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[3])
          redis.call('PEXPIRE', KEYS[2], ARGV[3])
          redis.call('PEXPIRE', KEYS[3], ARGV[3])
        end
        if wasAlive then return 1 end
        return 0
        """;

    /// <summary>
    /// Renews one writer's liveness deadline on one per-process gauge family. KEYS[1] the liveness hash, KEYS[2] the data
    /// hash; ARGV[1] the writer id, ARGV[2] the heartbeat timeout in ms, ARGV[3] the hash expiry in ms (0: none).
    /// Returns 1 when the writer was alive before, 0 when its deadline had passed or it was missing (then it re-sends its values).
    /// </summary>
    public const string Heartbeat = Now + "\n" + """
        local old = redis.call('HGET', KEYS[1], ARGV[1])
        redis.call('HSET', KEYS[1], ARGV[1], nowMs + tonumber(ARGV[2]))
        if tonumber(ARGV[3]) > 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[3])
          redis.call('PEXPIRE', KEYS[2], ARGV[3])
        end
        if old and tonumber(old) > nowMs then return 1 end
        return 0
        """;

    /// <summary>
    /// Aggregates a per-process gauge family on the server, for a scrape (every series) or a <c>Get</c> (one series).
    /// KEYS[1] the data hash, KEYS[2] the name's definitions hash, KEYS[3] the liveness hash.
    /// ARGV[1] the reader's definition id, ARGV[2] the prefix of the name's data keys, ARGV[3] the hash expiry in ms,
    /// ARGV[4] how to combine ('sum', 'max', 'min' or 'recent'), ARGV[5] '1' to count live writers only, '0' to keep dead
    /// writers' last values, ARGV[6] the reader's writer id, ARGV[7] the one series field to read ('' for all), then per
    /// series of the reader: series field, its current value (8-byte double), '1' if it changed since its last flush else '0'.
    /// Returns { series field, aggregate (8-byte double), ... ; id, text, ... of other definitions with data }.
    /// </summary>
    /// <remarks>
    /// A writer is alive while its deadline (Redis TIME at its last heartbeat or flush plus the timeout) is in the future;
    /// the reader itself is alive. Dead writers' fields are removed here: in the Live modes they no longer count, in Max
    /// and Min their values are first folded into the series' archive field ('|' followed by the series field: an empty
    /// writer id), which keeps their contribution while the hash stays bounded by the writers alive at once. The reader's
    /// own values come from its arguments, so unflushed updates count; a changed one counts as written now.
    /// Max and Min follow .NET's Math.Max and Math.Min: NaN wins, +0 is above -0. 'recent' takes the latest write time,
    /// ties broken by writer id, so every reader picks the same one.
    /// </remarks>
    public const string CollectOwned = Now + "\n" + """
        local how = ARGV[4]
        local liveOnly = ARGV[5] == '1'
        local own = ARGV[6]
        local filter = ARGV[7]
        local function maxOf(a, b)
          if a ~= a then return a end
          if b ~= b then return b end
          if a == b then
            if a == 0 and 1 / a < 0 then return b end
            return a
          end
          if b > a then return b end
          return a
        end
        local function minOf(a, b)
          if a ~= a then return a end
          if b ~= b then return b end
          if a == b then
            if a == 0 and 1 / a > 0 then return b end
            return a
          end
          if b < a then return b end
          return a
        end
        local function combine(a, b)
          if how == 'max' then return maxOf(a, b) end
          if how == 'min' then return minOf(a, b) end
          return a + b
        end
        local agg = {}
        local order = {}
        local function add(series, v, ts, w)
          local a = agg[series]
          if not a then
            agg[series] = { v = v, ts = ts, w = w }
            order[#order + 1] = series
          elseif how == 'recent' then
            if ts > a.ts or (ts == a.ts and w > a.w) then
              a.v = v
              a.ts = ts
              a.w = w
            end
          else
            a.v = combine(a.v, v)
          end
        end
        local alive = {}
        local dead = {}
        local beats = redis.call('HGETALL', KEYS[3])
        for i = 1, #beats, 2 do
          if tonumber(beats[i + 1]) > nowMs then
            alive[beats[i]] = true
          elseif beats[i] ~= own then
            dead[#dead + 1] = beats[i]
          end
        end
        local fold = (not liveOnly) and (how == 'max' or how == 'min')
        local ownTs = {}
        local data = redis.call('HGETALL', KEYS[1])
        for i = 1, #data, 2 do
          local field = data[i]
          local bar = string.find(field, '|', 1, true)
          if bar and #data[i + 1] == 16 then
            local w = string.sub(field, 1, bar - 1)
            local series = string.sub(field, bar + 1)
            if filter == '' or series == filter then
              local v, ts = struct.unpack('<dd', data[i + 1])
              if w == own then
                ownTs[series] = ts
              elseif w == '' or alive[w] then
                add(series, v, ts, w)
              else
                if not liveOnly then
                  add(series, v, ts, w)
                end
                if fold then
                  local arch = '|' .. series
                  local old = redis.call('HGET', KEYS[1], arch)
                  local folded = v
                  if old then
                    folded = combine(struct.unpack('<d', old), v)
                  end
                  redis.call('HSET', KEYS[1], arch, struct.pack('<dd', folded, ts))
                end
                if liveOnly or fold then
                  redis.call('HDEL', KEYS[1], field)
                end
              end
            end
          end
        end
        if filter == '' then
          for _, w in ipairs(dead) do
            redis.call('HDEL', KEYS[3], w)
          end
        end
        for i = 8, #ARGV, 3 do
          local series = ARGV[i]
          if filter == '' or series == filter then
            local ts = ownTs[series]
            if ARGV[i + 2] == '1' or not ts then ts = nowUs end
            add(series, struct.unpack('<d', ARGV[i + 1]), ts, own)
          end
        end
        local out = {}
        for _, series in ipairs(order) do
          out[#out + 1] = series
          out[#out + 1] = struct.pack('<d', agg[series].v)
        end
        if #data > 0 and tonumber(ARGV[3]) > 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[3])
          redis.call('PEXPIRE', KEYS[3], ARGV[3])
        end
        """ + "\n" + OtherDefinitions + "\n" + """
        return { out, others }
        """;

    /// <summary>
    /// Reads one field of a family stored in slots together with one writer's last-applied-sequence marker, atomically.
    /// KEYS[1] the slot directory hash, KEYS[2] the writer's marker, KEYS[3] the values string (same hash tag, same slot);
    /// ARGV[1] the field. Returns { the stored 8 bytes, or an empty string when the field is missing; the marker, or '0'
    /// when missing }.
    /// </summary>
    /// <remarks>
    /// Read separately, a batch could be applied between the two reads; the writer then could not tell whether the
    /// value it read includes its in-flight batch, and would count that batch twice or not at all.
    /// </remarks>
    public const string ReadValue = """
        local v = ''
        local entry = redis.call('HGET', KEYS[1], ARGV[1])
        if entry then
          if #entry ~= 9 or string.sub(entry, 1, 1) ~= 's' then
            return redis.error_reply('METRICS ' .. KEYS[1] .. ' is not a slot directory of the Metrics Redis backend (an older version of the backend or another program wrote it); use another KeyPrefix or delete the key')
          end
          local slot = struct.unpack('<I4', entry, 2)
          v = redis.call('GETRANGE', KEYS[3], slot * 8, slot * 8 + 7)
        end
        local m = redis.call('GET', KEYS[2])
        return { v, m or '0' }
        """;

    /// <summary>
    /// Reads a family's field list for counting its series, from where the reader stopped. KEYS[1] the field list;
    /// ARGV[1] the generation the reader read (empty: none), ARGV[2] the list length it read. Returns the generation
    /// (empty when the family holds no data), the offset the tail starts at (8, the whole list, when the generation
    /// differs) and the tail. Touches no expiry: counting is not use.
    /// </summary>
    public const string ReadFieldList = ReadList + "\n" + """
        local generation, from, tail = readList(KEYS[1], ARGV[1], ARGV[2])
        return { generation, from, tail }
        """;

    // readList(list key, generation the reader read ('' for none), list length it read): the list's generation ('' when
    // the family holds no data), the offset its tail starts at (8, the whole list, when the generation is another) and
    // the tail, so a reader moves only the entries added since its last read (see FieldList for the entries).
    private const string ReadList = """
        local function readList(key, knownGeneration, knownLength)
          local listLen = redis.call('STRLEN', key)
          if listLen < 8 then return '', 8, '' end
          local generation = redis.call('GETRANGE', key, 0, 7)
          local from = 8
          local known = tonumber(knownLength)
          if generation == knownGeneration and known >= 8 and known <= listLen then from = known end
          local tail = ''
          if from < listLen then tail = redis.call('GETRANGE', key, from, listLen - 1) end
          return generation, from, tail
        end
        """;

    /// <summary>
    /// The distinct series of a per-process gauge family: KEYS[1] its data hash, whose fields are
    /// '&lt;writer id&gt;|&lt;series field&gt;' and '|&lt;series field&gt;' (archives). Returns each series field once.
    /// </summary>
    public const string ListOwnedSeries = """
        local seen = {}
        local out = {}
        for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do
          local bar = string.find(k, '|', 1, true)
          if bar then
            local s = string.sub(k, bar + 1)
            if not seen[s] then
              seen[s] = true
              out[#out + 1] = s
            end
          end
        end
        return out
        """;
}
