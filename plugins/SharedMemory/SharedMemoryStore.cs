using System.Collections.Concurrent;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Metrics.Backends.SharedMemory;

/// <summary>
/// One store file mapped into this process: a header, a table of process slots, a hash index and an
/// append-only region of 64-byte-aligned entries. See README.md for the layout and the crash-safety argument.
/// </summary>
/// <remarks>
/// <para>
/// The whole configured maximum size is mapped once and never remapped, so pointers into the mapping held by backend
/// instances stay valid; only the file under the mapping grows. The mapping is released by its handle's finalizer once
/// this object is unreachable, and every backend instance keeps a reference to its store: a value (and the raw
/// pointer a metric took from its value cell) can never outlive the memory it points into, even after a shutdown.
/// </para>
/// <para>
/// One open instance per file per process: POSIX record locks belong to the process, and closing any descriptor of
/// the file drops all of them, so the file is opened once and closed only by <see cref="Shutdown"/>, which releases
/// the process's slot on purpose; a later <see cref="For"/> opens a new instance.
/// </para>
/// </remarks>
internal sealed unsafe partial class SharedMemoryStore
{
    public const int EntryAlignment = 64;
    public const int EntryHeaderSize = 64;

    // Entry layout (bytes from the entry start).
    public const int EntryNext = 0;        // int32 index of the next entry in the bucket chain, 0 = end
    public const int EntryKeyLength = 4;   // int32
    public const int EntryHash = 8;        // uint32
    public const int EntryRole = 12;       // int32
    public const int EntrySlot = 16;       // int32
    public const int EntryUnits = 20;      // int32 size in 64-byte units
    public const int EntryRemoved = 24;    // int32, 1 while the series is removed and its values are still at their empty state
    public const int EntryValues = 32;     // four int64 words v0..v3
    public const int EntryKey = 64;

    /// <summary>The archive's "no value folded yet" marker: a signalling NaN no arithmetic produces.</summary>
    public const long EmptyArchive = 0x7FF0_0000_0000_0001;

    private const ulong Magic = 0x3130_4D48_5353_544D; // "MTSSHM01"
    // 2: the family definition joined every key, and schema records appeared.
    // 3: a generation number identifies each store file, created whole and then renamed into place.
    private const int Version = 3;

    // Header layout: hot words each on their own cache line.
    private const int HeaderMagic = 0;
    private const int HeaderVersion = 8;
    private const int HeaderSlotCount = 12;
    private const int HeaderCapacity = 16;
    private const int HeaderBucketCount = 24;
    private const int HeaderDataStart = 28;
    private const int HeaderEpoch = 32;
    private const int HeaderGeneration = 40;
    private const int HeaderUsed = 64;
    private const int HeaderSequence = 128;
    private const int HeaderSlots = 192;
    private const int SlotSize = 32;

    // Slot layout.
    private const int SlotEpoch = 0;  // int64, 0 = never used
    private const int SlotPid = 8;    // int32, informational only: liveness is the held lock, never the pid
    private const int SlotStarted = 16; // int64 Unix milliseconds, informational

    // Record locks live far beyond any file size, one byte each: the init lock, then one per slot.
    private const long InitLock = 1L << 40;

    private static readonly ConcurrentDictionary<BackendConfig, SharedMemoryStore> ByConfig = new();
    private static readonly Dictionary<string, SharedMemoryStore> ByPath = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, StoreDiagnostics> DiagnosticsByPath = new(StringComparer.Ordinal);

    private readonly FileStream _file;
    private readonly MappingHandle? _mapping;
    private readonly byte* _base;
    private readonly int _bucketCount;
    private readonly int _slotCount;
    private readonly object _gate = new();
    private readonly object _growGate = new();
    private long _knownLength;
    private int _mySlot = -1;
    private long _myEpoch;
    private long _refused;
    private FileStream? _initLockFile;
    private volatile bool _released;

    // Set once this process stopped using the file (it was truncated, replaced or deleted): the mapping stays, the file is closed.
    private volatile bool _detached;
    private long _generation;
    private FileIdentity _identity;
    private Timer? _checkTimer;

    // Every definition this process has created a value with, recorded again under a slot claimed later.
    private readonly ConcurrentDictionary<(string Name, string DefinitionId), MetricDescriptor> _definitions = new();

    // Kept so the mapping is never collected on platforms that use MemoryMappedFile.
    private readonly MemoryMappedFile? _mappedFile;
    private readonly MemoryMappedViewAccessor? _view;

    /// <summary>Maps <paramref name="file"/> (already opened and checked); the caller validates or initializes the header.</summary>
    private SharedMemoryStore(StoreOptions options, FileStream file)
    {
        Options = options;
        _bucketCount = options.IndexBuckets;
        _slotCount = options.MaxProcesses;
        _file = file;
        if (OperatingSystem.IsLinux())
        {
            // The whole MaxSize is address space reserved once: the file grows under it, so growing never moves a value.
            var address = Native.Mmap(0, (nuint)options.MaxSize, Native.ProtReadWrite, Native.MapShared, Fd, 0);
            if (address == -1)
            {
                var errno = Marshal.GetLastPInvokeError();
                _file.Dispose();
                throw new IOException($"Mapping {options.MaxSize} bytes of '{options.Path}' failed (errno {errno}). Lower '{options.Key(StoreOptions.MaxSizeKey)}' if the address space is limited.");
            }

            _mapping = new MappingHandle(address, (nuint)options.MaxSize);
            _base = (byte*)address;
        }
        else
        {
            // Without mmap beyond the end of the file, the file takes its maximum size at once (sparse where the file system allows).
            _mappedFile = MemoryMappedFile.CreateFromFile(_file, null, options.MaxSize, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: true);
            _view = _mappedFile.CreateViewAccessor(0, options.MaxSize);
            byte* pointer = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            _base = pointer;
        }

        Diagnostics = DiagnosticsByPath.GetOrAdd(options.Path, static _ => new StoreDiagnostics());
    }


    public StoreOptions Options { get; }

    /// <summary>Counters and log state of this store file in this process; they outlive a shutdown and reopening.</summary>
    public StoreDiagnostics Diagnostics { get; }

    /// <summary>Series refused by this process because the store was full.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Bytes of the store in use (header and entries, including regions leaked by crashed allocations).</summary>
    public long UsedBytes => Volatile.Read(ref Header<long>(HeaderUsed));

    public int SlotCount => _slotCount;

    private int Fd => (int)_file.SafeFileHandle.DangerousGetHandle();

    private int* Buckets => (int*)(_base + HeaderSlots + ((long)_slotCount * SlotSize));

    private long Capacity => Options.MaxSize;

    public static long DataStart(int slots, int buckets) =>
        AlignUp(HeaderSlots + ((long)slots * SlotSize) + ((long)buckets * sizeof(int)), EntryAlignment);

    /// <summary>The store for a configuration, opened on first use; one per file per process whatever the configuration object.</summary>
    public static SharedMemoryStore For(BackendConfig config)
    {
        if (ByConfig.TryGetValue(config, out var store) && !store._detached)
        {
            return store;
        }

        var options = StoreOptions.Read(config);
        lock (ByPath)
        {
            if (!ByPath.TryGetValue(options.Path, out store) || store._detached)
            {
                // A detached store stays registered until a new one opens, so that a failed reopening is retried here.
                var opened = Open(options);
                if (store is not null)
                {
                    Replace(store, opened);
                }

                store = opened;
                ByPath[options.Path] = store;
            }
            else if (store.Options with { ConfigPath = options.ConfigPath } != options)
            {
                throw new BackendConfigException(
                    options.Key(StoreOptions.PathKey),
                    $"The store '{options.Path}' is already open in this process with other settings ({store.Options}); two configurations naming one store file must agree on its sizes.");
            }

            // Under the lock, so a concurrent Shutdown never sees the store half registered.
            ByConfig[config] = store;
        }

        return store;
    }

    /// <summary>The store open for <paramref name="config"/>, or null when it is not open (never opens one).</summary>
    public static SharedMemoryStore? Opened(BackendConfig config) => ByConfig.TryGetValue(config, out var store) ? store : null;

    /// <summary>The diagnostics of the store file <paramref name="config"/> names, whether or not it is open now.</summary>
    public static StoreDiagnostics DiagnosticsFor(BackendConfig config) =>
        Opened(config)?.Diagnostics ?? DiagnosticsByPath.GetOrAdd(StoreOptions.Read(config).Path, static _ => new StoreDiagnostics());

    /// <summary>
    /// Forgets <paramref name="config"/>; when no other open configuration names the same file, releases this process's
    /// slot and closes the file, so that the next <see cref="For"/> opens the store afresh. Does nothing for a
    /// configuration that is not open.
    /// </summary>
    public static void Shutdown(BackendConfig config)
    {
        lock (ByPath)
        {
            if (!ByConfig.TryRemove(config, out var store))
            {
                return;
            }

            if (ByConfig.Values.Any(s => ReferenceEquals(s, store)))
            {
                return;
            }

            if (ByPath.TryGetValue(store.Options.Path, out var registered) && ReferenceEquals(registered, store))
            {
                ByPath.Remove(store.Options.Path);
            }

            store.Release();
        }
    }

    public static ref long Word(byte* entry, int index) => ref Unsafe.AsRef<long>(entry + EntryValues + (index * sizeof(long)));

    /// <summary>Where an entry's payload starts: after its key, 8-byte aligned.</summary>
    public static int PayloadOffset(int keyLength) => (int)AlignUp(EntryKey + keyLength, sizeof(long));

    /// <summary>The payload of <paramref name="entry"/>, created with one (see <see cref="FindOrCreate"/>).</summary>
    public static byte* PayloadOf(byte* entry) => entry + PayloadOffset(*(int*)(entry + EntryKeyLength));

    /// <summary>The entry's index, as index links and value words refer to it.</summary>
    public int IndexOf(byte* entry) => (int)((entry - _base) / EntryAlignment);

    /// <summary>
    /// The entry an index word names when it is a published <paramref name="role"/> entry with at least
    /// <paramref name="payload"/> payload bytes; null otherwise (a damaged word is ignored, not trusted).
    /// </summary>
    public byte* EntryWithPayload(long index, EntryRole role, int payload)
    {
        if (index <= 0 || index > UsedBytes / EntryAlignment)
        {
            return null;
        }

        byte* entry;
        try
        {
            entry = EntryAt((int)index);
        }
        catch (InvalidDataException)
        {
            return null;
        }

        var keyLength = *(int*)(entry + EntryKeyLength);
        var size = (long)*(int*)(entry + EntryUnits) * EntryAlignment;
        return SeriesKey.RoleOf(KeyOf(entry)) == role && size >= PayloadOffset(keyLength) + payload ? entry : null;
    }

    public static ReadOnlySpan<byte> KeyOf(byte* entry) => new(entry + EntryKey, *(int*)(entry + EntryKeyLength));

    /// <summary>A store-wide increasing number: orders writes of most-recent gauges across processes.</summary>
    public long NextSequence() => Interlocked.Increment(ref Header<long>(HeaderSequence));

    /// <summary>Finds the published entry with <paramref name="key"/>, or null.</summary>
    public byte* Find(byte[] key)
    {
        var hash = Hash(key);
        var head = Volatile.Read(ref Buckets[hash & (uint)(_bucketCount - 1)]);
        return FindInChain(head, 0, key, hash);
    }

    /// <summary>
    /// Finds the entry with <paramref name="key"/> or appends and publishes it. Lock-free and crash-safe: the entry is
    /// written completely in a reserved region nobody else reads, then published by one CAS of the bucket's head.
    /// </summary>
    /// <param name="key">The encoded key.</param>
    /// <param name="initialWord0">The first value word of a new entry (the owner's epoch, or the empty-archive marker).</param>
    /// <param name="describe">Names the series in the store-full message.</param>
    /// <param name="payload">Bytes reserved after the key (zeroed), at <see cref="PayloadOf"/>: an exemplar's record.</param>
    public byte* FindOrCreate(byte[] key, long initialWord0, Func<string> describe, int payload = 0)
    {
        var hash = Hash(key);
        ref var bucket = ref Buckets[hash & (uint)(_bucketCount - 1)];
        var head = Volatile.Read(ref bucket);
        var found = FindInChain(head, 0, key, hash);
        if (found != null)
        {
            return found;
        }

        var size = AlignUp(payload == 0 ? EntryHeaderSize + key.Length : PayloadOffset(key.Length) + payload, EntryAlignment);
        var offset = Reserve(size, describe);
        var entry = _base + offset;
        if (payload != 0)
        {
            new Span<byte>(entry + PayloadOffset(key.Length), payload).Clear();
        }

        *(int*)(entry + EntryKeyLength) = key.Length;
        *(uint*)(entry + EntryHash) = hash;
        *(int*)(entry + EntryRole) = key[0];
        *(int*)(entry + EntrySlot) = SeriesKey.SlotOf(key);
        *(int*)(entry + EntryUnits) = (int)(size / EntryAlignment);
        Word(entry, 0) = initialWord0;
        key.CopyTo(new Span<byte>(entry + EntryKey, key.Length));
        var index = (int)(offset / EntryAlignment);
        while (true)
        {
            *(int*)(entry + EntryNext) = head;
            // The CAS is a full fence: every byte written above is visible before the entry is reachable.
            var seen = Interlocked.CompareExchange(ref bucket, index, head);
            if (seen == head)
            {
                return entry;
            }

            // Another process published first; if it published this very key, use its entry and leave ours unreachable.
            found = FindInChain(seen, head, key, hash);
            if (found != null)
            {
                return found;
            }

            head = seen;
        }
    }

    /// <summary>Every published series entry (schema records left out), walked through the index so a reserved but unpublished region is never read.</summary>
    public List<nint> Entries()
    {
        var series = new List<nint>();
        Walk(series, null);
        return series;
    }

    /// <summary>Every published entry, series into <paramref name="series"/> and schema records into <paramref name="schema"/> (skipped when null).</summary>
    public void Walk(List<nint> series, List<nint>? schema)
    {
        var seen = 0L;
        var limit = UsedBytes / EntryAlignment;
        for (var b = 0; b < _bucketCount; b++)
        {
            var index = Volatile.Read(ref Buckets[b]);
            while (index != 0)
            {
                var entry = EntryAt(index);
                if (SeriesKey.RoleOf(KeyOf(entry)) != SharedMemory.EntryRole.Schema)
                {
                    series.Add((nint)entry);
                }
                else
                {
                    schema?.Add((nint)entry);
                }

                if (++seen > limit)
                {
                    throw Corrupt("the index has a cycle");
                }

                index = Volatile.Read(ref *(int*)(entry + EntryNext));
            }
        }
    }

    /// <summary>
    /// Records that this process creates values with <paramref name="metric"/>'s definition of its name, as an entry
    /// owned by this process's slot, so other processes scraping another definition can tell that a live process
    /// disagrees. A process that finds no free slot records nothing until a slot frees up (its values still stay apart).
    /// </summary>
    public void RecordDefinition(MetricDescriptor metric)
    {
        if (OperatingSystem.IsMacOS())
        {
            // No record locks there, so no slot can prove its process alive: values stay apart by definition, unrecorded.
            return;
        }

        if (!_definitions.TryAdd((metric.Name, metric.DefinitionId), metric))
        {
            return;
        }

        // Pairs with the fence in TryClaimSlot: either this thread sees the slot, or the claiming thread sees this definition.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _mySlot) >= 0 || TryClaimSlot(out _, out _))
        {
            WriteDefinition(metric);
        }
    }

    /// <summary>This process's slot and epoch, claiming a free or dead slot on first use.</summary>
    /// <exception cref="SharedMemoryStoreFullException">Every slot is held by a live process.</exception>
    public (int Slot, long Epoch) ProcessSlot()
    {
        if (TryClaimSlot(out var slot, out var epoch))
        {
            return (slot, epoch);
        }

        Interlocked.Increment(ref _refused);
        throw new SharedMemoryStoreFullException(
            $"The shared-memory metrics store '{Options.Path}' has no free process slot: {_slotCount} live processes already hold one. Raise '{Options.Key(StoreOptions.MaxProcessesKey)}' (it only takes effect for a new store file).",
            Options.Key(StoreOptions.MaxProcessesKey));
    }

    /// <summary>This process's slot and epoch, claiming a free or dead slot on first use; false when every slot is held by a live process.</summary>
    public bool TryClaimSlot(out int slotIndex, out long slotEpoch)
    {
        if (Volatile.Read(ref _mySlot) >= 0)
        {
            (slotIndex, slotEpoch) = (_mySlot, _myEpoch);
            return true;
        }

        lock (_gate)
        {
            ThrowIfReleased();
            if (_mySlot >= 0)
            {
                (slotIndex, slotEpoch) = (_mySlot, _myEpoch);
                return true;
            }

            for (var i = 0; i < _slotCount; i++)
            {
                if (!TryLock(InitLock + 1 + i))
                {
                    continue;
                }

                // The lock is ours, so whoever held the slot before is gone (the kernel drops a dead process's locks,
                // SIGKILL included). A fresh epoch makes everything the previous holder owned recognisably stale,
                // however its pid compares with ours.
                var slot = _base + HeaderSlots + ((long)i * SlotSize);
                var epoch = Interlocked.Increment(ref Header<long>(HeaderEpoch));
                *(int*)(slot + SlotPid) = Environment.ProcessId;
                *(long*)(slot + SlotStarted) = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                Volatile.Write(ref *(long*)(slot + SlotEpoch), epoch);
                _myEpoch = epoch;
                Volatile.Write(ref _mySlot, i);
                Interlocked.MemoryBarrier();
                foreach (var metric in _definitions.Values)
                {
                    WriteDefinition(metric);
                }

                (slotIndex, slotEpoch) = (i, epoch);
                return true;
            }
        }

        (slotIndex, slotEpoch) = (-1, 0);
        return false;
    }

    /// <summary>The epochs of the processes alive now: those whose slot lock is held.</summary>
    public HashSet<long> LiveEpochs()
    {
        var live = new HashSet<long>();
        lock (_gate)
        {
            if (_released)
            {
                // The file is closed, and probing locks through another descriptor would drop the new instance's locks:
                // this instance no longer knows who is alive, so it counts nobody (not even this process, whose slot it gave up).
                return live;
            }

            for (var i = 0; i < _slotCount; i++)
            {
                var slot = _base + HeaderSlots + ((long)i * SlotSize);
                if (Volatile.Read(ref *(long*)(slot + SlotEpoch)) == 0)
                {
                    continue;
                }

                if (i == _mySlot)
                {
                    live.Add(_myEpoch);
                    continue;
                }

                if (TryLock(InitLock + 1 + i))
                {
                    Unlock(InitLock + 1 + i);
                    continue;
                }

                live.Add(Volatile.Read(ref *(long*)(slot + SlotEpoch)));
            }
        }

        return live;
    }

    /// <summary>The slot table, for diagnostics and tests.</summary>
    public IReadOnlyList<(int Slot, long Epoch, int Pid, bool Live)> Slots()
    {
        var live = LiveEpochs();
        var slots = new List<(int, long, int, bool)>();
        for (var i = 0; i < _slotCount; i++)
        {
            var slot = _base + HeaderSlots + ((long)i * SlotSize);
            var epoch = Volatile.Read(ref *(long*)(slot + SlotEpoch));
            if (epoch != 0)
            {
                slots.Add((i, epoch, *(int*)(slot + SlotPid), live.Contains(epoch)));
            }
        }

        return slots;
    }

    /// <summary>Overwrites the pid recorded in a slot: lets tests stand a recycled pid next to a dead slot.</summary>
    public void OverwriteSlotPid(int slot, int pid) => *(int*)(_base + HeaderSlots + ((long)slot * SlotSize) + SlotPid) = pid;

    private void WriteDefinition(MetricDescriptor metric)
    {
        var slot = _mySlot;
        var entry = FindOrCreate(SeriesKey.Schema(metric, slot), _myEpoch, metric.ToString);
        // The slot is ours, so an older epoch here belonged to a dead process: overwriting it is the whole take-over.
        Interlocked.Exchange(ref Word(entry, 0), _myEpoch);
    }

    /// <summary>Closes the file, which drops this process's record locks and so frees its slot; the mapping stays until unreachable.</summary>
    private void Release()
    {
        lock (_gate)
        {
            lock (_growGate)
            {
                _released = true;
                _checkTimer?.Dispose();
                _file.Dispose();
                _initLockFile?.Dispose();
            }
        }
    }

    private void ThrowIfReleased()
    {
        if (_released)
        {
            throw new ObjectDisposedException(nameof(SharedMemoryStore), $"The shared-memory metrics store '{Options.Path}' was shut down while a value was being created with it; create the value again.");
        }
    }

    private static long AlignUp(long value, long alignment) => (value + alignment - 1) & ~(alignment - 1);

    private static uint Hash(ReadOnlySpan<byte> key)
    {
        // FNV-1a: stable across processes and runtimes, unlike string.GetHashCode.
        var hash = 2166136261u;
        foreach (var b in key)
        {
            hash = (hash ^ b) * 16777619u;
        }

        return hash;
    }

    private ref T Header<T>(int offset)
        where T : unmanaged => ref Unsafe.AsRef<T>(_base + offset);

    private byte* FindInChain(int index, int stop, byte[] key, uint hash)
    {
        var steps = 0L;
        var limit = UsedBytes / EntryAlignment;
        while (index != 0 && index != stop)
        {
            var entry = EntryAt(index);
            if (*(uint*)(entry + EntryHash) == hash && KeyOf(entry).SequenceEqual(key))
            {
                return entry;
            }

            if (++steps > limit)
            {
                throw Corrupt("the index has a cycle");
            }

            index = Volatile.Read(ref *(int*)(entry + EntryNext));
        }

        return null;
    }

    private byte* EntryAt(int index)
    {
        var offset = (long)index * EntryAlignment;
        var dataStart = DataStart(_slotCount, _bucketCount);
        if (offset < dataStart || offset + EntryHeaderSize > Bound(offset + EntryHeaderSize))
        {
            throw Corrupt($"an index link points to offset {offset}, outside the entries (which end at {UsedBytes}, in a file of {Volatile.Read(ref _knownLength)} bytes)");
        }

        var entry = _base + offset;
        var keyLength = *(int*)(entry + EntryKeyLength);
        var size = (long)*(int*)(entry + EntryUnits) * EntryAlignment;
        if (keyLength < SeriesKey.PrefixLength || size < EntryKey + keyLength || offset + size > Bound(offset + size))
        {
            throw Corrupt($"the entry at offset {offset} has a key length of {keyLength} and a size of {size} bytes, which do not fit the entries");
        }

        return entry;
    }

    /// <summary>
    /// The end of what may be read: the used region, never past the file's real length. The length is asked of the
    /// kernel again only when <paramref name="end"/> lies past the length last seen (the file grew in another process).
    /// </summary>
    private long Bound(long end)
    {
        var used = UsedBytes;
        var known = Volatile.Read(ref _knownLength);
        if (end > known && end <= used && !_detached && OperatingSystem.IsLinux() && Native.StatFd(Fd, out var identity) == 0)
        {
            known = identity.Size;
            if (known > Volatile.Read(ref _knownLength))
            {
                Volatile.Write(ref _knownLength, known);
            }
        }

        return Math.Min(used, known);
    }

    private long Reserve(long size, Func<string> describe)
    {
        ref var used = ref Header<long>(HeaderUsed);
        while (true)
        {
            var current = Volatile.Read(ref used);
            if (current + size > Capacity)
            {
                Interlocked.Increment(ref _refused);
                throw new SharedMemoryStoreFullException(
                    $"The shared-memory metrics store '{Options.Path}' is full ({current} of {Capacity} bytes used), so the series {describe()} was not created. Raise '{Options.Key(StoreOptions.MaxSizeKey)}' (it takes effect for a new store file: stop the processes and delete the file), or reduce the number of series.",
                    Options.Key(StoreOptions.MaxSizeKey));
            }

            // The file covers the region before `used` can reach it: a published entry always lies inside the file, so
            // a reader bounded by `used` never touches a page past its end (unless something else cut the file).
            EnsureFileCovers(current + size);
            if (Interlocked.CompareExchange(ref used, current + size, current) == current)
            {
                return current;
            }
        }
    }

    private void EnsureFileCovers(long end)
    {
        if (end <= Volatile.Read(ref _knownLength) || !OperatingSystem.IsLinux())
        {
            return;
        }

        lock (_growGate)
        {
            if (_detached)
            {
                throw new ObjectDisposedException(nameof(SharedMemoryStore), $"The shared-memory metrics store '{Options.Path}' was replaced while a value was being created with it; create the value again.");
            }

            ThrowIfReleased();
            var length = RandomAccess.GetLength(_file.SafeFileHandle);
            if (length < end)
            {
                var target = Math.Min(Capacity, Math.Max(AlignUp(end, 64 * 1024), length * 2));
                // posix_fallocate only ever extends, so processes growing the file at once cannot shrink it under each other.
                var error = Native.PosixFallocate(Fd, length, target - length);
                if (error != 0)
                {
                    throw new IOException($"Growing the shared-memory metrics store '{Options.Path}' to {target} bytes failed (errno {error}); the file system may be full.");
                }

                length = target;
            }

            Volatile.Write(ref _knownLength, length);
        }
    }

    private bool TryLock(long position)
    {
        if (OperatingSystem.IsMacOS())
        {
            return TryLockWithoutRecordLocks(position);
        }

        try
        {
            _file.Lock(position, 1);
            return true;
        }
        catch (IOException)
        {
            // The documented way FileStream.Lock reports a region already locked by another process.
            return false;
        }
    }

    private void Unlock(long position)
    {
        if (OperatingSystem.IsMacOS())
        {
            _initLockFile?.Dispose();
            _initLockFile = null;
            return;
        }

        _file.Unlock(position, 1);
    }

    private bool TryLockWithoutRecordLocks(long position)
    {
        if (position != InitLock)
        {
            throw new PlatformNotSupportedException("Aggregated and per-process gauge modes of the shared-memory backend need file record locks, which .NET does not offer on macOS; use the Sum or MostRecent gauge modes there.");
        }

        try
        {
            // FileShare.None takes an exclusive flock on macOS: a stand-in for the init record lock.
            _initLockFile = new FileStream(Options.Path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }
}

/// <summary>What one store file reports in this process: schema conflicts counted and the families already logged.</summary>
internal sealed class StoreDiagnostics
{
    private long _schemaConflicts;

    /// <summary>Families a scrape found declared differently by a live process, one per family per collection.</summary>
    public long SchemaConflicts => Interlocked.Read(ref _schemaConflicts);

    /// <summary>Family names whose conflict this process has logged: one line per family per process.</summary>
    public ConcurrentDictionary<string, byte> LoggedFamilies { get; } = new(StringComparer.Ordinal);

    public void CountSchemaConflict() => Interlocked.Increment(ref _schemaConflicts);

    private long _resets;

    /// <summary>Times this process found its store file truncated, replaced, overwritten or deleted, and moved to a valid store.</summary>
    public long Resets => Interlocked.Read(ref _resets);

    public void CountReset() => Interlocked.Increment(ref _resets);
}

/// <summary>
/// Owns a Linux mapping: unmapped by the finalizer once the store and every value that points into it are unreachable,
/// so a shut-down store's memory is returned without a value ever touching unmapped memory.
/// </summary>
internal sealed class MappingHandle : SafeHandle
{
    private readonly nuint _length;

    public MappingHandle(nint address, nuint length)
        : base(0, ownsHandle: true)
    {
        SetHandle(address);
        _length = length;
    }

    public override bool IsInvalid => handle is 0 or -1;

    protected override bool ReleaseHandle() => Native.Munmap(handle, _length) == 0;
}
