using System.IO.Compression;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Metrics.Packaging.Tests;

/// <summary>What every package of the repository must carry: README, repository metadata, symbols with SourceLink.</summary>
internal static partial class PackageHygiene
{
    public const string Repository = "https://github.com/metrics-dotnet/metrics";

    // The CustomDebugInformation kind of a SourceLink document in a portable PDB.
    private static readonly Guid SourceLinkKind = new("CC110556-A091-4D38-9FEC-25AB9A351A6A");

    /// <summary>Every project of the repository that packs (IsPackable true), as repository-relative folders; template content excluded.</summary>
    public static IReadOnlyList<string> PackableProjects(string repo) =>
        [.. Directory.EnumerateFiles(repo, "*.csproj", SearchOption.AllDirectories)
            .Where(path => !path.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj" or "content"))
            .Where(path => File.ReadAllText(path).Contains("<IsPackable>true</IsPackable>", StringComparison.Ordinal))
            .Select(path => Path.GetRelativePath(repo, Path.GetDirectoryName(path)!).Replace('\\', '/'))
            .Order(StringComparer.Ordinal)];

    public static void AssertComplete(string nupkg)
    {
        var name = Path.GetFileName(nupkg);
        using var package = ZipFile.OpenRead(nupkg);
        var nuspec = XDocument.Load(package.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal) && !e.FullName.Contains('/', StringComparison.Ordinal)).Open());
        var metadata = nuspec.Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        string? Field(string field) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == field)?.Value;
        var entries = package.Entries.Select(e => e.FullName).ToHashSet(StringComparer.Ordinal);

        var readme = Field("readme");
        Assert.True(readme is not null, $"{name} names no readme in its nuspec (PackageReadmeFile).");
        Assert.True(entries.Contains(readme), $"{name} names the readme '{readme}' but does not contain it.");
        Assert.True(package.GetEntry(readme)!.Length > 100, $"{name}'s {readme} is nearly empty.");

        Assert.Equal(Repository, Field("projectUrl"));
        var repository = metadata.Elements().SingleOrDefault(e => e.Name.LocalName == "repository");
        Assert.True(repository is not null, $"{name} has no <repository> element (RepositoryUrl, PublishRepositoryUrl).");
        Assert.Equal("git", repository.Attribute("type")?.Value);
        Assert.Equal(Repository, repository.Attribute("url")?.Value);
        Assert.Matches(CommitId(), repository.Attribute("commit")?.Value ?? string.Empty);

        var assemblies = entries.Where(e => e.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)).ToList();
        var symbols = Path.ChangeExtension(nupkg, ".snupkg");
        var plugins = assemblies.Where(e => e.StartsWith("plugin/", StringComparison.Ordinal)).ToList();
        if (plugins.Count > 0)
        {
            // A plugin package has no lib/: the plugin's own DLL (plugin/<Name>/<Name>.dll) embeds its PDB.
            var own = plugins.Single(e => e.Split('/') is [_, var folder, var file] && file == folder + ".dll");
            using var stream = Copy(package.GetEntry(own)!);
            using var pe = new PEReader(stream);
            var embedded = pe.ReadDebugDirectory().Where(d => d.Type == DebugDirectoryEntryType.EmbeddedPortablePdb).ToList();
            Assert.True(embedded.Count == 1, $"{name}: {own} has no embedded PDB (DebugType embedded).");
            using var pdb = pe.ReadEmbeddedPortablePdbDebugDirectoryData(embedded[0]);
            AssertSourceLink(pdb.GetMetadataReader(), $"{name}: {own}");
        }
        else if (assemblies.Count > 0)
        {
            Assert.True(File.Exists(symbols), $"{name} carries assemblies but no symbol package {Path.GetFileName(symbols)} lies beside it (IncludeSymbols, SymbolPackageFormat snupkg).");
            using var snupkg = ZipFile.OpenRead(symbols);
            var pdbs = snupkg.Entries.Where(e => e.FullName.EndsWith(".pdb", StringComparison.OrdinalIgnoreCase)).ToList();
            Assert.True(pdbs.Count > 0, $"{Path.GetFileName(symbols)} holds no PDB.");
            foreach (var lib in assemblies.Where(e => e.StartsWith("lib/", StringComparison.Ordinal)))
            {
                Assert.Contains(Path.ChangeExtension(lib, ".pdb"), pdbs.Select(e => e.FullName));
            }

            foreach (var entry in pdbs)
            {
                using var stream = Copy(entry);
                using var provider = MetadataReaderProvider.FromPortablePdbStream(stream);
                AssertSourceLink(provider.GetMetadataReader(), $"{Path.GetFileName(symbols)}: {entry.FullName}");
            }
        }
        else
        {
            Assert.False(File.Exists(symbols), $"{name} carries no assemblies, so it needs no symbol package, but {Path.GetFileName(symbols)} was made.");
        }
    }

    private static void AssertSourceLink(MetadataReader pdb, string what)
    {
        var links = pdb.CustomDebugInformation.Select(pdb.GetCustomDebugInformation).Where(c => pdb.GetGuid(c.Kind) == SourceLinkKind).ToList();
        Assert.True(links.Count == 1, $"{what}: the PDB has no SourceLink.");
        var json = Encoding.UTF8.GetString(pdb.GetBlobBytes(links[0].Value));
        Assert.Contains("https://raw.githubusercontent.com/metrics-dotnet/metrics/", json, StringComparison.Ordinal);
    }

    private static MemoryStream Copy(ZipArchiveEntry entry)
    {
        var memory = new MemoryStream();
        using (var source = entry.Open())
        {
            source.CopyTo(memory);
        }

        memory.Position = 0;
        return memory;
    }

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitId();
}
