using System.Diagnostics;
using System.Globalization;
using Metrics.Configuration;
using Microsoft.Extensions.Configuration;

namespace Metrics.Hosting.Tests;

/// <summary>
/// The loader tried as a hostile operator would: odd names, links and paths that leave the plugin folder, code that
/// others can write, and failures whose cause a plugin wraps away. Every case uses real files, links and modes.
/// </summary>
public sealed class LoaderTrustTests : IDisposable
{
    private const UnixFileMode File644 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode Folder755 = File644 | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    private const string Fix = "Whoever can change a plugin's files can run code in this application, so the metrics host does not load plugins from it. ";

    private const string Escape = "The metrics host loads a plugin only from files inside its own folder, so the backend 'TestBackend' was not loaded. Replace the link with a copy of the file, or remove it.";

    private readonly PluginFolders _folders = new();

    public void Dispose() => _folders.Dispose();

    private static MetricsConfigurationException Fails(Action action) => Assert.Throws<MetricsConfigurationException>(action);

    private static string NameRefused(string shown) =>
        $"The backend name '{shown}' (Metrics:Backend) is not valid: a backend name is a plugin folder name of at most 100 characters made of ASCII letters, digits, '_' and single dots, such as 'Redis' or 'Acme.Metrics'; paths, separators, '..', spaces and control characters are refused. Set Metrics:Backend to the name of a folder inside the plugins folder.";

    private static ConfiguredBackend LoadWith(string plugins, string name, bool? allowUnsafe = null)
    {
        var settings = new Dictionary<string, string?> { ["Metrics:Backend"] = name, ["Metrics:PluginsPath"] = plugins };
        if (allowUnsafe is { } allow)
        {
            settings["Metrics:AllowUnsafePluginPermissions"] = allow ? "true" : "false";
        }

        return MetricsConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
    }

    // ---- 1. Names ----

    [Theory]
    [InlineData("Evil\n", "Evil\\n")]
    [InlineData("Evil\r", "Evil\\r")]
    [InlineData("Ev\til", "Ev\\til")]
    [InlineData("Evil\0", "Evil\\0")]
    [InlineData("Evil\u001b[31m", "Evil\\u001b[31m")]
    [InlineData("Redis ", "Redis ")]
    [InlineData(" Redis", " Redis")]
    [InlineData("Re dis", "Re dis")]
    [InlineData("Rédis", "R\\u00e9dis")]
    [InlineData("Redis\u200b", "Redis\\u200b")]
    [InlineData("\uff32edis", "\\uff32edis")]
    [InlineData("Redis.", "Redis.")]
    [InlineData("it's", "it\\'s")]
    [InlineData("Redis\u0130", "Redis\\u0130")]
    public void A_name_with_control_space_or_non_ascii_characters_is_refused_and_shown_escaped(string name, string shown)
    {
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, name, BackendConfig.Empty));
        Assert.Equal(NameRefused(shown), e.Message);
    }

    [Fact]
    public void A_name_with_a_trailing_newline_is_refused_even_when_its_folder_holds_a_working_plugin()
    {
        // Before names ended at \z, 'Evil\n' matched the pattern and loaded from the folder 'Evil<newline>'.
        _folders.Add("TestBackend", "Evil\n");
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "Evil\n", BackendConfig.Empty));
        Assert.Equal(NameRefused("Evil\\n"), e.Message);
    }

    [Fact]
    public void A_name_from_configuration_is_checked_as_written_not_trimmed()
    {
        _folders.Add("TestBackend", "Evil");
        var e = Fails(() => LoadWith(_folders.Plugins, "Evil\n"));
        Assert.Equal(NameRefused("Evil\\n"), e.Message);
    }

    [Fact]
    public void A_name_of_100_characters_is_accepted_and_one_of_101_is_refused()
    {
        var hundred = new string('a', 100);
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, hundred, BackendConfig.Empty));
        Assert.StartsWith($"Unknown metrics backend '{hundred}' (Metrics:Backend)", e.Message, StringComparison.Ordinal);

        e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, hundred + "b", BackendConfig.Empty));
        Assert.Equal(NameRefused(hundred + "... (101 characters)"), e.Message);
    }

    [Fact]
    public void Dotted_names_still_load()
    {
        _folders.Add("Boom", "Acme.Metrics_2");
        Assert.Equal("Acme.Metrics_2", ConfiguredBackend.Load(_folders.Plugins, "Acme.Metrics_2", BackendConfig.Empty).Name);
    }

    // ---- 2. Nothing from outside ----

    [Fact]
    public void A_symlinked_plugin_folder_is_refused()
    {
        var real = _folders.Add("TestBackend", "Real");
        var link = Path.Combine(_folders.Plugins, "Linked");
        Directory.CreateSymbolicLink(link, real);
        File.Move(Path.Combine(real, "Real.dll"), Path.Combine(real, "Linked.dll"));
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "Linked", BackendConfig.Empty));
        Assert.StartsWith($"'{link}' is a symbolic link (to '{real}'); the metrics host loads plugins only from real files inside the plugins folder", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_symlinked_main_dll_is_refused()
    {
        var folder = _folders.Add("TestBackend");
        var dll = Path.Combine(folder, "TestBackend.dll");
        var elsewhere = Path.Combine(_folders.Root, "TestBackend.dll");
        File.Move(dll, elsewhere);
        File.CreateSymbolicLink(dll, elsewhere);
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.StartsWith($"'{dll}' is a symbolic link (to '{elsewhere}')", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_dependency_linked_to_a_file_outside_the_folder_is_refused_before_anything_loads()
    {
        var folder = _folders.Add("TestBackend");
        var dependency = Path.Combine(folder, "TestBackend.Extra.dll");
        var outside = Path.Combine(_folders.Root, "elsewhere", "TestBackend.Extra.dll");
        Directory.CreateDirectory(Path.GetDirectoryName(outside)!);
        File.Move(dependency, outside);
        File.CreateSymbolicLink(dependency, outside);

        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.Equal($"'{dependency}' is a link to '{outside}', which resolves to '{outside}', outside the plugin folder '{folder}'. {Escape}", e.Message);
        Assert.DoesNotContain(AppDomain.CurrentDomain.GetAssemblies(), a => !a.IsDynamic && a.Location == Path.Combine(folder, "TestBackend.dll"));
    }

    [Fact]
    public void A_relative_link_that_climbs_into_a_sibling_plugin_is_refused()
    {
        var folder = _folders.Add("TestBackend");
        var sibling = _folders.Add("TestBackend", "Other");
        var dependency = Path.Combine(folder, "TestBackend.Extra.dll");
        File.Delete(dependency);
        File.CreateSymbolicLink(dependency, "../Other/TestBackend.Extra.dll");

        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.Equal($"'{dependency}' is a link to '../Other/TestBackend.Extra.dll', which resolves to '{Path.Combine(sibling, "TestBackend.Extra.dll")}', outside the plugin folder '{folder}'. {Escape}", e.Message);
    }

    [Fact]
    public void A_chain_of_links_that_ends_outside_is_refused_at_every_link()
    {
        var folder = _folders.Add("TestBackend");
        var outside = Path.Combine(_folders.Root, "native.so");
        File.WriteAllText(outside, "not really a library");
        var first = Path.Combine(folder, "libfirst.so");
        var second = Path.Combine(folder, "libsecond.so");
        File.CreateSymbolicLink(first, "libsecond.so");
        File.CreateSymbolicLink(second, outside);

        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.Matches($"^'{System.Text.RegularExpressions.Regex.Escape(folder)}/lib(first|second)\\.so' is a link to '(libsecond\\.so|{System.Text.RegularExpressions.Regex.Escape(outside)})', which resolves to '{System.Text.RegularExpressions.Regex.Escape(outside)}', outside the plugin folder", e.Message);
    }

    [Fact]
    public void A_linked_subfolder_that_leads_outside_is_refused()
    {
        var folder = _folders.Add("TestBackend");
        var outside = Path.Combine(_folders.Root, "natives");
        Directory.CreateDirectory(outside);
        var runtimes = Path.Combine(folder, "runtimes");
        Directory.CreateDirectory(runtimes);
        PluginFolders.Harden(runtimes);
        var link = Path.Combine(runtimes, "linux-x64");
        Directory.CreateSymbolicLink(link, outside);

        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.Equal($"'{link}' is a link to '{outside}', which resolves to '{outside}', outside the plugin folder '{folder}'. {Escape}", e.Message);
    }

    [Fact]
    public void A_plugin_folder_reached_through_a_linked_plugins_folder_still_refuses_a_link_leading_out_of_it()
    {
        // The plugins folder itself may be a link (a common deployment layout); containment is judged on real paths.
        var folder = _folders.Add("TestBackend");
        var viaLink = Path.Combine(_folders.Root, "plugins-link");
        Directory.CreateSymbolicLink(viaLink, _folders.Plugins);
        Assert.Equal("TestBackend", ConfiguredBackend.Load(viaLink, "TestBackend", new BackendConfig([new("Multiplier", "7")])).Name);

        var outside = Path.Combine(_folders.Root, "x.so");
        File.WriteAllText(outside, "x");
        File.CreateSymbolicLink(Path.Combine(folder, "libx.so"), outside);
        var e = Fails(() => ConfiguredBackend.Load(viaLink, "TestBackend", BackendConfig.Empty));
        Assert.Equal($"'{Path.Combine(viaLink, "TestBackend", "libx.so")}' is a link to '{outside}', which resolves to '{outside}', outside the plugin folder '{Path.Combine(viaLink, "TestBackend")}'. {Escape}", e.Message);
    }

    [Fact]
    public void A_link_that_stays_inside_the_folder_is_accepted()
    {
        // Native libraries commonly ship as libfoo.so -> libfoo.so.1; that stays inside and must keep working.
        var folder = _folders.Add("TestBackend");
        File.Move(Path.Combine(folder, "TestBackend.Extra.dll"), Path.Combine(folder, "TestBackend.Extra.real"));
        File.CreateSymbolicLink(Path.Combine(folder, "TestBackend.Extra.dll"), "TestBackend.Extra.real");
        var backend = ConfiguredBackend.Load(_folders.Plugins, "TestBackend", new BackendConfig([new("Multiplier", "2")]));
        Assert.Equal("TestBackend", backend.Name);
    }

    [Fact]
    public void A_link_looping_back_inside_the_folder_is_not_followed_forever()
    {
        var folder = _folders.Add("TestBackend");
        var sub = Path.Combine(folder, "sub");
        Directory.CreateDirectory(sub);
        PluginFolders.Harden(sub);
        Directory.CreateSymbolicLink(Path.Combine(sub, "loop"), "..");
        Directory.CreateSymbolicLink(Path.Combine(folder, "self"), ".");
        Assert.Equal("TestBackend", ConfiguredBackend.Load(_folders.Plugins, "TestBackend", new BackendConfig([new("Multiplier", "3")])).Name);
    }

    [Fact]
    public void A_deps_json_naming_a_file_outside_the_folder_is_refused()
    {
        var folder = _folders.Add("TestBackend");
        var depsJson = Path.Combine(folder, "TestBackend.deps.json");
        var text = File.ReadAllText(depsJson);
        var escape = "runtimes/../../../outside/libevil.so";
        var patched = text.Replace(
            "\"TestBackend.Extra/1.0.0\": {",
            $"\"TestBackend.Extra/1.0.0\": {{ \"native\": {{ \"{escape}\": {{}} }},",
            StringComparison.Ordinal);
        Assert.NotEqual(text, patched);
        File.WriteAllText(depsJson, patched);

        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.Equal(
            $"'{depsJson}' names the file '{escape}' (library 'TestBackend.Extra/1.0.0'), which resolves to '{Path.Combine(_folders.Root, "outside", "libevil.so")}', outside the plugin folder '{folder}'. The metrics host loads a plugin only from files inside its own folder, so the backend 'TestBackend' was not loaded. Rebuild the plugin so that its deps.json names only files in its folder.",
            e.Message);
    }

    [Fact]
    public void Real_paths_decide_what_is_inside()
    {
        var folder = _folders.Add("TestBackend");
        var outside = Path.Combine(_folders.Root, "outside.dll");
        File.WriteAllText(outside, "x");
        var link = Path.Combine(folder, "inside-looking.dll");
        File.CreateSymbolicLink(link, outside);
        Assert.False(PluginTrust.IsInsideReally(link, folder));
        Assert.True(PluginTrust.IsInsideReally(Path.Combine(folder, "TestBackend.dll"), folder));
        Assert.Equal(outside, PluginTrust.RealPath(Path.Combine(folder, ".", "inside-looking.dll")));
    }

    // ---- 3. No loading of writable code ----

    private static uint CurrentUid()
    {
        using var id = Process.Start(new ProcessStartInfo("id", "-u") { RedirectStandardOutput = true })!;
        var text = id.StandardOutput.ReadToEnd();
        id.WaitForExit();
        return uint.Parse(text.Trim(), CultureInfo.InvariantCulture);
    }

    private static void Chmod(string path, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }
    }

    private static string Unsafe(string path, string mode, string problem, string fix, uint? owner = null) =>
        $"'{path}' (owner uid {owner ?? CurrentUid()}, mode {mode}) {problem}. {Fix}Fix it with '{fix}', or, where ownership and modes cannot be controlled (some containers), set Metrics:AllowUnsafePluginPermissions=true to skip this check.";

    [Theory]
    [InlineData("dll", UnixFileMode.GroupWrite, "0664", "is writable by its group")]
    [InlineData("dll", UnixFileMode.OtherWrite, "0646", "is writable by others")]
    [InlineData("dependency", UnixFileMode.GroupWrite | UnixFileMode.OtherWrite, "0666", "is writable by its group and others")]
    [InlineData("deps.json", UnixFileMode.OtherWrite, "0646", "is writable by others")]
    public void A_plugin_file_writable_by_group_or_others_is_refused(string which, UnixFileMode extra, string mode, string problem)
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Unix modes");
        var folder = _folders.Add("TestBackend");
        var path = Path.Combine(folder, which switch { "dll" => "TestBackend.dll", "dependency" => "TestBackend.Extra.dll", _ => "TestBackend.deps.json" });
        Chmod(path, File644 | extra);

        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.Equal(Unsafe(path, mode, problem, $"chmod go-w {path}"), e.Message);
    }

    [Fact]
    public void A_plugin_folder_or_subfolder_writable_by_others_is_refused()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Unix modes");
        var folder = _folders.Add("TestBackend");
        Chmod(folder, Folder755 | UnixFileMode.OtherWrite);
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.Equal(Unsafe(folder, "0757", "is writable by others", $"chmod go-w {folder}"), e.Message);

        Chmod(folder, Folder755);
        var sub = Path.Combine(folder, "runtimes");
        Directory.CreateDirectory(sub);
        Chmod(sub, Folder755 | UnixFileMode.GroupWrite);
        e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.Equal(Unsafe(sub, "0775", "is writable by its group", $"chmod go-w {sub}"), e.Message);
    }

    [Fact]
    public void A_plugins_folder_writable_by_everyone_is_refused()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Unix modes");
        _folders.Add("TestBackend");
        Chmod(_folders.Plugins, Folder755 | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite | UnixFileMode.StickyBit);
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.Equal(Unsafe(_folders.Plugins, "1777", "is writable by its group and others", $"chmod go-w {_folders.Plugins}"), e.Message);
    }

    [Fact]
    public void A_plugin_file_owned_by_another_user_is_refused()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Unix owners");
        var self = CurrentUid();
        Assert.SkipUnless(self == 0, "Only root can give a file to another user.");
        var folder = _folders.Add("TestBackend");
        var dll = Path.Combine(folder, "TestBackend.dll");
        using (var chown = Process.Start("chown", ["12345", dll]))
        {
            chown.WaitForExit();
            Assert.Equal(0, chown.ExitCode);
        }

        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.Equal(Unsafe(dll, "0644", "is owned by uid 12345, neither this process's user (uid 0) nor root", $"chown 0 {dll}", 12345), e.Message);

        Chmod(dll, File644 | UnixFileMode.GroupWrite);
        e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "TestBackend", BackendConfig.Empty));
        Assert.Equal(Unsafe(dll, "0664", "is owned by uid 12345, neither this process's user (uid 0) nor root and is writable by its group", $"chown 0 {dll} && chmod go-w {dll}", 12345), e.Message);
    }

    [Fact]
    public void A_path_with_spaces_is_quoted_in_the_fix()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Unix modes");
        var plugins = Path.Combine(_folders.Root, "my plugins");
        Directory.CreateDirectory(plugins);
        Directory.Move(_folders.Add("TestBackend"), Path.Combine(plugins, "TestBackend"));
        Chmod(plugins, Folder755 | UnixFileMode.GroupWrite);
        var e = Fails(() => ConfiguredBackend.Load(plugins, "TestBackend", BackendConfig.Empty));
        Assert.Contains($"Fix it with 'chmod go-w '{plugins}''", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AllowUnsafePluginPermissions_skips_the_permission_check_but_not_the_link_check()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Unix modes");
        var folder = _folders.Add("TestBackend");
        Chmod(folder, Folder755 | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite);
        Fails(() => LoadWith(_folders.Plugins, "TestBackend", allowUnsafe: false));
        Assert.Equal("TestBackend", LoadWith(_folders.Plugins, "TestBackend", allowUnsafe: true).Name);

        var outside = Path.Combine(_folders.Root, "x.so");
        File.WriteAllText(outside, "x");
        File.CreateSymbolicLink(Path.Combine(folder, "libx.so"), outside);
        var e = Fails(() => LoadWith(_folders.Plugins, "TestBackend", allowUnsafe: true));
        Assert.Contains("outside the plugin folder", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AllowUnsafePluginPermissions_must_be_a_boolean()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Metrics:AllowUnsafePluginPermissions"] = "yes" }).Build();
        var e = Fails(() => MetricsOptions.FromConfiguration(configuration));
        Assert.Equal("The setting 'Metrics:AllowUnsafePluginPermissions' is 'yes', which is not a boolean. Use true or false.", e.Message);
        Assert.False(MetricsOptions.FromConfiguration(new ConfigurationBuilder().Build()).AllowUnsafePluginPermissions);
    }

    // ---- 4. Causes shown ----

    [Fact]
    public void A_static_constructor_failure_shows_the_innermost_cause()
    {
        var folder = _folders.Add("Boom");
        File.WriteAllText(Path.Combine(folder, "boom-in-static-constructor"), string.Empty);
        PluginFolders.HardenTree(folder);

        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "Boom", BackendConfig.Empty));
        Assert.Equal(
            "The metrics backend 'Boom' (Boom.BoomBackend) failed to initialize in a static constructor: System.IO.IOException: Permission denied reading '/etc/boom/boom.key'. Its configuration was Metrics:BackendConfig{}. Fix the cause above, in the configuration or in the environment the backend needs.",
            e.Message);
        Assert.IsType<TypeInitializationException>(e.InnerException);
    }

    [Fact]
    public void An_initialize_failure_shows_the_innermost_cause_with_the_secrets_scrubbed()
    {
        _folders.Add("Boom");
        var config = new BackendConfig([
            new("Fail", "true"),
            new("Host", "cache.internal"),
            new("Password", "e"),
            new("ApiToken", "t0k3n-XYZ"),
            new("ConnectionString", "cache.internal:6379,password=s3cr3t"),
        ]);

        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "Boom", config));
        Assert.Equal(
            "The metrics backend 'Boom' (Boom.BoomBackend) failed to initialize: System.UnauthorizedAccessException: Login to cache.internal refused with password '***' and token *** (connection '***'). Its configuration was Metrics:BackendConfig{ApiToken=***, ConnectionString=***, Fail=true, Host=cache.internal, Password=***}. Fix the cause above, in the configuration or in the environment the backend needs. The original exception is not attached because its message contains a secret value of the configuration.",
            e.Message);
        Assert.Null(e.InnerException);
    }

    [Fact]
    public void A_secret_that_appears_nowhere_leaves_the_cause_attached()
    {
        _folders.Add("Boom");
        var e = Fails(() => ConfiguredBackend.Load(_folders.Plugins, "Boom", new BackendConfig([new("Fail", "true"), new("Host", "h")])));
        Assert.StartsWith("The metrics backend 'Boom' (Boom.BoomBackend) failed to initialize: System.UnauthorizedAccessException: Login to h refused with password '' and token  (connection '').", e.Message, StringComparison.Ordinal);
        Assert.IsType<UnauthorizedAccessException>(Assert.IsType<InvalidOperationException>(e.InnerException).InnerException);
    }

    [Theory]
    [InlineData("Password", "a", "a user's password 'a' was refused", "a user's password '***' was refused")]
    [InlineData("Password", "a", "password=a;", "password=***;")]
    [InlineData("Password", "4242", "error 424242 for 4242", "error 424242 for ***")]
    [InlineData("Password", "42", "pin '42' refused, error 42", "pin '***' refused, error 42")]
    [InlineData("Host", "example", "Version=1.0.0.0, PublicKeyToken=null", "Version=1.0.0.0, PublicKeyToken=null")]
    [InlineData("ConnectionString", "h:6379,password=pa55,ssl=true", "bad 'h:6379,password=pa55,ssl=true'", "bad '***'")]
    [InlineData("ConnectionString", "h:6379,password=pa55", "AUTH pa55 failed", "AUTH *** failed")]
    [InlineData("Servers", "h:6379,password=pa55", "AUTH pa55 failed", "AUTH *** failed")]
    [InlineData("ConnectionString", "h:6379,password=abc,def,ssl=true", "AUTH abc,def failed; endpoint def", "AUTH *** failed; endpoint def")]
    [InlineData("Password", "Redis", "Redis refused Redisson's password Redis", "*** refused Redisson's password ***")]
    [InlineData("Host", "example", "user token=abc123&x=1 refused", "user token=***&x=1 refused")]
    [InlineData("Host", "example", "nothing to hide at example", "nothing to hide at example")]
    public void Scrubbing_replaces_whole_secret_values_only(string key, string value, string text, string expected)
    {
        Assert.Equal(expected, SecretScrubber.Scrub(text, new BackendConfig([new(key, value)])));
    }
}
