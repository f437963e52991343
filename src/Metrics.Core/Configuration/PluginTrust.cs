using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Metrics.Configuration;

/// <summary>
/// The checks made on a plugin folder before any of its code is loaded: nothing in it may lead outside it, and on Unix
/// nobody but this process's user or root may be able to change it.
/// </summary>
internal static class PluginTrust
{
    internal const string AllowUnsafePermissionsKey = "Metrics:AllowUnsafePluginPermissions";

    // Linux gives up after 40 links in one path (ELOOP); a longer chain is a loop or an attack.
    private const int MaxLinkHops = 40;

    private static StringComparison PathComparison => OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    /// <summary>
    /// Refuses a plugin folder in which a link, anywhere below it, resolves outside it, or whose deps.json names an
    /// asset outside it: the load context would otherwise open files from anywhere.
    /// </summary>
    public static void RefuseEscapes(string root, string folder, string name)
    {
        var realFolder = RealPath(folder);
        var stack = new Stack<string>();
        stack.Push(folder);
        while (stack.Count > 0)
        {
            var directory = stack.Pop();
            foreach (var entry in Directory.EnumerateFileSystemEntries(directory))
            {
                var info = new FileInfo(entry);
                var isDirectory = (info.Attributes & FileAttributes.Directory) != 0;
                if (info.LinkTarget is { } target)
                {
                    var real = RealPath(entry);
                    if (!IsInside(real, realFolder))
                    {
                        throw new MetricsConfigurationException(
                            $"'{entry}' is a link to '{target}', which resolves to '{real}', outside the plugin folder '{folder}'. The metrics host loads a plugin only from files inside its own folder, so the backend '{name}' was not loaded. Replace the link with a copy of the file, or remove it.");
                    }

                    // A link that stays inside points at something this walk reaches anyway; following it could loop.
                    continue;
                }

                if (isDirectory)
                {
                    stack.Push(entry);
                }
            }
        }

        RefuseDepsJsonEscapes(folder, name, root);
    }

    private static void RefuseDepsJsonEscapes(string folder, string name, string root)
    {
        var depsJson = Path.Combine(folder, name + ".deps.json");
        if (!File.Exists(depsJson))
        {
            return;
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(depsJson));
        }
        catch (JsonException e)
        {
            throw new MetricsConfigurationException(
                $"'{depsJson}' is not valid JSON ({e.Message}), so the metrics backend '{name}' cannot be loaded safely from the plugins folder '{root}'. Copy the backend's build output again.", e);
        }

        using (document)
        {
            if (!document.RootElement.TryGetProperty("targets", out var targets) || targets.ValueKind != JsonValueKind.Object)
            {
                return;
            }

            var withSeparator = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)) + Path.DirectorySeparatorChar;
            foreach (var target in targets.EnumerateObject().Where(t => t.Value.ValueKind == JsonValueKind.Object))
            {
                foreach (var library in target.Value.EnumerateObject().Where(l => l.Value.ValueKind == JsonValueKind.Object))
                {
                    foreach (var group in library.Value.EnumerateObject())
                    {
                        if (group.Name is not ("runtime" or "native" or "resources" or "runtimeTargets") || group.Value.ValueKind != JsonValueKind.Object)
                        {
                            continue;
                        }

                        foreach (var asset in group.Value.EnumerateObject())
                        {
                            var resolved = Path.GetFullPath(Path.Combine(withSeparator, asset.Name));
                            if (Path.IsPathRooted(asset.Name) || !resolved.StartsWith(withSeparator, PathComparison))
                            {
                                throw new MetricsConfigurationException(
                                    $"'{depsJson}' names the file '{asset.Name}' (library '{library.Name}'), which resolves to '{resolved}', outside the plugin folder '{folder}'. The metrics host loads a plugin only from files inside its own folder, so the backend '{name}' was not loaded. Rebuild the plugin so that its deps.json names only files in its folder.");
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>Whether <paramref name="path"/>, once every link in it is resolved, lies inside <paramref name="folder"/>.</summary>
    public static bool IsInsideReally(string path, string folder) => IsInside(RealPath(path), RealPath(folder));

    private static bool IsInside(string realPath, string realFolder) =>
        string.Equals(Path.TrimEndingDirectorySeparator(realPath), Path.TrimEndingDirectorySeparator(realFolder), PathComparison)
        || realPath.StartsWith(Path.TrimEndingDirectorySeparator(realFolder) + Path.DirectorySeparatorChar, PathComparison);

    /// <summary>
    /// The path with every link in every component resolved, as realpath(3) gives it; a component that does not
    /// exist is kept as written.
    /// </summary>
    public static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        var root = Path.GetPathRoot(full) ?? string.Empty;
        var pending = new Queue<string>(full[root.Length..].Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries));
        var current = root;
        var hops = 0;
        while (pending.Count > 0)
        {
            var next = Path.Combine(current, pending.Dequeue());
            var target = new FileInfo(next).LinkTarget;
            if (target is null)
            {
                current = next;
                continue;
            }

            if (++hops > MaxLinkHops)
            {
                throw new MetricsConfigurationException($"'{path}' goes through more than {MaxLinkHops} symbolic links (a loop?). Replace the links in the plugins folder with real files.");
            }

            // Restart from the link's target, then walk what is left of the original path.
            var resolved = Path.GetFullPath(target, current);
            var rest = pending.ToArray();
            root = Path.GetPathRoot(resolved) ?? string.Empty;
            pending = new Queue<string>(resolved[root.Length..].Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries).Concat(rest));
            current = root;
        }

        return current;
    }

    /// <summary>
    /// On Unix, refuses plugin code that someone other than this process's user or root could change: the plugins
    /// folder, the plugin folder and every folder and file inside it must be owned by one of them and not be writable
    /// by group or others. Windows ACLs are not checked.
    /// </summary>
    public static void RefuseWritableCode(string root, string folder)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var self = GetEUid();

        // The plugins folder may be a link (to a mounted volume, say): what matters is the folder it leads to.
        Check(RealPath(root), self);
        Check(folder, self);
        var stack = new Stack<string>();
        stack.Push(folder);
        while (stack.Count > 0)
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(stack.Pop()))
            {
                // A link's own mode means nothing, and following one could loop; its target is inside the folder
                // (RefuseEscapes ran first), so this walk reaches and checks it anyway.
                var info = new FileInfo(entry);
                if (info.LinkTarget is not null)
                {
                    continue;
                }

                Check(entry, self);
                if ((info.Attributes & FileAttributes.Directory) != 0)
                {
                    stack.Push(entry);
                }
            }
        }
    }

    private static void Check(string path, uint self)
    {
        var (owner, mode) = LStat(path);
        var writable = mode & 0b000_010_010;
        var badOwner = owner != self && owner != 0;
        if (writable == 0 && !badOwner)
        {
            return;
        }

        var problems = new List<string>();
        var fixes = new List<string>();
        var quoted = ShellQuote(path);
        if (badOwner)
        {
            problems.Add($"is owned by uid {owner}, neither this process's user (uid {self}) nor root");
            fixes.Add($"chown {self} {quoted}");
        }

        if (writable != 0)
        {
            var who = writable switch
            {
                0b000_010_000 => "its group",
                0b000_000_010 => "others",
                _ => "its group and others",
            };
            problems.Add($"is writable by {who}");
            fixes.Add($"chmod go-w {quoted}");
        }

        throw new MetricsConfigurationException(
            $"'{path}' (owner uid {owner}, mode {Convert.ToString(mode & 0b111_111_111_111, 8).PadLeft(4, '0')}) {string.Join(" and ", problems)}. " +
            $"Whoever can change a plugin's files can run code in this application, so the metrics host does not load plugins from it. " +
            $"Fix it with '{string.Join(" && ", fixes)}', or, where ownership and modes cannot be controlled (some containers), set {AllowUnsafePermissionsKey}=true to skip this check.");
    }

    private static string ShellQuote(string path) =>
        path.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '_' or '-' or '+' or ',' or ':' or '@')
            ? path
            : "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static (uint Owner, int Mode) LStat(string path)
    {
        // libSystem.Native ships with every .NET runtime and is what File.GetUnixFileMode itself calls; its FileStatus
        // begins with Flags, Mode, Uid, Gid on every Unix, which libc's struct stat does not. The buffer is larger
        // than FileStatus so that a field appended by a later runtime cannot overrun it.
        var status = new byte[512];
        var utf8 = new byte[System.Text.Encoding.UTF8.GetByteCount(path) + 1];
        System.Text.Encoding.UTF8.GetBytes(path, utf8);
        if (SystemNativeLStat(utf8, status) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new MetricsConfigurationException(
                $"The metrics host could not read the owner and mode of '{path}' (errno {errno.ToString(CultureInfo.InvariantCulture)}). Check that the plugins folder is readable by this process.");
        }

        return (BitConverter.ToUInt32(status, 8), BitConverter.ToInt32(status, 4));
    }

    private static uint GetEUid() => SystemNativeGetEUid();

    // DllImport rather than LibraryImport: byte arrays are blittable and pinned, so no generated (unsafe) marshalling is needed.
    [DllImport("libSystem.Native", EntryPoint = "SystemNative_LStat", SetLastError = true)]
    private static extern int SystemNativeLStat(byte[] path, [Out] byte[] status);

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_GetEUid")]
    private static extern uint SystemNativeGetEUid();
}
