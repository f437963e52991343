using System.Runtime.CompilerServices;

namespace Metrics;

/// <summary>
/// Compares full label-value sets element by element, and looks them up from a span so that finding an
/// existing child allocates nothing.
/// </summary>
internal sealed class LabelValuesComparer : IEqualityComparer<string[]>, IAlternateEqualityComparer<ReadOnlySpan<string>, string[]>
{
    public static readonly LabelValuesComparer Instance = new();

    public bool Equals(string[]? x, string[]? y) =>
        ReferenceEquals(x, y) || (x is not null && y is not null && Equals((ReadOnlySpan<string>)y, x));

    public int GetHashCode(string[] obj) => GetHashCode((ReadOnlySpan<string>)obj);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Equals(ReadOnlySpan<string> alternate, string[] other)
    {
        if (alternate.Length != other.Length)
        {
            return false;
        }

        for (var i = 0; i < other.Length; i++)
        {
            if (!string.Equals(alternate[i], other[i]))
            {
                return false;
            }
        }

        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int GetHashCode(ReadOnlySpan<string> alternate)
    {
        var hash = alternate.Length;
        foreach (var value in alternate)
        {
            // A null value must reach the add path, which rejects it with a message naming the label.
            hash = (hash * 31) + (value?.GetHashCode() ?? 0);
        }

        return hash;
    }

    public string[] Create(ReadOnlySpan<string> alternate) => alternate.ToArray();
}

/// <summary>Room for up to eight label values on the stack while a label set is assembled.</summary>
[InlineArray(8)]
internal struct LabelBuffer
{
    private string _element0;
}
