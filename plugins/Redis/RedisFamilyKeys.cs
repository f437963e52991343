using StackExchange.Redis;

namespace Metrics.Backends.Redis;

/// <summary>
/// The Redis keys of one family under one definition, built once per store (see <see cref="RedisStore.KeysOf"/>) so
/// that scrapes, removals and count reads do not build key strings again.
/// </summary>
internal sealed class RedisFamilyKeys
{
    public RedisFamilyKeys(RedisSettings settings, string name, string definitionId)
    {
        var data = RedisFamily.DataKey(settings, name, definitionId);
        Data = data;
        Values = RedisFamily.ValuesKeyOf(data);
        List = RedisFamily.ListKeyOf(data);
        Exemplars = RedisFamily.ExemplarKeyOf(data);
        Live = RedisFamily.LiveKeyOf(data);
        Definitions = RedisFamily.DefinitionsKeyOf(settings, name);
        DataPrefix = RedisFamily.DataKeyPrefix(settings, name);
    }

    /// <summary>The data hash: a per-process gauge's values, or the slot directory of every other family.</summary>
    public RedisKey Data { get; }

    /// <summary>The values string of a family stored in slots.</summary>
    public RedisKey Values { get; }

    /// <summary>The field list naming the slots of <see cref="Values"/>.</summary>
    public RedisKey List { get; }

    /// <summary>The hash of the latest exemplar per field.</summary>
    public RedisKey Exemplars { get; }

    /// <summary>The liveness hash of a per-process gauge family.</summary>
    public RedisKey Live { get; }

    /// <summary>The name's definitions hash.</summary>
    public RedisKey Definitions { get; }

    /// <summary>What every data key of the name starts with, before the definition id (a script argument).</summary>
    public string DataPrefix { get; }
}
