using System.Globalization;
using System.Text.Json;
using Metrics;
using Metrics.Conformance;

return Runner.Run(args, Console.Out, Console.Error);

/// <summary>The conformance runner command: loads a backend, runs every check, prints one line per check.</summary>
internal static class Runner
{
    private const string Usage = """
        metrics-conformance: runs the Metrics conformance suite against a built backend.

        Usage:
          metrics-conformance --plugins <folder> --backend <Name> [options]
          metrics-conformance --assembly <backend.dll> --type <Full.Type.Name> [options]
          metrics-conformance --list | --help

        Loads the backend from <folder>/<Name>/<Name>.dll through the host's loader (or the type from an assembly file),
        runs every conformance check that applies to it and prints one line per check, then "N passed, N failed".

        Options:
          --config <file.json>          The backend's configuration: an object of settings, or an appsettings.json with
                                        Metrics:BackendConfig. Nested objects become Key:SubKey.
          --invalid-config <file.json>  Settings the backend must refuse (repeatable): each file's settings are applied over
                                        --config, and selecting the backend must fail with an error naming one of its keys.
                                        A backend with settings must be given at least one.
          --unique-key <Key>            Gives every check its own store by appending a unique suffix to this setting
                                        (for example a key prefix or a file path); needed for shared backends.
          --check <Name>                Runs only the named check (repeatable).
          --timeout <seconds>           How long one check may run before it fails as hung (default 300).
          --report <file.xml>           Also writes the results as a JUnit XML report.
          --list                        Lists the checks and exits.
          -h, --help                    Shows this help and exits.

        Exit codes:
          0  every check passed
          1  a check failed
          2  bad arguments, or the backend or a configuration file could not be loaded
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        Options options;
        try
        {
            options = Options.Parse(args);
        }
        catch (ArgumentException ex)
        {
            stderr.WriteLine(ex.Message);
            stderr.WriteLine();
            stderr.WriteLine(Usage);
            return 2;
        }

        if (options.Help)
        {
            stdout.WriteLine(Usage);
            return 0;
        }

        if (options.List)
        {
            foreach (var check in ConformanceSuite.Checks)
            {
                stdout.WriteLine($"{check.Name}{(check.RequiresSharedBackend ? " (shared backends)" : string.Empty)}: {check.Description}");
            }

            return 0;
        }

        ConformanceTarget target;
        var isolated = new List<string>();
        try
        {
            var baseConfig = options.ConfigFile is null ? BackendConfig.Empty : ConfigFile.Read(options.ConfigFile);
            Func<BackendConfig> createConfig = options.UniqueKey is null ? () => baseConfig : () => Isolate(baseConfig, options.UniqueKey, isolated);
            var conformanceOptions = options.TimeoutSeconds is { } seconds ? new ConformanceOptions { CheckTimeout = TimeSpan.FromSeconds(seconds) } : null;
            target = options.Assembly is not null
                ? ConformanceTarget.ForAssembly(options.Assembly, options.Type!, createConfig, conformanceOptions)
                : ConformanceTarget.ForPluginFolder(options.Plugins!, options.Backend!, createConfig, conformanceOptions);
            target = target.WithInvalidConfigs([.. options.InvalidConfigFiles.Select(ConfigFile.Read)]);
            if (options.ChildJob is not null)
            {
                return ConformanceSuite.RunChild(target, options.ChildJob, stdout);
            }

            _ = target.Capabilities;
        }
        catch (Exception ex) when (options.ChildJob is null)
        {
            stderr.WriteLine($"Could not load the backend: {ex.Message}");
            stdout.WriteLine("0 passed, 0 failed (the backend could not be loaded)");
            return 2;
        }

        var checks = options.Checks.Count == 0 ? target.ApplicableChecks : [.. options.Checks.Select(ConformanceSuite.Find)];
        stdout.WriteLine($"Conformance of {target.Description} (capabilities: {target.Capabilities}), {checks.Count} checks");
        if (options.Checks.Count == 0)
        {
            var skipped = ConformanceSuite.Checks.Where(c => !c.AppliesTo(target.Capabilities)).ToArray();
            if (skipped.Length > 0)
            {
                // Named with the reason, so a backend author sees which capability would bring each rule in.
                stdout.WriteLine("Not run, as they apply to other capabilities: " + string.Join("; ", skipped.Select(c =>
                    c.Requires != BackendCapabilities.None && (target.Capabilities & c.Requires) != c.Requires ? $"{c.Name} (needs {c.Requires})" : $"{c.Name} (not with {c.Excludes})")) + ".");
            }
        }

        var results = new List<ConformanceResult>();
        var width = checks.Max(c => c.Name.Length);
        foreach (var check in checks)
        {
            var result = ConformanceSuite.Run(check, target);
            results.Add(result);
            var ms = result.Elapsed.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture);
            if (result.Passed)
            {
                stdout.WriteLine($"{check.Name.PadRight(width)}  PASS  ({ms} ms)");
            }
            else
            {
                var message = result.Failure!.Message.Replace("\r", string.Empty, StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
                stdout.WriteLine($"{check.Name.PadRight(width)}  FAIL  {message}");
            }

            stdout.Flush();
        }

        // Every check released its stores, but one abandoned as hung may still hold some: an open store can write its file
        // again after it was deleted (SharedMemory replaces a deleted file within CheckInterval), so release all first.
        ReleaseBackends(stderr);
        RemoveIsolatedStores(isolated, stderr);
        var failed = results.Count(r => !r.Passed);
        stdout.WriteLine($"{results.Count - failed} passed, {failed} failed");
        if (options.Report is not null)
        {
            JUnitReport.Write(options.Report, target.Description, results);
            stdout.WriteLine($"JUnit report: {Path.GetFullPath(options.Report)}");
        }

        return failed == 0 ? 0 : 1;
    }

    private static BackendConfig Isolate(BackendConfig config, string key, List<string> isolated)
    {
        var suffix = Guid.NewGuid().ToString("N")[..12];
        var value = string.IsNullOrEmpty(config[key]) ? "conformance-" + suffix : $"{config[key]}-{suffix}";
        lock (isolated)
        {
            isolated.Add(value);
        }

        var values = config.Keys.Where(k => !string.Equals(k, key, StringComparison.OrdinalIgnoreCase))
            .Select(k => new KeyValuePair<string, string?>(k, config[k]))
            .Append(new KeyValuePair<string, string?>(key, value));
        return new BackendConfig(values, config.Path);
    }

    private static void ReleaseBackends(TextWriter stderr)
    {
        var timeout = TimeSpan.FromSeconds(30);
        using var cancel = new CancellationTokenSource(timeout);
        if (!ConfiguredBackend.ShutdownAllAsync(cancel.Token).Wait(timeout + TimeSpan.FromSeconds(1)))
        {
            stderr.WriteLine($"Releasing the backend configurations of the run (ShutdownAsync) did not finish within {timeout.TotalSeconds:0} s; a store still open may be written again after it is removed.");
        }
    }

    /// <summary>
    /// Deletes the files the run's unique values name (a file-based backend's stores, with files named after them such as
    /// <c>store-1a2b.lock</c>), so a run leaves nothing behind. Values that name no file (a Redis key prefix) are left alone.
    /// </summary>
    private static void RemoveIsolatedStores(List<string> isolated, TextWriter stderr)
    {
        string[] values;
        lock (isolated)
        {
            values = [.. isolated.Distinct(StringComparer.Ordinal)];
        }

        foreach (var value in values)
        {
            try
            {
                var full = Path.GetFullPath(value);
                var directory = Path.GetDirectoryName(full);
                if (directory is null || !Directory.Exists(directory))
                {
                    continue;
                }

                var name = Path.GetFileName(full);
                foreach (var file in Directory.EnumerateFiles(directory, name + "*").Where(f => Path.GetFileName(f) == name || Path.GetFileName(f).StartsWith(name + ".", StringComparison.Ordinal)))
                {
                    File.Delete(file);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                stderr.WriteLine($"Could not remove the store '{value}' this run created: {e.Message}");
            }
        }
    }

    private sealed class Options
    {
        public string? Plugins { get; private set; }

        public string? Backend { get; private set; }

        public string? Assembly { get; private set; }

        public string? Type { get; private set; }

        public string? ConfigFile { get; private set; }

        public string? UniqueKey { get; private set; }

        public string? ChildJob { get; private set; }

        public bool List { get; private set; }

        public bool Help { get; private set; }

        public string? Report { get; private set; }

        public double? TimeoutSeconds { get; private set; }

        public List<string> InvalidConfigFiles { get; } = [];

        public List<string> Checks { get; } = [];

        public static Options Parse(string[] args)
        {
            var options = new Options();
            for (var i = 0; i < args.Length; i++)
            {
                var arg = args[i];
                if (arg == "--list")
                {
                    options.List = true;
                    continue;
                }

                if (arg is "-h" or "--help" or "-?")
                {
                    options.Help = true;
                    return options;
                }

                if (i + 1 >= args.Length || string.IsNullOrWhiteSpace(args[i + 1]))
                {
                    throw new ArgumentException($"Option '{arg}' needs a value.");
                }

                var value = args[++i];
                switch (arg)
                {
                    case "--plugins": options.Plugins = value; break;
                    case "--backend": options.Backend = value; break;
                    case "--assembly": options.Assembly = value; break;
                    case "--type": options.Type = value; break;
                    case "--config": options.ConfigFile = value; break;
                    case "--unique-key": options.UniqueKey = value; break;
                    case "--invalid-config": options.InvalidConfigFiles.Add(value); break;
                    case "--report": options.Report = value; break;
                    case "--timeout":
                        options.TimeoutSeconds = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds > 0
                            ? seconds
                            : throw new ArgumentException($"--timeout needs a positive number of seconds, not '{value}'.");
                        break;
                    case "--child": options.ChildJob = value; break;
                    case "--check":
                        _ = ConformanceSuite.Find(value);
                        options.Checks.Add(value);
                        break;
                    default: throw new ArgumentException($"Unknown option '{arg}'.");
                }
            }

            if (options.List)
            {
                return options;
            }

            var byFolder = options.Plugins is not null || options.Backend is not null;
            var byAssembly = options.Assembly is not null || options.Type is not null;
            if (byFolder == byAssembly)
            {
                throw new ArgumentException("Give either --plugins and --backend, or --assembly and --type.");
            }

            if (byFolder && (options.Plugins is null || options.Backend is null))
            {
                throw new ArgumentException("--plugins and --backend go together.");
            }

            if (byAssembly && (options.Assembly is null || options.Type is null))
            {
                throw new ArgumentException("--assembly and --type go together.");
            }

            foreach (var file in options.InvalidConfigFiles.Prepend(options.ConfigFile))
            {
                if (file is not null && !File.Exists(file))
                {
                    throw new ArgumentException($"The configuration file '{Path.GetFullPath(file)}' does not exist.");
                }
            }

            return options;
        }
    }

    /// <summary>Reads a backend configuration from JSON, flattening nested objects to <c>Key:SubKey</c> as Microsoft.Extensions.Configuration does.</summary>
    private static class ConfigFile
    {
        public static BackendConfig Read(string path)
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"'{path}' must hold a JSON object of settings.");
            }

            var section = root;
            if (TryGet(root, "Metrics", out var metrics) && TryGet(metrics, "BackendConfig", out var backendConfig))
            {
                section = backendConfig;
            }

            var values = new List<KeyValuePair<string, string?>>();
            Flatten(section, null, values);
            return new BackendConfig(values);
        }

        private static bool TryGet(JsonElement element, string name, out JsonElement value)
        {
            foreach (var property in element.EnumerateObject())
            {
                if (string.Equals(property.Name, name, StringComparison.OrdinalIgnoreCase) && property.Value.ValueKind == JsonValueKind.Object)
                {
                    value = property.Value;
                    return true;
                }
            }

            value = default;
            return false;
        }

        private static void Flatten(JsonElement element, string? prefix, List<KeyValuePair<string, string?>> values)
        {
            switch (element.ValueKind)
            {
                case JsonValueKind.Object:
                    foreach (var property in element.EnumerateObject())
                    {
                        Flatten(property.Value, prefix is null ? property.Name : $"{prefix}:{property.Name}", values);
                    }

                    break;
                case JsonValueKind.Array:
                    var index = 0;
                    foreach (var item in element.EnumerateArray())
                    {
                        Flatten(item, $"{prefix}:{index++}", values);
                    }

                    break;
                case JsonValueKind.Null:
                    values.Add(new(prefix!, null));
                    break;
                case JsonValueKind.String:
                    values.Add(new(prefix!, element.GetString()));
                    break;
                default:
                    values.Add(new(prefix!, element.GetRawText()));
                    break;
            }
        }
    }
}
