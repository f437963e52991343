using System.IO.Compression;
using Xunit.Sdk;

namespace Metrics.Packaging.Tests;

/// <summary>The package checks of the end-to-end test catch what they claim to, on packages made by hand (fast, no packing).</summary>
public sealed class PackageHygieneTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("metrics-hygiene-").FullName;

    [Fact]
    public void Every_packable_project_is_found()
    {
        var repo = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(repo, "Metrics.sln")))
        {
            repo = Path.GetDirectoryName(repo.TrimEnd(Path.DirectorySeparatorChar))!;
        }

        var projects = PackageHygiene.PackableProjects(repo);
        Assert.Contains("plugins/Redis", projects);
        Assert.Contains("src/Metrics.AspNetCore", projects);
        Assert.Contains("conformance/Metrics.Conformance.Runner", projects);
        Assert.DoesNotContain("tests/Metrics.Packaging.Tests", projects);
        Assert.DoesNotContain(projects, p => p.Contains("/content/", StringComparison.Ordinal));
    }

    [Fact]
    public void A_package_without_a_readme_fails()
    {
        var package = Make("NoReadme", readme: false, repository: true, files: []);
        var failure = Assert.ThrowsAny<XunitException>(() => PackageHygiene.AssertComplete(package));
        Assert.Contains("names no readme", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_package_without_repository_metadata_fails()
    {
        var package = Make("NoRepository", readme: true, repository: false, files: []);
        var failure = Assert.ThrowsAny<XunitException>(() => PackageHygiene.AssertComplete(package));
        Assert.Contains("<repository>", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_library_package_without_a_symbol_package_beside_it_fails()
    {
        var package = Make("NoSymbols", readme: true, repository: true, files: ["lib/net10.0/NoSymbols.dll"]);
        var failure = Assert.ThrowsAny<XunitException>(() => PackageHygiene.AssertComplete(package));
        Assert.Contains("no symbol package NoSymbols.1.0.0.snupkg lies beside it", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_package_without_assemblies_passes_without_symbols()
    {
        PackageHygiene.AssertComplete(Make("Templates", readme: true, repository: true, files: ["content/Template/x.cs"]));
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Make(string id, bool readme, bool repository, string[] files)
    {
        var path = Path.Combine(_folder, $"{id}.1.0.0.nupkg");
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        var nuspec = $"""
            <?xml version="1.0" encoding="utf-8"?>
            <package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">
              <metadata>
                <id>{id}</id>
                <version>1.0.0</version>
                <projectUrl>{PackageHygiene.Repository}</projectUrl>
                {(readme ? "<readme>README.md</readme>" : string.Empty)}
                {(repository ? $"""<repository type="git" url="{PackageHygiene.Repository}" commit="{new string('a', 40)}" />""" : string.Empty)}
              </metadata>
            </package>
            """;
        Write(zip, $"{id}.nuspec", nuspec);
        Write(zip, "README.md", new string('x', 200));
        foreach (var file in files)
        {
            Write(zip, file, "not an assembly");
        }

        return path;
    }

    private static void Write(ZipArchive zip, string name, string text)
    {
        using var writer = new StreamWriter(zip.CreateEntry(name).Open());
        writer.Write(text);
    }
}
