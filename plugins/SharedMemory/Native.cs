using System.Runtime.InteropServices;

namespace Metrics.Backends.SharedMemory;

/// <summary>The few libc calls the Linux store needs that .NET does not expose: a mapping larger than the file, and growth that never shrinks.</summary>
internal static partial class Native
{
    public const int ProtReadWrite = 0x1 | 0x2;
    public const int MapShared = 0x01;

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
}
