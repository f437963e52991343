using System.Diagnostics;

namespace Metrics.Tests;

/// <summary>Runs <c>promtool check metrics</c> on an exposition; shared by the test projects that validate text output.</summary>
internal static class Promtool
{
    public static (int Exit, string Output) Check(string exposition)
    {
        var promtool = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':')
            .Select(dir => Path.Combine(dir, "promtool")).FirstOrDefault(File.Exists);
        Assert.True(promtool is not null, "promtool is not installed: install the Debian package 'prometheus' (./test.sh does it) and run again.");
        var start = new ProcessStartInfo(promtool, ["check", "metrics"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        process.StandardInput.Write(exposition);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(60_000), "promtool did not finish within 60 s");
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>
    /// Parses an OpenMetrics exposition, exemplars included, with Prometheus' own OpenMetrics parser: <c>promtool tsdb
    /// create-blocks-from openmetrics</c> (<c>check metrics</c> reads the text format only). Backfilling wants a timestamp on
    /// every sample, so each sample line gets <paramref name="timestampSeconds"/> before its exemplar; nothing else changes.
    /// </summary>
    public static (int Exit, string Output) CheckOpenMetrics(string exposition, long timestampSeconds = 1_700_000_000)
    {
        var promtool = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':')
            .Select(dir => Path.Combine(dir, "promtool")).FirstOrDefault(File.Exists);
        Assert.True(promtool is not null, "promtool is not installed: install the Debian package 'prometheus' (./test.sh does it) and run again.");
        var lines = exposition.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var valueStart = EndOfLabels(line);
            var exemplar = line.IndexOf(" # ", valueStart, StringComparison.Ordinal);
            lines[i] = exemplar < 0 ? $"{line} {timestampSeconds}" : $"{line[..exemplar]} {timestampSeconds}{line[exemplar..]}";
        }

        var folder = Directory.CreateTempSubdirectory("metrics-promtool-");
        try
        {
            var file = Path.Combine(folder.FullName, "exposition.om");
            File.WriteAllText(file, string.Join('\n', lines));
            var start = new ProcessStartInfo(promtool, ["tsdb", "create-blocks-from", "openmetrics", file, Path.Combine(folder.FullName, "data")])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            Assert.True(process.WaitForExit(60_000), "promtool did not finish within 60 s");
            return (process.ExitCode, stdout.Result + stderr.Result);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    // Where a sample's label set ends: label values may hold '}', '"' (escaped) and " # " themselves.
    private static int EndOfLabels(string line)
    {
        var open = line.IndexOf('{');
        var space = line.IndexOf(' ');
        if (open < 0 || (space >= 0 && space < open))
        {
            return 0;
        }

        var quoted = false;
        for (var i = open + 1; i < line.Length; i++)
        {
            if (quoted && line[i] == '\\')
            {
                i++;
            }
            else if (line[i] == '"')
            {
                quoted = !quoted;
            }
            else if (!quoted && line[i] == '}')
            {
                return i;
            }
        }

        return line.Length;
    }
}
