using System.Runtime.InteropServices;

namespace Metrics.Backends.SharedMemory;

/// <summary>
/// The few libc calls the Linux store needs that .NET does not expose: a mapping larger than the file, growth that
/// never shrinks, opening without following links, and the identity (inode, owner, mode, size) of an open file.
/// </summary>
internal static unsafe partial class Native
{
    public const int ProtReadWrite = 0x1 | 0x2;
    public const int MapShared = 0x01;
    public const int MapPrivate = 0x02;
    public const int MapFixed = 0x10;
    public const int MapAnonymous = 0x20;
    public const int MapNoReserve = 0x4000;

    public const int ORdWr = 0x2;
    public const int OCreat = 0x40;
    public const int OExcl = 0x80;
    public const int OCloExec = 0x80000;

    public const int ENoEnt = 2;
    public const int EExist = 17;
    public const int ELoop = 40;

    public const int AtFdCwd = -100;
    public const int AtSymlinkNoFollow = 0x100;
    public const int AtEmptyPath = 0x1000;

    public const int SIfMt = 0xF000;
    public const int SIfReg = 0x8000;
    public const int SIfDir = 0x4000;
    public const int SIfLnk = 0xA000;

    // STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_UID | STATX_INO | STATX_SIZE
    private const uint StatxWanted = 0x1 | 0x2 | 0x4 | 0x8 | 0x100 | 0x200;

    /// <summary>O_NOFOLLOW differs between architectures (it is one of the few flags that do).</summary>
    public static int ONoFollow => RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x8000 : 0x20000;

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    public static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    public static partial int Munmap(nint address, nuint length);

    /// <summary>Returns 0 or an errno value (it does not set errno).</summary>
    [LibraryImport("libc", EntryPoint = "posix_fallocate")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    public static partial int PosixFallocate(int fd, long offset, long length);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    public static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "unlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    public static partial int Unlink(string path);

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    public static partial int Link(string existing, string created);

    [LibraryImport("libc", EntryPoint = "rename", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    public static partial int Rename(string from, string to);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    public static partial uint GetEuid();

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Statx(int dirFd, string path, int flags, uint mask, byte* buffer);

    /// <summary>The identity of the open file <paramref name="fd"/> (fstat), or an errno.</summary>
    public static int StatFd(int fd, out FileIdentity identity) => StatCore(fd, string.Empty, AtEmptyPath, out identity);

    /// <summary>The identity of <paramref name="path"/> itself, a link not followed (lstat), or an errno.</summary>
    public static int StatPath(string path, out FileIdentity identity) => StatCore(AtFdCwd, path, AtSymlinkNoFollow, out identity);

    private static int StatCore(int dirFd, string path, int flags, out FileIdentity identity)
    {
        // struct statx has one layout on every architecture, unlike struct stat.
        var buffer = stackalloc byte[256];
        if (Statx(dirFd, path, flags, StatxWanted, buffer) != 0)
        {
            identity = default;
            return Marshal.GetLastPInvokeError();
        }

        identity = new FileIdentity(
            Device: ((ulong)*(uint*)(buffer + 136) << 32) | *(uint*)(buffer + 140),
            Inode: *(ulong*)(buffer + 32),
            Links: *(uint*)(buffer + 16),
            Uid: *(uint*)(buffer + 20),
            Mode: *(ushort*)(buffer + 28),
            Size: *(long*)(buffer + 40));
        return 0;
    }
}

/// <summary>What the store checks about a file: which file it is, who owns it, who may write it and how long it is.</summary>
internal readonly record struct FileIdentity(ulong Device, ulong Inode, uint Links, uint Uid, int Mode, long Size)
{
    public bool IsRegularFile => (Mode & Native.SIfMt) == Native.SIfReg;

    public bool IsDirectory => (Mode & Native.SIfMt) == Native.SIfDir;

    public bool IsSymbolicLink => (Mode & Native.SIfMt) == Native.SIfLnk;

    public bool SameFileAs(FileIdentity other) => Device == other.Device && Inode == other.Inode;

    /// <summary>The permission bits in octal, as chmod and ls write them: <c>0600</c>.</summary>
    public string Permissions => "0" + Convert.ToString(Mode & 0xFFF, 8).PadLeft(3, '0');
}
