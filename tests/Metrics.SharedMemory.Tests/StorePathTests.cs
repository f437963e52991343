using Metrics.Backends.SharedMemory;
using Metrics.Tests;

namespace Metrics.SharedMemory.Tests;

/// <summary>
/// The store path is opened without following links, and a file another user owns or could write is refused; new
/// stores are created 0600, default ones in a per-user 0700 directory and one per application.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class StorePathTests
{
    private const UnixFileMode OwnerReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [Fact]
    public void A_symbolic_link_at_the_store_path_is_refused_and_its_target_left_untouched()
    {
        using var store = new Store();
        var target = Path.Combine(Path.GetTempPath(), $"metrics-test-target-{Guid.NewGuid():N}");
        File.WriteAllText(target, "root's file");
        File.SetUnixFileMode(target, OwnerReadWrite);
        try
        {
            File.CreateSymbolicLink(store.FilePath, target);

            using var worker = Worker.Start(store.FilePath, "count", "1");
            Assert.Equal(3, worker.WaitForExit());
            Assert.Equal(
                $"The shared-memory metrics store '{store.FilePath}' is a symbolic link (to '{target}'). The backend never follows a link at the store path: in a shared directory another user could plant one to make this process overwrite the file it points to. Remove the link ('rm {store.FilePath}'), or set 'Metrics:BackendConfig:Path' to a path that is not a link.",
                worker.WaitForLine("refused: "));
            Assert.Equal("root's file", File.ReadAllText(target));
            Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(target));
        }
        finally
        {
            File.Delete(target);
        }
    }

    [Fact]
    public void A_store_owned_by_another_user_is_refused()
    {
        using var store = new Store();
        Worker.Run(store.FilePath, "count", "1");
        Chown(store.FilePath, 4321);

        using var worker = Worker.Start(store.FilePath, "count", "1");
        Assert.Equal(3, worker.WaitForExit());
        Assert.Equal(
            $"The shared-memory metrics store '{store.FilePath}' (owner uid 4321, mode 0600) is owned by uid 4321, not by this process's user (uid 0). A file another user created could be read or changed by that user, so it was not opened. Remove it ('rm {store.FilePath}'), or, if it is this application's store, fix it with 'chown 0 {store.FilePath}'; or set 'Metrics:BackendConfig:Path' to another file.",
            worker.WaitForLine("refused: "));
    }

    [Theory]
    [InlineData(UnixFileMode.OtherWrite | UnixFileMode.GroupWrite, "0622", "its group and by others")]
    [InlineData(UnixFileMode.GroupWrite, "0620", "its group")]
    [InlineData(UnixFileMode.OtherWrite, "0602", "others")]
    public void A_store_writable_by_group_or_others_is_refused(UnixFileMode extra, string mode, string by)
    {
        using var store = new Store();
        Worker.Run(store.FilePath, "count", "1");
        File.SetUnixFileMode(store.FilePath, OwnerReadWrite | extra);

        using var worker = Worker.Start(store.FilePath, "count", "1");
        Assert.Equal(3, worker.WaitForExit());
        Assert.Equal(
            $"The shared-memory metrics store '{store.FilePath}' (owner uid 0, mode {mode}) is writable by {by}, who could change or damage this application's metrics, so it was not opened. Fix it with 'chmod 600 {store.FilePath}', or remove it.",
            worker.WaitForLine("refused: "));
    }

    [Fact]
    public void A_second_name_for_the_store_file_is_refused()
    {
        using var store = new Store();
        Worker.Run(store.FilePath, "count", "1");
        var second = store.FilePath + ".second";
        using (var ln = ChildProcess.Start("ln", [store.FilePath, second]))
        {
            Assert.True(ln.WaitForExit() == 0, ln.Output);
        }

        try
        {
            using var worker = Worker.Start(store.FilePath, "count", "1");
            Assert.Equal(3, worker.WaitForExit());
            Assert.Contains("has 2 names (hard links)", worker.WaitForLine("refused: "), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(second);
        }
    }

    [Fact]
    public void A_new_store_is_created_owner_only_and_complete()
    {
        using var store = new Store();
        Worker.Run(store.FilePath, "count", "10");
        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(store.FilePath));
        Assert.Equal(10, Assert.Single(store.Collect(Store.Counter)).Value);
        // The new store was built under a temporary name and renamed into place: no temporary file is left beside it.
        Assert.DoesNotContain(Directory.GetFiles(Path.GetDirectoryName(store.FilePath)!), f => f.StartsWith(store.FilePath + ".", StringComparison.Ordinal));
    }

    [Fact]
    public void By_default_each_application_has_its_own_store_in_a_per_user_directory()
    {
        var directory = $"/dev/shm/metrics-{Native.GetEuid()}";
        var existed = Directory.Exists(directory);
        var first = $"metrics-test-{Guid.NewGuid():N}";
        var second = $"metrics-test-{Guid.NewGuid():N}";
        try
        {
            Worker.Run("default", new Dictionary<string, string?> { ["SHM_APP"] = first }, "count", "3");
            Worker.Run("default", new Dictionary<string, string?> { ["SHM_APP"] = second }, "count", "5");

            var firstPath = Path.Combine(directory, first + ".store");
            var secondPath = Path.Combine(directory, second + ".store");
            Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(firstPath));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(directory));
            using var firstStore = Store.At(firstPath);
            using var secondStore = Store.At(secondPath);
            Assert.Equal(3, Assert.Single(firstStore.Collect(Store.Counter)).Value);
            Assert.Equal(5, Assert.Single(secondStore.Collect(Store.Counter)).Value);

            Assert.Equal(
                Path.Combine(directory, "orders-api.store"),
                StoreOptions.Read(new BackendConfig([new("ApplicationName", "orders-api")])).Path);
            Assert.Equal(
                Path.Combine(directory, System.Reflection.Assembly.GetEntryAssembly()!.GetName().Name + ".store"),
                SharedMemoryBackend.DefaultPath);
            Assert.Equal(Path.Combine(directory, "Metrics.SharedMemory.Worker.store"), StoreOptions.DefaultPathFor("Metrics.SharedMemory.Worker"));
        }
        finally
        {
            if (!existed && Directory.Exists(directory) && Directory.GetFileSystemEntries(directory).Length == 0)
            {
                Directory.Delete(directory);
            }
        }
    }

    [Fact]
    public void An_explicit_path_overrides_the_application_name()
    {
        using var store = new Store(new Dictionary<string, string?> { ["ApplicationName"] = "ignored" });
        Assert.Equal(store.FilePath, StoreOptions.Read(store.Config).Path);
    }

    public static TheoryData<string> HostileDirectories() => ["link", "foreign", "group-writable", "world-writable"];

    [Theory]
    [MemberData(nameof(HostileDirectories))]
    public void A_default_store_directory_that_another_user_could_control_is_refused_with_the_fix(string hostile)
    {
        var root = Directory.CreateTempSubdirectory("metrics-test-");
        try
        {
            var directory = Path.Combine(root.FullName, $"metrics-{Native.GetEuid()}");
            var elsewhere = Path.Combine(root.FullName, "elsewhere");
            Directory.CreateDirectory(elsewhere, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            string problem;
            switch (hostile)
            {
                case "link":
                    // Planted by another user: a link to a directory that looks right.
                    Directory.CreateSymbolicLink(directory, elsewhere);
                    problem = "(owner uid 0, mode 0777) is a symbolic link";
                    break;
                case "foreign":
                    Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                    Chown(directory, 65534);
                    problem = "(owner uid 65534, mode 0700) is owned by uid 65534, not by this process's user (uid 0)";
                    break;
                case "group-writable":
                    Directory.CreateDirectory(directory);
                    File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute);
                    problem = "(owner uid 0, mode 0730) is writable by group or others";
                    break;
                default:
                    Directory.CreateDirectory(directory);
                    File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute);
                    problem = "(owner uid 0, mode 0703) is writable by group or others";
                    break;
            }

            StoreOptions.DefaultDirectoryForTests.Value = directory;
            var config = new BackendConfig([new("ApplicationName", "hostile")]);
            var refused = Assert.Throws<BackendConfigException>(() => SharedMemoryBackend.Initialize(config));
            Assert.Equal(
                $"The directory of the default shared-memory metrics stores '{directory}' {problem}, so another user could control the stores in it; nothing was opened. Remove it ('rm -r {directory}') so that it is created again with mode 0700, or set 'Metrics:BackendConfig:Path' to a store file in a directory only this user can write.",
                refused.Message);
            // Nothing was created in the directory, nor behind the link.
            Assert.Empty(Directory.GetFileSystemEntries(elsewhere));
            if (hostile != "link")
            {
                Assert.Empty(Directory.GetFileSystemEntries(directory));
            }
        }
        finally
        {
            StoreOptions.DefaultDirectoryForTests.Value = null;
            root.Delete(recursive: true);
        }
    }

    private static void Chown(string path, int uid)
    {
        using var chown = ChildProcess.Start("chown", [uid.ToString(System.Globalization.CultureInfo.InvariantCulture), path]);
        Assert.True(chown.WaitForExit() == 0, chown.Output);
    }
}
