using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace Metrics.Hosting.Tests;

/// <summary>Builds throwaway plugins folders from the test plugins copied next to the test assembly.</summary>
internal sealed class PluginFolders : IDisposable
{
    public PluginFolders()
    {
        Root = Path.Combine(Path.GetTempPath(), "metrics-plugins-" + Guid.NewGuid().ToString("N"));
        Plugins = Path.Combine(Root, "plugins");
        Directory.CreateDirectory(Plugins);
        Harden(Root);
        Harden(Plugins);
    }

    public static string BuiltPlugins => Path.Combine(AppContext.BaseDirectory, "testplugins");

    public string Root { get; }

    public string Plugins { get; }

    /// <summary>Copies the built test plugin <paramref name="source"/> into <c>plugins/<paramref name="name"/></c>, renaming its main dll.</summary>
    public string Add(string source, string? name = null)
    {
        name ??= source;
        var from = Path.Combine(BuiltPlugins, source);
        Assert.True(Directory.Exists(from), $"The test plugin '{source}' was not built into {from}.");
        var to = Path.Combine(Plugins, name);
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
        {
            var fileName = Path.GetFileName(file);
            if (fileName.StartsWith(source + ".", StringComparison.Ordinal) && name != source)
            {
                fileName = name + fileName[source.Length..];
            }

            File.Copy(file, Path.Combine(to, fileName));
        }

        HardenTree(to);
        return to;
    }

    /// <summary>Copies one assembly as the plugin <paramref name="name"/>'s main dll, with nothing else in the folder.</summary>
    public string AddAssemblyAs(string assemblyPath, string name)
    {
        var to = Path.Combine(Plugins, name);
        Directory.CreateDirectory(to);
        File.Copy(assemblyPath, Path.Combine(to, name + ".dll"));
        HardenTree(to);
        return to;
    }

    /// <summary>
    /// Gives <paramref name="path"/> the modes the loader accepts (folders 0755, files 0644) whatever the umask, so
    /// that only the tests about permissions meet the permission check.
    /// </summary>
    public static void Harden(string path)
    {
        if (OperatingSystem.IsWindows() || new FileInfo(path).LinkTarget is not null)
        {
            return;
        }

        const UnixFileMode file = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        const UnixFileMode folder = file | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        File.SetUnixFileMode(path, Directory.Exists(path) ? folder : file);
    }

    /// <summary>Applies <see cref="Harden"/> to <paramref name="folder"/> and everything in it.</summary>
    public static void HardenTree(string folder)
    {
        Harden(folder);
        foreach (var entry in Directory.EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories))
        {
            Harden(entry);
        }
    }

    /// <summary>Rewrites, in place, the version with which <paramref name="dll"/> references <paramref name="referenceName"/>.</summary>
    public static void PatchReferenceVersion(string dll, string referenceName, ushort major, ushort minor = 0)
    {
        var bytes = File.ReadAllBytes(dll);
        int offset;
        using (var pe = new PEReader(new MemoryStream(bytes)))
        {
            var reader = pe.GetMetadataReader();
            var rowSize = reader.GetTableRowSize(TableIndex.AssemblyRef);
            var tableStart = pe.PEHeaders.MetadataStartOffset + reader.GetTableMetadataOffset(TableIndex.AssemblyRef);
            var row = reader.AssemblyReferences.Select((h, i) => (Name: reader.GetString(reader.GetAssemblyReference(h).Name), Index: i))
                .Single(r => r.Name == referenceName).Index;

            // An AssemblyRef row starts with MajorVersion and MinorVersion as little-endian ushorts.
            offset = tableStart + (row * rowSize);
        }

        bytes[offset] = (byte)(major & 0xFF);
        bytes[offset + 1] = (byte)(major >> 8);
        bytes[offset + 2] = (byte)(minor & 0xFF);
        bytes[offset + 3] = (byte)(minor >> 8);
        File.WriteAllBytes(dll, bytes);
    }

    public void Dispose()
    {
        // Plugin dlls stay loaded (load contexts are not collectible), which only Windows would refuse to delete.
        if (Directory.Exists(Root))
        {
            Directory.Delete(Root, recursive: true);
        }
    }
}
