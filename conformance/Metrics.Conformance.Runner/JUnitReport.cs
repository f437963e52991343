using System.Globalization;
using System.Xml.Linq;
using Metrics.Conformance;

/// <summary>Writes conformance results in the JUnit XML format CI systems display (one test case per check).</summary>
internal static class JUnitReport
{
    public static void Write(string path, string target, IReadOnlyList<ConformanceResult> results)
    {
        static string Seconds(TimeSpan elapsed) => elapsed.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
        var failures = results.Count(r => !r.Passed);
        var total = results.Aggregate(TimeSpan.Zero, (sum, r) => sum + r.Elapsed);
        var suite = new XElement("testsuite",
            new XAttribute("name", "Metrics.Conformance"),
            new XAttribute("tests", results.Count),
            new XAttribute("failures", failures),
            new XAttribute("errors", 0),
            new XAttribute("skipped", 0),
            new XAttribute("time", Seconds(total)),
            new XAttribute("timestamp", DateTime.UtcNow.ToString("s", CultureInfo.InvariantCulture)),
            new XElement("properties", new XElement("property", new XAttribute("name", "target"), new XAttribute("value", target))),
            results.Select(r => new XElement("testcase",
                new XAttribute("classname", "Metrics.Conformance"),
                new XAttribute("name", r.Check.Name),
                new XAttribute("time", Seconds(r.Elapsed)),
                r.Passed ? null : new XElement("failure", new XAttribute("message", Clean(FirstSentence(r.Failure!.Message))), new XAttribute("type", "ConformanceException"), Clean(r.Failure.ToString())))));
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        new XDocument(new XElement("testsuites", new XAttribute("name", "metrics-conformance"), new XAttribute("tests", results.Count), new XAttribute("failures", failures), suite)).Save(path);
    }

    private static string FirstSentence(string message)
    {
        var end = message.IndexOf(". ", StringComparison.Ordinal);
        return end < 0 ? message : message[..(end + 1)];
    }

    // XML 1.0 cannot hold most control characters, and failure messages quote label values such as "\0" literally.
    private static string Clean(string text) => new([.. text.Where(c => c is '\t' or '\n' or '\r' || !char.IsControl(c))]);
}
