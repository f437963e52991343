using static Metrics.Conformance.CheckContext;

namespace Metrics.Conformance;

/// <summary>Checks that a backend validates its settings when it is selected, so a mistake fails the application at startup.</summary>
internal static class SettingsChecks
{
    public static void InvalidSettingsFailAtLoad(CheckContext ctx)
    {
        var invalid = ctx.Target.InvalidConfigs;
        if (invalid.Count == 0)
        {
            var sample = ctx.NewConfig();
            var keys = sample.Keys.ToList();
            // Without a declared invalid setting nothing proves validation happens; only a backend without settings is exempt.
            ctx.Expect(keys.Count == 0,
                $"The backend is configured with settings ({string.Join(", ", keys)}), but the test declares no invalid configuration, so nothing proves they are validated. " +
                "A backend that never validates its settings silently falls back to a default or fails at the first update in production. Declare at least one setting " +
                "the backend must refuse: override InvalidConfigs in the xunit class, or pass --invalid-config <file.json> to the runner.");
            return;
        }

        foreach (var overlay in invalid)
        {
            var baseConfig = ctx.NewConfig();
            var merged = Merge(baseConfig, overlay);
            var keys = overlay.Keys.ToList();
            ctx.Expect(keys.Count > 0, "An invalid configuration was declared without any setting: give the key and the wrong value the backend must refuse.");
            ctx.Step = $"selecting the backend with the invalid settings {overlay}";
            ConfiguredBackend backend;
            try
            {
                backend = ctx.Target.Open(merged);
            }
            catch (Exception ex)
            {
                ExpectNamesKey(ctx, overlay, keys, ex);
                continue;
            }

            try
            {
                ctx.Step = $"creating a value with the invalid settings {overlay}";
                Exception? late = null;
                try
                {
                    backend.CreateValue(Counter(ctx.Name("invalid_total")), null).Inc(1);
                }
                catch (Exception ex)
                {
                    late = ex;
                }

                throw ctx.Fail(late is null
                    ? $"Selecting the backend with the invalid settings {overlay} (over {baseConfig}) succeeded, and so did creating and updating a value. " +
                      $"The backend does not validate {string.Join(", ", keys)}: it ignores the setting or falls back to a default (for example int.TryParse with a default). " +
                      "Read settings in Initialize with the typed reads of BackendConfig (GetInt32, GetTimeSpan, GetRequiredString...), which throw a BackendConfigException naming the key."
                    : $"The invalid settings {overlay} were only refused when a value was created ({late.GetType().Name}: {late.Message}), not when the backend was selected. " +
                      "Validate settings in Initialize, so the application fails at startup rather than at its first metric.");
            }
            finally
            {
                try
                {
                    backend.ShutdownAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
                }
                catch (AggregateException)
                {
                    // Releasing a configuration that should never have loaded; the failure above already says why.
                }
            }
        }
    }

    internal static BackendConfig Merge(BackendConfig config, BackendConfig overlay) =>
        new([.. config.Keys.Where(k => !overlay.Keys.Contains(k, StringComparer.OrdinalIgnoreCase)).Select(k => new KeyValuePair<string, string?>(k, config[k])),
             .. overlay.Keys.Select(k => new KeyValuePair<string, string?>(k, overlay[k]))], config.Path);

    private static void ExpectNamesKey(CheckContext ctx, BackendConfig overlay, List<string> keys, Exception error)
    {
        for (var e = error; e is not null; e = e.InnerException)
        {
            if (e is BackendConfigException config && keys.Any(k => config.Key.Equals(k, StringComparison.OrdinalIgnoreCase) || config.Key.EndsWith(":" + k, StringComparison.OrdinalIgnoreCase)))
            {
                return;
            }

            if (keys.Any(k => e.Message.Contains(k, StringComparison.OrdinalIgnoreCase)))
            {
                return;
            }
        }

        throw ctx.Fail(
            $"Selecting the backend with the invalid settings {overlay} failed, as it should, but with {error.GetType().Name}: {error.Message} " +
            $"This does not name the wrong key ({string.Join(" or ", keys)}), so whoever deploys the application cannot tell which setting to fix. " +
            "The likely bug is parsing with int.Parse, TimeSpan.Parse or a constructor that throws its own exception: use the typed reads of BackendConfig, " +
            "or throw a BackendConfigException with the key.");
    }
}
