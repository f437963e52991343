using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Metrics.Backends.SharedMemory;

/// <summary>
/// How a store file is opened, created, validated, watched and left: nothing in the file is trusted, and a file that
/// is truncated, replaced or deleted under the process is detected and replaced by a valid store.
/// </summary>
internal sealed unsafe partial class SharedMemoryStore
{
    private const int OwnerOnly = 0x180; // 0600
    private const int GroupOrOtherWrite = 0x12; // 0022
    private const int RenameNoReplace = 1;

    private static readonly string MetricsResetsName = "metrics_backend_store_resets_total";

    /// <summary>
    /// Opens the store at <paramref name="options"/>' path, creating it when there is none. An existing file is used
    /// only when it is a regular file (not a link), owned by this user, writable by nobody else, and a complete, valid
    /// store; otherwise the exception names the file and what is wrong with it.
    /// </summary>
    private static SharedMemoryStore Open(StoreOptions options)
    {
        if (!OperatingSystem.IsLinux())
        {
            return OpenInPlace(options);
        }

        PrepareDirectory(options);
        for (var attempt = 0; ; attempt++)
        {
            var fd = Native.Open(options.Path, Native.ORdWr | Native.ONoFollow | Native.OCloExec, 0);
            if (fd >= 0)
            {
                var file = Wrap(fd);
                SharedMemoryStore? store = null;
                try
                {
                    var identity = CheckFile(options, fd);
                    store = new SharedMemoryStore(options, file);
                    store.Attach(identity);
                    return store;
                }
                catch
                {
                    store?.Abandon();
                    file.Dispose();
                    throw;
                }
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno == Native.ELoop)
            {
                throw LinkRefused(options);
            }

            if (errno != Native.ENoEnt)
            {
                throw new BackendConfigException(options.Key(StoreOptions.PathKey), $"The shared-memory metrics store '{options.Path}' cannot be opened for reading and writing (errno {errno}: {Marshal.GetPInvokeErrorMessage(errno)}). Set '{options.Key(StoreOptions.PathKey)}' to a file in a directory this user can write.");
            }

            // Another process may create it between our attempts; it then exists, and the next attempt opens it.
            if (CreateNew(options, replacing: false) is { } created)
            {
                return created;
            }

            if (attempt > 100)
            {
                throw new IOException($"The shared-memory metrics store '{options.Path}' kept appearing and disappearing while this process opened it; something else is creating and deleting it.");
            }
        }
    }

    /// <summary>
    /// Creates a complete store in a new file beside the path (mode 0600, never through a link) and renames it into
    /// place, so no process ever sees a half-initialized store at the path. Without <paramref name="replacing"/> it
    /// returns null when another process created the path first; with it, it replaces the file at the path.
    /// </summary>
    private static SharedMemoryStore? CreateNew(StoreOptions options, bool replacing)
    {
        var temporary = $"{options.Path}.{Environment.ProcessId}.{Random.Shared.NextInt64():x}.new";
        var fd = Native.Open(temporary, Native.ORdWr | Native.OCreat | Native.OExcl | Native.ONoFollow | Native.OCloExec, OwnerOnly);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new BackendConfigException(options.Key(StoreOptions.PathKey), $"The shared-memory metrics store '{options.Path}' cannot be created: creating '{temporary}' failed (errno {errno}: {Marshal.GetPInvokeErrorMessage(errno)}). Set '{options.Key(StoreOptions.PathKey)}' to a file in a directory this user can write.");
        }

        var file = Wrap(fd);
        SharedMemoryStore? store = null;
        var placed = false;
        try
        {
            store = new SharedMemoryStore(options, file);
            store.EnsureFileCovers(options.InitialSize);
            store.WriteNewHeader();
            if (replacing)
            {
                if (Native.Rename(temporary, options.Path) != 0)
                {
                    throw new IOException($"Replacing the damaged shared-memory metrics store '{options.Path}' failed (errno {Marshal.GetLastPInvokeError()}).");
                }

                placed = true;
            }
            else
            {
                placed = PlaceWithoutReplacing(temporary, options.Path);
                if (!placed)
                {
                    store.Abandon();
                    file.Dispose();
                    return null;
                }
            }

            if (Native.StatFd(fd, out var identity) != 0)
            {
                throw new IOException($"Reading the identity of the new shared-memory metrics store '{options.Path}' failed (errno {Marshal.GetLastPInvokeError()}).");
            }

            store.Adopt(identity);
            return store;
        }
        catch
        {
            store?.Abandon();
            file.Dispose();
            throw;
        }
        finally
        {
            if (!placed || !replacing)
            {
                Native.Unlink(temporary);
            }
        }
    }

    /// <summary>Moves the complete new store to the path unless a file is there already; false when one is.</summary>
    private static bool PlaceWithoutReplacing(string temporary, string path)
    {
        if (RenameAt2(Native.AtFdCwd, temporary, Native.AtFdCwd, path, RenameNoReplace) == 0)
        {
            return true;
        }

        var errno = Marshal.GetLastPInvokeError();
        if (errno == Native.EExist)
        {
            return false;
        }

        // A file system without RENAME_NOREPLACE: link() never replaces either; the caller removes the temporary name.
        if (Native.Link(temporary, path) == 0)
        {
            return true;
        }

        errno = Marshal.GetLastPInvokeError();
        return errno == Native.EExist ? false : throw new IOException($"Placing the new shared-memory metrics store at '{path}' failed (errno {errno}: {Marshal.GetPInvokeErrorMessage(errno)}).");
    }

    [DllImport("libc", EntryPoint = "renameat2", SetLastError = true, CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
#pragma warning disable SYSLIB1054 // One call; LibraryImport would need a second partial declaration for the same effect.
    private static extern int RenameAt2(int fromDir, string from, int toDir, string to, uint flags);
#pragma warning restore SYSLIB1054

    private static FileStream Wrap(int fd) => new(new SafeFileHandle(fd, ownsHandle: true), FileAccess.ReadWrite, 1);

    /// <summary>
    /// Refuses a file another user could have planted or could change: not a regular file, owned by another user,
    /// writable by group or others, or with a second name (a hard link to someone's file).
    /// </summary>
    private static FileIdentity CheckFile(StoreOptions options, int fd)
    {
        if (Native.StatFd(fd, out var identity) != 0)
        {
            throw new IOException($"Reading the owner and mode of the shared-memory metrics store '{options.Path}' failed (errno {Marshal.GetLastPInvokeError()}).");
        }

        var key = options.Key(StoreOptions.PathKey);
        var euid = Native.GetEuid();
        var what = $"'{options.Path}' (owner uid {identity.Uid}, mode {identity.Permissions})";
        if (!identity.IsRegularFile)
        {
            throw new BackendConfigException(key, $"The shared-memory metrics store {what} is not a regular file, so it was not opened. Remove it, or set '{key}' to another file.");
        }

        if (identity.Uid != euid)
        {
            throw new BackendConfigException(key, $"The shared-memory metrics store {what} is owned by uid {identity.Uid}, not by this process's user (uid {euid}). A file another user created could be read or changed by that user, so it was not opened. Remove it ('rm {options.Path}'), or, if it is this application's store, fix it with 'chown {euid} {options.Path}'; or set '{key}' to another file.");
        }

        if ((identity.Mode & GroupOrOtherWrite) != 0)
        {
            var by = (identity.Mode & 0x10) != 0 && (identity.Mode & 0x2) != 0 ? "its group and by others" : (identity.Mode & 0x10) != 0 ? "its group" : "others";
            throw new BackendConfigException(key, $"The shared-memory metrics store {what} is writable by {by}, who could change or damage this application's metrics, so it was not opened. Fix it with 'chmod 600 {options.Path}', or remove it.");
        }

        if (identity.Links != 1)
        {
            throw new BackendConfigException(key, $"The shared-memory metrics store {what} has {identity.Links} names (hard links), so it may be another file linked there; it was not opened. Remove it ('rm {options.Path}'), or set '{key}' to another file.");
        }

        return identity;
    }

    private static BackendConfigException LinkRefused(StoreOptions options)
    {
        var key = options.Key(StoreOptions.PathKey);
        string target;
        try
        {
            target = new FileInfo(options.Path).LinkTarget ?? "?";
        }
        catch (IOException)
        {
            target = "?";
        }

        return new BackendConfigException(key, $"The shared-memory metrics store '{options.Path}' is a symbolic link (to '{target}'). The backend never follows a link at the store path: in a shared directory another user could plant one to make this process overwrite the file it points to. Remove the link ('rm {options.Path}'), or set '{key}' to a path that is not a link.");
    }

    /// <summary>
    /// Creates the store's directory (0700) when it is missing. The default directory, <c>/dev/shm/metrics-&lt;uid&gt;</c>,
    /// sits in a directory every user can write, so it must be a real directory of this user that nobody else can write.
    /// </summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static void PrepareDirectory(StoreOptions options)
    {
        var directory = System.IO.Path.GetDirectoryName(options.Path);
        if (string.IsNullOrEmpty(directory))
        {
            return;
        }

        if (!Directory.Exists(directory))
        {
            try
            {
                Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new BackendConfigException(options.Key(StoreOptions.PathKey), $"The directory '{directory}' of the shared-memory metrics store cannot be created ({e.Message}). Set '{options.Key(StoreOptions.PathKey)}' to a file in a writable directory.", e);
            }
        }

        if (!options.IsDefaultPath)
        {
            return;
        }

        if (Native.StatPath(directory, out var identity) != 0)
        {
            throw new IOException($"Reading the owner and mode of '{directory}' failed (errno {Marshal.GetLastPInvokeError()}).");
        }

        var euid = Native.GetEuid();
        var key = options.Key(StoreOptions.PathKey);
        if (!identity.IsDirectory || identity.Uid != euid || (identity.Mode & GroupOrOtherWrite) != 0)
        {
            var problem = identity.IsSymbolicLink ? "is a symbolic link"
                : !identity.IsDirectory ? "is not a directory"
                : identity.Uid != euid ? $"is owned by uid {identity.Uid}, not by this process's user (uid {euid})"
                : "is writable by group or others";
            throw new BackendConfigException(key, $"The directory of the default shared-memory metrics stores '{directory}' (owner uid {identity.Uid}, mode {identity.Permissions}) {problem}, so another user could control the stores in it; nothing was opened. Remove it ('rm -r {directory}') so that it is created again with mode 0700, or set '{key}' to a store file in a directory only this user can write.");
        }
    }

    /// <summary>The store on platforms without the Linux calls: the file is opened or created in place and initialized under the init lock.</summary>
    private static SharedMemoryStore OpenInPlace(StoreOptions options)
    {
        var directory = System.IO.Path.GetDirectoryName(options.Path);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        FileStream file;
        try
        {
            file = new FileStream(options.Path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.None);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BackendConfigException(options.Key(StoreOptions.PathKey), $"The shared-memory metrics store '{options.Path}' cannot be opened for reading and writing ({e.Message}). Set '{options.Key(StoreOptions.PathKey)}' to a file in a writable directory shared by the processes.", e);
        }

        var store = new SharedMemoryStore(options, file);
        try
        {
            store._knownLength = options.MaxSize;
            store.LockInit();
            try
            {
                if (Volatile.Read(ref store.Header<ulong>(HeaderMagic)) != Magic)
                {
                    store.WriteNewHeader();
                }

                store.Attach(new FileIdentity(0, 0, 1, 0, Native.SIfReg, options.MaxSize));
            }
            finally
            {
                store.Unlock(InitLock);
            }

            return store;
        }
        catch
        {
            store.Abandon();
            file.Dispose();
            throw;
        }
    }

    private void LockInit()
    {
        var deadline = Environment.TickCount64 + 30_000;
        while (!TryLock(InitLock))
        {
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException($"Another process has held the initialization lock of the shared-memory metrics store '{Options.Path}' for 30 s.");
            }

            Thread.Sleep(1);
        }
    }

    /// <summary>Writes the header of a store nobody else can see yet; the magic word last.</summary>
    private void WriteNewHeader()
    {
        var dataStart = DataStart(_slotCount, _bucketCount);
        new Span<byte>(_base, (int)dataStart).Clear();
        Header<int>(HeaderVersion) = Version;
        Header<int>(HeaderSlotCount) = _slotCount;
        Header<long>(HeaderCapacity) = Capacity;
        Header<int>(HeaderBucketCount) = _bucketCount;
        Header<int>(HeaderDataStart) = (int)dataStart;
        // Never 0, so a zeroed header never passes for the store it replaced.
        Header<long>(HeaderGeneration) = Random.Shared.NextInt64(1, long.MaxValue);
        Header<long>(HeaderUsed) = dataStart;
        Volatile.Write(ref Header<ulong>(HeaderMagic), Magic);
    }

    /// <summary>Takes a store this process just created as its own: its identity and generation are what later checks compare with.</summary>
    private void Adopt(FileIdentity identity)
    {
        _identity = identity;
        _generation = Header<long>(HeaderGeneration);
        StartChecking();
    }

    /// <summary>
    /// Validates an existing store before anything else reads it: the header against the file's real length and this
    /// configuration, then every published entry (inside the used region, inside the file, no two overlapping).
    /// </summary>
    private void Attach(FileIdentity identity)
    {
        var length = identity.Size;
        if (length < HeaderSlots)
        {
            throw Corrupt($"the file is {length} bytes long, shorter than the {HeaderSlots}-byte header", refused: true);
        }

        if (Volatile.Read(ref Header<ulong>(HeaderMagic)) != Magic)
        {
            throw Corrupt("it does not start with the store's magic number: it is not a metrics store, or it was overwritten", refused: true);
        }

        if (Header<int>(HeaderVersion) != Version)
        {
            throw new InvalidDataException($"The shared-memory metrics store '{Options.Path}' has layout version {Header<int>(HeaderVersion)}, this backend writes version {Version}. Stop the processes using it and delete the file.");
        }

        Check(StoreOptions.MaxSizeKey, Header<long>(HeaderCapacity), Capacity);
        Check(StoreOptions.MaxProcessesKey, Header<int>(HeaderSlotCount), _slotCount);
        Check(StoreOptions.IndexBucketsKey, Header<int>(HeaderBucketCount), _bucketCount);
        var dataStart = DataStart(_slotCount, _bucketCount);
        if (Header<int>(HeaderDataStart) != dataStart)
        {
            throw Corrupt($"its header puts the entries at offset {Header<int>(HeaderDataStart)}, not {dataStart}", refused: true);
        }

        if (length < dataStart)
        {
            throw Corrupt($"the file is {length} bytes long, shorter than its {dataStart}-byte header and index: it was truncated", refused: true);
        }

        var used = UsedBytes;
        if (used < dataStart || used > Capacity || used % EntryAlignment != 0)
        {
            throw Corrupt($"its used size is {used}, outside {dataStart}..{Capacity}", refused: true);
        }

        // The length again, after `used` was read: other processes grow the file before they advance `used`, so only a
        // length taken after `used` is certain to cover it when nothing cut the file.
        if (OperatingSystem.IsLinux() && Native.StatFd(Fd, out var now) == 0)
        {
            length = now.Size;
        }

        if (used > length)
        {
            throw Corrupt($"the file is {length} bytes long but its header says {used} bytes are in use: it was truncated", refused: true);
        }

        _generation = Header<long>(HeaderGeneration);
        if (_generation == 0)
        {
            throw Corrupt("its generation number is 0", refused: true);
        }

        _identity = identity;
        Volatile.Write(ref _knownLength, length);
        ValidateEntries();
        StartChecking();

        void Check(string key, long stored, long configured)
        {
            if (stored != configured)
            {
                throw new BackendConfigException(Options.Key(key), $"The shared-memory metrics store '{Options.Path}' was created with {key} = {stored}, but '{Options.Key(key)}' is {configured}. Use {stored}, or stop every process using the store and delete the file to apply the new size.");
            }
        }
    }

    private void ValidateEntries()
    {
        var ranges = new List<(long Start, long End)>();
        for (var b = 0; b < _bucketCount; b++)
        {
            var index = Volatile.Read(ref Buckets[b]);
            while (index != 0)
            {
                var entry = EntryAt(index, refused: true);
                if ((*(uint*)(entry + EntryHash) & (uint)(_bucketCount - 1)) != b)
                {
                    throw Corrupt($"the entry at offset {(long)index * EntryAlignment} is chained in index bucket {b}, which its hash does not select", refused: true);
                }

                var start = (long)index * EntryAlignment;
                ranges.Add((start, start + ((long)*(int*)(entry + EntryUnits) * EntryAlignment)));
                if (ranges.Count > UsedBytes / EntryAlignment)
                {
                    throw Corrupt("the index has a cycle", refused: true);
                }

                index = Volatile.Read(ref *(int*)(entry + EntryNext));
            }
        }

        ranges.Sort();
        for (var i = 1; i < ranges.Count; i++)
        {
            if (ranges[i].Start < ranges[i - 1].End)
            {
                throw Corrupt($"the entries at offsets {ranges[i - 1].Start} and {ranges[i].Start} overlap", refused: true);
            }
        }
    }

    private byte* EntryAt(int index, bool refused)
    {
        try
        {
            return EntryAt(index);
        }
        catch (InvalidDataException e) when (refused)
        {
            throw new InvalidDataException(e.Message.Replace("; it was modified", ", so it was not opened; it was modified", StringComparison.Ordinal), e);
        }
    }

    private InvalidDataException Corrupt(string what, bool refused = false) =>
        new($"The shared-memory metrics store '{Options.Path}' is damaged ({what}){(refused ? ", so it was not opened" : string.Empty)}; it was modified by something other than this backend. Delete it ('rm {Options.Path}') and a new, empty store is created; processes still using the old file move to the new one by themselves.");

    private void StartChecking()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var interval = Options.CheckInterval;
        _checkTimer = new Timer(static state => ((SharedMemoryStore)state!).CheckOnTimer(), this, interval, interval);
    }

    private void CheckOnTimer()
    {
        try
        {
            if (!_released)
            {
                CheckedOrReplaced(this);
            }
        }
        catch (Exception e)
        {
            // A timer callback that throws ends the process; the next scrape reports the same failure to its caller.
            BackendLog.Write("SharedMemory", BackendLogLevel.Error, $"Metrics: SharedMemory store '{Options.Path}': checking the store file failed: {e.Message}", e);
        }
    }

    /// <summary>
    /// What is wrong with the file under this store, or null when it is still the file this process mapped, whole:
    /// the same inode at the path, still linked, at least as long as its used region, with the same generation.
    /// </summary>
    private string? Problem(out bool damaged)
    {
        damaged = false;
        if (!OperatingSystem.IsLinux() || _released)
        {
            return null;
        }

        if (Native.StatFd(Fd, out var current) != 0)
        {
            return null;
        }

        var atPathError = Native.StatPath(Options.Path, out var atPath);
        if (atPathError == 0 && !atPath.SameFileAs(_identity))
        {
            return "was replaced by another file";
        }

        if (current.Links == 0 || atPathError == Native.ENoEnt)
        {
            return "was deleted";
        }

        damaged = true;
        var dataStart = DataStart(_slotCount, _bucketCount);
        if (current.Size < dataStart)
        {
            return $"was truncated to {current.Size} bytes";
        }

        // The header lies inside the file now, so reading it cannot fault. The length is asked again after `used` is
        // read: the file is grown before `used` advances, so a length from before could be behind a growing store.
        var used = UsedBytes;
        if (Native.StatFd(Fd, out current) != 0)
        {
            return null;
        }

        if (current.Size < used)
        {
            return $"was truncated to {current.Size} bytes (it held {used})";
        }

        if (Volatile.Read(ref Header<ulong>(HeaderMagic)) != Magic || Header<int>(HeaderVersion) != Version || Header<long>(HeaderGeneration) != _generation)
        {
            return "had its header overwritten";
        }

        damaged = false;
        if (current.Size > Volatile.Read(ref _knownLength))
        {
            Volatile.Write(ref _knownLength, current.Size);
        }

        return null;
    }

    /// <summary>
    /// The store to use for <paramref name="store"/>'s file now: itself while its file is intact, otherwise a valid store
    /// at the same path (the damaged file replaced, or the new file opened), registered in its place. Called before
    /// every scrape and by the check timer.
    /// </summary>
    public static SharedMemoryStore CheckedOrReplaced(SharedMemoryStore store)
    {
        var problem = store.Problem(out var damaged);
        if (problem is null && !store._detached)
        {
            return store;
        }

        lock (ByPath)
        {
            if (!ByPath.TryGetValue(store.Options.Path, out var registered))
            {
                // Shut down meanwhile: nothing to replace.
                return store;
            }

            if (!ReferenceEquals(registered, store))
            {
                return registered._detached ? Reopen(registered) : registered;
            }

            if (!store._detached)
            {
                // Checked again under the lock: another thread may have replaced it already.
                problem = store.Problem(out damaged);
                if (problem is null)
                {
                    return store;
                }

                SharedMemoryStore? replacement = null;
                if (damaged)
                {
                    replacement = ReplaceDamaged(store);
                }

                store.Detach(damaged);
                store.Diagnostics.CountReset();
                BackendLog.Write(
                    "SharedMemory",
                    BackendLogLevel.Warning,
                    $"Metrics: SharedMemory store '{store.Options.Path}' {problem} by something other than this backend; this process stopped using that file and now uses {(replacement is null ? "the store at the same path" : "a new, empty store it created at the same path")}. Values created before move to it: their updates from now on are shared, what they counted before is lost; counted in {MetricsResetsName}.");
                if (replacement is not null)
                {
                    Replace(store, replacement);
                    return replacement;
                }
            }

            return Reopen(store);
        }
    }

    /// <summary>Opens whatever store is at the path now, in place of the detached <paramref name="store"/>.</summary>
    private static SharedMemoryStore Reopen(SharedMemoryStore store)
    {
        var opened = Open(store.Options);
        Replace(store, opened);
        return opened;
    }

    /// <summary>Registers <paramref name="replacement"/> for the path and for every configuration that used <paramref name="old"/>. Under the ByPath lock.</summary>
    private static void Replace(SharedMemoryStore old, SharedMemoryStore replacement)
    {
        ByPath[old.Options.Path] = replacement;
        foreach (var (config, store) in ByConfig)
        {
            if (ReferenceEquals(store, old))
            {
                ByConfig[config] = replacement;
            }
        }
    }

    /// <summary>
    /// Replaces a damaged file that is still at the path with a new store, under the damaged file's init lock so that
    /// of the processes noticing the damage at once, only the first replaces it; the others open its replacement.
    /// </summary>
    private static SharedMemoryStore? ReplaceDamaged(SharedMemoryStore store)
    {
        store.LockInit();
        try
        {
            if (Native.StatPath(store.Options.Path, out var atPath) != 0 || !atPath.SameFileAs(store._identity))
            {
                return null;
            }

            return CreateNew(store.Options, replacing: true);
        }
        finally
        {
            store.Unlock(InitLock);
        }
    }

    /// <summary>
    /// Stops using the file: closes it (dropping this process's locks on it, so other processes see this one gone) and
    /// moves this process's values off it. Values and the metrics API hold raw pointers into the mapping, so the address
    /// range stays mapped, but atomically (MAP_FIXED) replaced by private memory: the header and index as they could
    /// still be read, and every word of the entries holding <see cref="AtomicDouble.MovedCell"/>. Each update aimed at
    /// the old store from then on is refused by <see cref="AtomicDouble.TryAddToCell"/> or noticed by the value, which moves
    /// to the store now at the path; nothing ever faults on a page cut from the file again.
    /// </summary>
    private void Detach(bool damaged)
    {
        lock (_gate)
        {
            lock (_growGate)
            {
                _detached = true;
                _released = true;
                _checkTimer?.Dispose();
                if (_mapping is not null && Native.StatFd(Fd, out var current) == 0)
                {
                    // Every pointer this process handed out lies below the length it last knew (entries are bounded by it).
                    var known = Math.Min(AlignUp(Math.Max(Volatile.Read(ref _knownLength), current.Size), sizeof(long)), Capacity);
                    var dataStart = DataStart(_slotCount, _bucketCount);
                    var readable = damaged ? current.Size : known;
                    var header = (int)Math.Min(dataStart, readable);
                    var copy = new byte[header];
                    new ReadOnlySpan<byte>(_base, header).CopyTo(copy);
                    var address = Native.Mmap((nint)_base, (nuint)Capacity, Native.ProtReadWrite, Native.MapPrivate | Native.MapAnonymous | Native.MapFixed | Native.MapNoReserve, -1, 0);
                    if (address != (nint)_base)
                    {
                        throw new IOException($"Replacing the mapping of the shared-memory metrics store '{Options.Path}' failed (errno {Marshal.GetLastPInvokeError()}).");
                    }

                    copy.CopyTo(new Span<byte>(_base, header));
                    for (var offset = dataStart; offset < known; offset += int.MaxValue & ~7L)
                    {
                        var words = (int)(Math.Min(known - offset, int.MaxValue & ~7L) / sizeof(long));
                        new Span<long>(_base + offset, words).Fill(AtomicDouble.MovedCell);
                    }

                    Volatile.Write(ref _knownLength, Capacity);
                }

                _file.Dispose();
                _initLockFile?.Dispose();
            }
        }
    }

    /// <summary>Whether this process stopped using the store's file because it was truncated, replaced or deleted.</summary>
    public bool IsDetached => _detached;

    /// <summary>
    /// The store now at the path of the detached <paramref name="store"/>, opened if needed; null when the configuration
    /// was shut down since, or when the path holds nothing this process can use (logged).
    /// </summary>
    public static SharedMemoryStore? Successor(SharedMemoryStore store)
    {
        lock (ByPath)
        {
            if (!ByPath.TryGetValue(store.Options.Path, out var registered))
            {
                return null;
            }

            if (!registered._detached)
            {
                return registered;
            }

            try
            {
                return Reopen(registered);
            }
            catch (Exception e) when (e is BackendConfigException or InvalidDataException or IOException)
            {
                BackendLog.Write("SharedMemory", BackendLogLevel.Error, $"Metrics: SharedMemory store '{store.Options.Path}': no store can be opened in place of the file that was truncated, replaced or deleted ({e.Message}); values created before keep counting in this process only.", e);
                return null;
            }
        }
    }

    /// <summary>Releases a store that failed to open: nothing points into it yet, so its mapping goes at once.</summary>
    private void Abandon()
    {
        _released = true;
        _checkTimer?.Dispose();
        _mapping?.Dispose();
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _mappedFile!.Dispose();
        }
    }

    /// <summary>
    /// Deletes the store file <paramref name="options"/> names when no live process holds a slot in it. Processes that
    /// still have it open without a slot (scrapers) notice the deletion at their next check and use a new store.
    /// </summary>
    /// <returns>Whether a file was deleted.</returns>
    public static bool Delete(StoreOptions options)
    {
        lock (ByPath)
        {
            if (ByPath.ContainsKey(options.Path))
            {
                throw new InvalidOperationException($"The shared-memory metrics store '{options.Path}' is still open in this process under another configuration; shut that configuration down (ShutdownAsync) before resetting the store.");
            }

            FileStream file;
            if (OperatingSystem.IsLinux())
            {
                var fd = Native.Open(options.Path, Native.ORdWr | Native.ONoFollow | Native.OCloExec, 0);
                if (fd < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    return errno == Native.ENoEnt ? false : errno == Native.ELoop ? throw LinkRefused(options) : throw new IOException($"The shared-memory metrics store '{options.Path}' cannot be opened to reset it (errno {errno}: {Marshal.GetPInvokeErrorMessage(errno)}).");
                }

                file = Wrap(fd);
                try
                {
                    var identity = CheckFile(options, fd);
                    if (Native.StatPath(options.Path, out var atPath) != 0 || !atPath.SameFileAs(identity))
                    {
                        throw new IOException($"The shared-memory metrics store '{options.Path}' was replaced while it was being reset; try again.");
                    }
                }
                catch
                {
                    file.Dispose();
                    throw;
                }
            }
            else
            {
                if (!File.Exists(options.Path))
                {
                    return false;
                }

                file = new FileStream(options.Path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, 1);
            }

            using (file)
            {
                // Locks only: the file may be damaged, so nothing in it is read.
                var live = 0;
                // macOS has no record locks, so liveness cannot be known there: the store is deleted as asked.
                for (var i = 0; i < options.MaxProcesses && !OperatingSystem.IsMacOS(); i++)
                {
                    try
                    {
                        file.Lock(InitLock + 1 + i, 1);
                        file.Unlock(InitLock + 1 + i, 1);
                    }
                    catch (IOException)
                    {
                        live++;
                    }
                }

                if (live > 0)
                {
                    throw new InvalidOperationException($"The shared-memory metrics store '{options.Path}' is still used by {live} live process(es) holding a slot; stop them before resetting the store.");
                }

                File.Delete(options.Path);
                return true;
            }
        }
    }
}
