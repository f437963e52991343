using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Metrics.Hosting.Tests;

/// <summary>
/// Every C# snippet in the repository's READMEs compiles against the current libraries. Snippets of types only (a
/// backend, a test class) form a README's library part and are compiled with each of its programs; a snippet with
/// statements is a program of its own. A fragment that uses variables it does not declare names them in an HTML comment
/// right above it: <c>&lt;!-- compile-with: var registry = new MetricRegistry(); --&gt;</c>.
/// </summary>
public partial class ReadmeSnippetTests
{
    private static readonly string[] GlobalUsings =
    [
        // The implicit usings of an ASP.NET Core project, which the snippets assume like any new app does.
        "System", "System.Collections.Generic", "System.IO", "System.Linq", "System.Net.Http", "System.Threading", "System.Threading.Tasks",
        "Microsoft.AspNetCore.Builder", "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Http", "Microsoft.AspNetCore.Routing",
        "Microsoft.Extensions.Configuration", "Microsoft.Extensions.DependencyInjection", "Microsoft.Extensions.Hosting", "Microsoft.Extensions.Logging",
    ];

    private static readonly Lazy<MetadataReference[]> References = new(LoadReferences);

    public static TheoryData<string> Readmes()
    {
        var data = new TheoryData<string>();
        foreach (var readme in new[] { "README.md", "conformance/README.md", "plugins/Redis/README.md", "plugins/SharedMemory/README.md", "benchmarks/README.md" })
        {
            data.Add(readme);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Readmes))]
    public void Every_csharp_snippet_compiles(string readme)
    {
        var path = Path.Combine(RepositoryRoot(), readme);
        Assert.True(File.Exists(path), $"{path} is missing");
        var snippets = Snippets(File.ReadAllText(path)).ToList();
        var library = snippets.Where(s => !s.HasStatements).ToList();
        var programs = snippets.Where(s => s.HasStatements).ToList();
        var failures = new List<string>();
        if (programs.Count == 0 && library.Count > 0)
        {
            failures.AddRange(Compile(readme, library, null));
        }

        foreach (var program in programs)
        {
            failures.AddRange(Compile(readme, library, program));
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void A_snippet_that_does_not_compile_is_reported_with_its_readme_line()
    {
        var snippets = Snippets("text\n\n```csharp\nvar x = new Metrics.Counter(\"a_total\", \"A.\");\nx.Incc();\n```\n").ToList();
        var failures = Compile("TEST.md", [], Assert.Single(snippets)).ToList();
        var failure = Assert.Single(failures);
        Assert.Contains("TEST.md:5", failure, StringComparison.Ordinal);
        Assert.Contains("Incc", failure, StringComparison.Ordinal);
    }

    private static IEnumerable<string> Compile(string readme, List<Snippet> library, Snippet? program)
    {
        var trees = new List<SyntaxTree>
        {
            CSharpSyntaxTree.ParseText(string.Concat(GlobalUsings.Select(u => $"global using {u};\n")), path: "GlobalUsings.cs"),
        };
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        trees.AddRange(library.Select(s => CSharpSyntaxTree.ParseText(s.Source(), parse, path: $"{readme}:{s.Line}")));
        if (program is not null)
        {
            trees.Add(CSharpSyntaxTree.ParseText(program.Source(), parse, path: $"{readme}:{program.Line}"));
        }

        var compilation = CSharpCompilation.Create(
            "ReadmeSnippet",
            trees,
            References.Value,
            new CSharpCompilationOptions(program is null ? OutputKind.DynamicallyLinkedLibrary : OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        using var output = new MemoryStream();
        var result = compilation.Emit(output);
        foreach (var diagnostic in result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error))
        {
            var span = diagnostic.Location.GetLineSpan();
            var snippet = library.Concat(program is null ? [] : [program]).FirstOrDefault(s => span.Path == $"{readme}:{s.Line}");
            var line = snippet is null ? span.Path : $"{readme}:{snippet.FenceLine + snippet.PreludeOffset(span.StartLinePosition.Line)}";
            yield return $"{line}: {diagnostic.Id}: {diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}";
        }
    }

    private static IEnumerable<Snippet> Snippets(string markdown)
    {
        var lines = markdown.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            if (lines[i].Trim() != "```csharp")
            {
                continue;
            }

            var prelude = i > 0 && CompileWith().Match(lines[i - 1]) is { Success: true } m ? m.Groups[1].Value.Trim() : null;
            var body = new List<string>();
            var fence = i;
            for (i++; i < lines.Length && lines[i].Trim() != "```"; i++)
            {
                body.Add(lines[i]);
            }

            yield return new Snippet(fence + 1, body, prelude);
        }
    }

    private static MetadataReference[] LoadReferences()
    {
        var platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        var local = Directory.EnumerateFiles(AppContext.BaseDirectory, "*.dll");
        return platform.Concat(local)
            .GroupBy(Path.GetFileName, StringComparer.OrdinalIgnoreCase)
            .Select(g => g.First())
            .Where(IsManaged)
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .ToArray();
    }

    private static bool IsManaged(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            using var pe = new System.Reflection.PortableExecutable.PEReader(stream);
            return pe.HasMetadata;
        }
        catch (BadImageFormatException)
        {
            return false;
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Metrics.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No Metrics.sln above {AppContext.BaseDirectory}.");
    }

    [GeneratedRegex(@"^\s*<!--\s*compile-with:(.*)-->\s*$")]
    private static partial Regex CompileWith();

    private sealed record Snippet(int FenceLine, List<string> Body, string? Prelude)
    {
        public int Line => FenceLine;

        /// <summary>Whether it has top-level statements (a program), rather than only usings and type declarations.</summary>
        public bool HasStatements => Prelude is not null
            || CSharpSyntaxTree.ParseText(string.Join('\n', Body)).GetCompilationUnitRoot().Members.OfType<Microsoft.CodeAnalysis.CSharp.Syntax.GlobalStatementSyntax>().Any();

        /// <summary>The source: the snippet's usings first, then the prelude statements, then the rest.</summary>
        public string Source()
        {
            if (Prelude is null)
            {
                return string.Join('\n', Body);
            }

            var usings = Body.TakeWhile(l => l.StartsWith("using ", StringComparison.Ordinal) && !l.StartsWith("using var ", StringComparison.Ordinal) && !l.StartsWith("using (", StringComparison.Ordinal) || l.Trim().Length == 0).ToList();
            return string.Join('\n', usings.Append(Prelude).Concat(Body.Skip(usings.Count)));
        }

        /// <summary>The README line of a line of <see cref="Source"/>, the prelude counted as the line of the fence.</summary>
        public int PreludeOffset(int sourceLine)
        {
            if (Prelude is null)
            {
                return sourceLine + 1;
            }

            var usings = Body.TakeWhile(l => l.StartsWith("using ", StringComparison.Ordinal) && !l.StartsWith("using var ", StringComparison.Ordinal) && !l.StartsWith("using (", StringComparison.Ordinal) || l.Trim().Length == 0).Count();
            return sourceLine < usings ? sourceLine + 1 : sourceLine == usings ? 0 : sourceLine;
        }
    }
}
