using System.Runtime.InteropServices;

namespace Metrics;

/// <summary>
/// A histogram or summary family's collected values, which arrive one part each (a bucket, the sum, a count), grouped into
/// series in order of first appearance: the one grouping both exposition writers use. Series are found by position
/// (<see cref="MetricFamily.CollectedSeriesAt"/>) and grouped by the family's one object per label set, so grouping
/// compares references, not label text. A writer rents one instance for its render and returns it: the arrays are reused
/// from family to family and from render to render, so a series costs no allocation beyond its native histogram data.
/// </summary>
internal sealed class CollectedParts
{
    // What a value is to the series it belongs to, besides a part index (0 and up).
    private const int Ignored = -1;
    private const int Misfit = -2;
    private const int NativePart = -3;
    private const int InfinityExemplar = -4;

    private readonly Dictionary<CollectedSeries, int> _groups = [];
    private CollectedSeries[] _series = new CollectedSeries[16];
    private IReadOnlyList<string>[] _labels = new IReadOnlyList<string>[16];
    private NativeHistogramData?[] _native = new NativeHistogramData?[16];
    private bool[] _written = new bool[16];
    private int[] _order = new int[16];
    private double[] _parts = new double[64];
    private RecordedExemplar?[] _exemplars = [];
    private int _groupCount;
    private int _width;
    private int _bounds;
    private bool _hasExemplars;

    // Arrays up to this many values (8 MB of parts) are kept between renders; a larger one, from an unusually large family,
    // is left to the collector rather than held for good.
    private const int MaxKeptParts = 1 << 20;

    // Exemplar slots are eight times a part's size, so fewer of them are kept (4 MB).
    private const int MaxKeptExemplars = 1 << 16;

    // One instance kept between renders, so that a steady scrape groups without allocating; a render that finds it
    // taken (scrapes at once) makes its own.
    private static CollectedParts? s_spare;

    /// <summary>An instance for one render: the one kept from the last, or a new one.</summary>
    public static CollectedParts Rent() => Interlocked.Exchange(ref s_spare, null) ?? new CollectedParts();

    /// <summary>Keeps <paramref name="parts"/> for the next render, holding no series or labels meanwhile.</summary>
    public static void Return(CollectedParts? parts)
    {
        if (parts is null || parts._parts.Length > MaxKeptParts || parts._exemplars.Length > MaxKeptExemplars)
        {
            return;
        }

        parts.Reset(null);
        Volatile.Write(ref s_spare, parts);
    }

    /// <summary>How many series have parts to write, in <see cref="SeriesAt"/> order.</summary>
    public int Count { get; private set; }

    /// <summary>The <paramref name="nth"/> series to write.</summary>
    public CollectedSeries SeriesAt(int nth) => _series[_order[nth]];

    /// <summary>The label values of the <paramref name="nth"/> series to write, as its first part came with them.</summary>
    public IReadOnlyList<string> LabelValuesAt(int nth) => _labels[_order[nth]];

    /// <summary>A histogram's per-bucket counts (not cumulative), in the family's bucket order.</summary>
    public ReadOnlySpan<double> BucketsAt(int nth) => _parts.AsSpan(_order[nth] * _width, _bounds);

    /// <summary>The series' sum.</summary>
    public double SumAt(int nth) => _parts[(_order[nth] * _width) + _width - 1];

    /// <summary>A summary's count.</summary>
    public double SummaryCountAt(int nth) => _parts[_order[nth] * _width];

    /// <summary>A histogram's latest exemplar per bucket; empty when no series of the family has any.</summary>
    public ReadOnlySpan<RecordedExemplar?> ExemplarsAt(int nth)
    {
        // A series grouped after the last exemplar has no slots: it has no exemplar.
        var start = _order[nth] * _bounds;
        return _hasExemplars && start + _bounds <= _exemplars.Length ? _exemplars.AsSpan(start, _bounds) : default;
    }

    /// <summary>A histogram's native buckets, when they were grouped (see <see cref="Group"/>).</summary>
    public NativeHistogramData? NativeAt(int nth) => _native[_order[nth]];

    /// <summary>
    /// Groups <paramref name="values"/> of <paramref name="family"/> (a histogram or summary) into series; returns how many
    /// values did not fit the family's definition and were left out.
    /// </summary>
    /// <param name="family">The family the values were collected for.</param>
    /// <param name="values">The backend's values, one part each.</param>
    /// <param name="nativeBuckets">
    /// Whether native buckets are kept as native histogram data (protobuf). Otherwise (text) they are left out beside the
    /// classic buckets, and a native-only histogram's native buckets count into its one (+Inf) bucket.
    /// </param>
    /// <param name="exemplars">Whether bucket exemplars are kept, the latest per bucket.</param>
    public long Group(MetricFamily family, IReadOnlyList<CollectedValue> values, bool nativeBuckets, bool exemplars)
    {
        Reset(family);
        var skipped = 0L;
        var count = values.Count;

        // A backend returns a series' parts, about one per part index: room for that many series at once, rather than
        // growing step by step as a first scrape of a large store fills the arrays.
        Grow((count / _width) + 1);
        _groups.EnsureCapacity((count / _width) + 1);
        var histogram = family.Type == MetricType.Histogram;
        var nativeFamily = histogram && family.NativeEnabled;

        // A native-only histogram never writes its +Inf bucket in text: the native buckets (zero bucket included) count into it.
        var nativeOnly = !nativeBuckets && nativeFamily && _bounds == 1;

        // Backends return a series' parts together, usually with one label array: the previous part's series and group
        // serve the next without a lookup.
        IReadOnlyList<string>? lastLabels = null;
        var lastGroup = -1;
        for (var position = 0; position < count; position++)
        {
            var value = values[position];
            var index = PartIndex(family, value.Bucket, nativeBuckets, nativeFamily, nativeOnly);
            if (index == Misfit || (index == Ignored && nativeBuckets && !family.Fits(value.LabelValues)))
            {
                // A part this family does not have, or a label set of another arity, was written under another definition
                // of the metric (a rolling deploy that changed buckets, say): left out and counted, never a failed scrape.
                // The protobuf writer has always counted a histogram's misfit count as well.
                skipped++;
                continue;
            }

            if (index == Ignored || (index == InfinityExemplar && !exemplars))
            {
                continue;
            }

            int group;
            if (lastGroup >= 0 && ReferenceEquals(value.LabelValues, lastLabels))
            {
                group = lastGroup;
            }
            else
            {
                if (family.CollectedSeriesAt(position, count, value.LabelValues) is not { } series)
                {
                    // The exemplar of an unwritten +Inf bucket is only shown, never counted as a value left out.
                    skipped += index == InfinityExemplar ? 0 : 1;
                    continue;
                }

                group = lastGroup >= 0 && ReferenceEquals(series, _series[lastGroup])
                    ? lastGroup
                    : GroupOf(series, value.LabelValues, nativeFamily && nativeBuckets ? family.Native : null);
                (lastLabels, lastGroup) = (value.LabelValues, group);
            }

            if (index == InfinityExemplar)
            {
                // The unwritten +Inf bucket of a native-only histogram still holds its exemplar, shown on the +Inf line.
                KeepExemplar(group, 0, value.Exemplar);
                continue;
            }

            if (!_written[group])
            {
                // In order of the first part, which a +Inf exemplar is not: a series seen only by one is not written.
                _written[group] = true;
                _order[Count++] = group;
            }

            if (index == NativePart)
            {
                _native[group]!.Add(value.Bucket!.Value, value.Value);
                continue;
            }

            _parts[(group * _width) + index] += value.Value;
            if (exemplars && histogram && index < _bounds)
            {
                KeepExemplar(group, index, value.Exemplar);
            }
        }

        return skipped;
    }

    /// <summary>Where a value goes in its series: a part index, or what else to do with it.</summary>
    private int PartIndex(MetricFamily family, HistogramBucket? part, bool nativeBuckets, bool nativeFamily, bool nativeOnly)
    {
        if (part is not { } bucket)
        {
            return Misfit;
        }

        // Native buckets are for the protobuf format; text formats show the classic buckets kept beside them.
        if (!nativeBuckets && bucket.IsNative && family.Native is not null && !nativeOnly)
        {
            return Ignored;
        }

        var histogram = family.Type == MetricType.Histogram;
        var index = bucket.Part switch
        {
            HistogramPart.Sum => _width - 1,
            HistogramPart.Count when !histogram => 0,
            HistogramPart.Bucket when histogram && !nativeOnly => Array.IndexOf(family.Buckets, bucket.UpperBound),
            _ when bucket.IsNative && nativeOnly => 0,
            _ when bucket.IsNative && nativeBuckets && nativeFamily => NativePart,
            _ => -1,
        };

        if (index != -1)
        {
            return index;
        }

        // A histogram's count is the sum of its buckets, so a stored count is redundant, not a misfit; so is the
        // unwritten +Inf bucket of a native-only one.
        if (histogram && bucket.Part == HistogramPart.Count)
        {
            return Ignored;
        }

        return nativeOnly && bucket.Part == HistogramPart.Bucket && double.IsPositiveInfinity(bucket.UpperBound) ? InfinityExemplar : Misfit;
    }

    /// <summary>Keeps a bucket's exemplar for its series: the latest by timestamp, as backends may return several parts per bucket.</summary>
    private void KeepExemplar(int group, int index, RecordedExemplar? exemplar)
    {
        if (exemplar is not { } shown)
        {
            return;
        }

        // Grown when an exemplar needs it: most families have none, and their series then cost no slots.
        if (_exemplars.Length < _groupCount * _bounds)
        {
            Array.Resize(ref _exemplars, Math.Max(_exemplars.Length * 2, _groupCount * _bounds));
        }

        _hasExemplars = true;
        ref var slot = ref _exemplars[(group * _bounds) + index];
        if (slot is not { } held || shown.TimestampUnixSeconds >= held.TimestampUnixSeconds)
        {
            slot = shown;
        }
    }

    /// <summary>Room for <paramref name="groups"/> series, keeping those grouped so far.</summary>
    private void Grow(int groups)
    {
        if (groups > _series.Length)
        {
            Array.Resize(ref _series, groups);
            Array.Resize(ref _labels, groups);
            Array.Resize(ref _native, groups);
            Array.Resize(ref _written, groups);
            Array.Resize(ref _order, groups);
        }

        if (_parts.Length < groups * _width)
        {
            Array.Resize(ref _parts, groups * _width);
        }
    }

    private void Reset(MetricFamily? family)
    {
        _parts.AsSpan(0, _groupCount * _width).Clear();
        if (_hasExemplars)
        {
            _exemplars.AsSpan(0, Math.Min(_exemplars.Length, _groupCount * _bounds)).Clear();
        }

        _series.AsSpan(0, _groupCount).Clear();
        _labels.AsSpan(0, _groupCount).Clear();
        _native.AsSpan(0, _groupCount).Clear();
        _written.AsSpan(0, _groupCount).Clear();
        _groups.Clear();
        (_groupCount, Count, _hasExemplars) = (0, 0, false);
        _bounds = family?.Type == MetricType.Histogram ? family.Buckets.Length : 0;
        _width = family?.Type == MetricType.Histogram ? _bounds + 1 : 2;
    }

    private int GroupOf(CollectedSeries series, IReadOnlyList<string> labelValues, NativeHistogramOptions? native)
    {
        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_groups, series, out var exists);
        if (exists)
        {
            return slot;
        }

        var group = slot = _groupCount++;
        if (group == _series.Length || _parts.Length < _groupCount * _width)
        {
            Grow(_groupCount * 2);
        }

        _series[group] = series;
        _labels[group] = labelValues;
        _native[group] = native is null ? null : new NativeHistogramData(native.Schema, native.ZeroThreshold);
        return group;
    }
}
