namespace Metrics.Backends.SharedMemory;

/// <summary>
/// A series could not be created because the shared-memory store has no room left: either its
/// <c>MaxSize</c> is used up, or all <c>MaxProcesses</c> process slots are held by live processes.
/// Nothing in the store was changed; existing series keep working.
/// </summary>
public sealed class SharedMemoryStoreFullException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was refused and which setting to raise.</param>
    /// <param name="settingKey">The full configuration key to raise, for example <c>Metrics:BackendConfig:MaxSize</c>.</param>
    public SharedMemoryStoreFullException(string message, string settingKey)
        : base(message) => SettingKey = settingKey;

    /// <summary>The full configuration key whose value to raise.</summary>
    public string SettingKey { get; }
}
