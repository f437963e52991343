using System.Text;

namespace Metrics;

/// <summary>
/// Renders a collected scrape as Prometheus text 0.0.4 or OpenMetrics 1.0.0 into an <see cref="ExpositionBuffer"/>.
/// Reading the backends happens before (<see cref="ScrapeCollector"/>), so a failing backend never leaves partial text.
/// </summary>
internal sealed class ExpositionWriter : IFamilyWriter
{
    private readonly bool _openMetrics;
    private readonly ExpositionBuffer _out;
    private double[] _scratch = new double[32];
    private CollectedParts? _parts;

    // Statistics written so far: registries served together may share a backend, whose statistics appear once.
    private HashSet<string>? _statistics;

    private ExpositionWriter(ExpositionFormat format, ExpositionBuffer output)
    {
        _openMetrics = format == ExpositionFormat.OpenMetrics;
        _out = output;
    }

    /// <summary>Renders <paramref name="scrape"/> of <paramref name="registry"/>; the caller owns (and disposes) the buffer returned.</summary>
    public static ExpositionBuffer Render(MetricRegistry registry, CollectedScrape scrape, ExpositionFormat format) =>
        Render([(registry, scrape)], format);

    /// <summary>
    /// Renders several registries' scrapes as one exposition: their families in order, each backend's statistics once, one
    /// <c># EOF</c>. The caller has checked that no family name is in two of them.
    /// </summary>
    public static ExpositionBuffer Render(IReadOnlyList<(MetricRegistry Registry, CollectedScrape Scrape)> scrapes, ExpositionFormat format)
    {
        if (format == ExpositionFormat.Protobuf)
        {
            return Remember(scrapes, format, ProtobufWriter.Render(scrapes, SizeHint(scrapes, format)));
        }

        var output = new ExpositionBuffer(SizeHint(scrapes, format));
        try
        {
            var writer = new ExpositionWriter(format, output);
            IFamilyWriter.WriteEntries(scrapes, writer);
            CollectedParts.Return(writer._parts);
            writer._parts = null;

            foreach (var (registry, scrape) in scrapes)
            {
                writer.WriteStatistics(registry, scrape.Entries);
            }

            writer.WriteOverflows(scrapes);

            if (writer._openMetrics)
            {
                output.WriteRaw("# EOF\n"u8);
            }

            return Remember(scrapes, format, output);
        }
        catch
        {
            output.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The buffer size to start an exposition with: a little over the largest of the registries' last ones in this format,
    /// so a store that grew a bit since still fits without copying.
    /// </summary>
    internal static int SizeHint(IReadOnlyList<(MetricRegistry Registry, CollectedScrape Scrape)> scrapes, ExpositionFormat format)
    {
        long last = 0;
        foreach (var (registry, _) in scrapes)
        {
            last = Math.Max(last, registry.RenderedBytes(format));
        }

        return (int)Math.Clamp(last + (last / 8), 64 * 1024, Array.MaxLength);
    }

    private static ExpositionBuffer Remember(IReadOnlyList<(MetricRegistry Registry, CollectedScrape Scrape)> scrapes, ExpositionFormat format, ExpositionBuffer output)
    {
        foreach (var (registry, _) in scrapes)
        {
            registry.Rendered(format, output.Position);
        }

        return output;
    }

    internal static byte[] FormatBound(double bound, bool openMetrics)
    {
        using var output = new ExpositionBuffer(64);
        output.WriteRaw("le=\""u8);
        var start = output.Position;
        output.WriteDouble(bound);
        if (openMetrics && double.IsFinite(bound))
        {
            // OpenMetrics wants canonical floats in le: 1.0, not 1.
            var text = output.Since(start);
            if (text.IndexOfAny("."u8) < 0 && text.IndexOfAny("e"u8) < 0)
            {
                output.WriteRaw(".0"u8);
            }
        }

        output.WriteByte((byte)'"');
        return output.Written.ToArray();
    }

    public void WriteLocal(MetricFamily family)
    {
        var children = family.Children();
        if (children.Length == 0)
        {
            return;
        }

        WriteHeader(family);
        switch (family.Type)
        {
            case MetricType.Counter:
                foreach (var child in children)
                {
                    var counter = (Counter)child;
                    var exemplar = ShowsExemplars(family) ? counter.Backing!.GetExemplar() : null;
                    WriteCounter(family, counter.LabelBytes, counter.Backing!.Get(), counter.CreatedUnixSeconds, exemplar);
                }

                break;
            case MetricType.Gauge:
                foreach (var child in children)
                {
                    switch (child)
                    {
                        case Gauge gauge:
                            WriteSeries(family.NameBytes, default, gauge.LabelBytes, gauge.BackingValue!.Get());
                            break;
                        case Info info:
                            WriteSeries(family.NameBytes, default, info.LabelBytes, Flag(info.BackingValue!.Get()));
                            break;
                        case StateSet stateSet:
                            WriteStates(family, stateSet.Values!);
                            break;
                        case EnumMetric enumMetric:
                            WriteStates(family, enumMetric.Values!);
                            break;
                    }
                }

                break;
            case MetricType.Histogram:
                var bounds = family.Buckets.Length;
                var scratch = Scratch(bounds);
                var exemplars = ShowsExemplars(family) ? new RecordedExemplar?[bounds] : null;
                foreach (var child in children)
                {
                    var histogram = (Histogram)child;
                    var values = histogram.BucketValues!;
                    for (var i = 0; i < bounds; i++)
                    {
                        scratch[i] = values[i].Get();
                        if (exemplars is not null)
                        {
                            exemplars[i] = values[i].GetExemplar();
                        }
                    }

                    if (histogram.NativeOnly)
                    {
                        // Never written: a native-only histogram's count is its native buckets' total.
                        scratch[0] = histogram.NativeValues!.Count();
                    }

                    WriteHistogram(family.NameBytes, family.Buckets, family.LeLabelCache(_openMetrics), histogram.LabelBytes, scratch.AsSpan(0, bounds), histogram.SumValue!.Get(), histogram.CreatedUnixSeconds, exemplars);
                }

                break;
            case MetricType.Summary:
                foreach (var child in children)
                {
                    var summary = (Summary)child;
                    WriteSummary(family.NameBytes, summary.LabelBytes, summary.CountValue!.Get(), summary.SumValue!.Get(), summary.CreatedUnixSeconds);
                }

                break;
        }
    }

    /// <summary>Writes the values a backend collected; returns how many did not fit the family's definition and were left out.</summary>
    public long WriteCollected(MetricFamily family, IReadOnlyList<CollectedValue> values)
    {
        if (values.Count == 0)
        {
            return 0;
        }

        var skipped = 0L;
        var headerWritten = false;
        var count = values.Count;
        if (family.Type is MetricType.Counter or MetricType.Gauge)
        {
            for (var position = 0; position < count; position++)
            {
                var value = values[position];
                if (family.CollectedSeriesAt(position, count, value.LabelValues) is not { } series)
                {
                    skipped++;
                    continue;
                }

                if (!headerWritten)
                {
                    WriteHeader(family);
                    headerWritten = true;
                }

                if (family.Type == MetricType.Counter)
                {
                    WriteCounter(family, series.LabelBytes, value.Value, series.CreatedUnixSeconds, _openMetrics ? value.Exemplar : null);
                }
                else
                {
                    WriteSeries(family.NameBytes, default, series.LabelBytes, family.Kind == FamilyKind.Plain ? value.Value : Flag(value.Value));
                }
            }

            family.TrimCollectedSeries(values.Count);
            return skipped;
        }

        var parts = _parts ??= CollectedParts.Rent();
        skipped += parts.Group(family, values, nativeBuckets: false, exemplars: _openMetrics);
        if (parts.Count > 0)
        {
            WriteHeader(family);
        }

        family.TrimCollectedSeries(values.Count);
        for (var i = 0; i < parts.Count; i++)
        {
            var series = parts.SeriesAt(i);
            if (family.Type == MetricType.Histogram)
            {
                WriteHistogram(family.NameBytes, family.Buckets, family.LeLabelCache(_openMetrics), series.LabelBytes, parts.BucketsAt(i), parts.SumAt(i), series.CreatedUnixSeconds, parts.ExemplarsAt(i));
            }
            else
            {
                WriteSummary(family.NameBytes, series.LabelBytes, parts.SummaryCountAt(i), parts.SumAt(i), series.CreatedUnixSeconds);
            }
        }

        return skipped;
    }

    public void WriteCollector(MetricRegistry registry, ICollector collector)
    {
        foreach (var snapshot in collector.CollectDeclared())
        {
            var name = CollectorSamples.Name(registry, snapshot);
            var sampleName = Encoding.UTF8.GetBytes(CollectorSamples.SampleName(name, snapshot.Kind));
            var headerName = _openMetrics
                ? snapshot.Kind == MetricSnapshotKind.Counter ? Encoding.UTF8.GetBytes(NameRules.CounterBase(name)) : Encoding.UTF8.GetBytes(name)
                : sampleName;
            var kind = snapshot.Kind switch
            {
                MetricSnapshotKind.Info => FamilyKind.Info,
                MetricSnapshotKind.StateSet => FamilyKind.StateSet,
                _ => FamilyKind.Plain,
            };
            WriteHeader(headerName, snapshot.Help, snapshot.Type, kind, snapshot.Unit);
            switch (snapshot.Kind)
            {
                case MetricSnapshotKind.Histogram:
                    WriteCollectedHistograms(sampleName, snapshot);
                    break;
                case MetricSnapshotKind.Summary:
                    foreach (var sample in snapshot.SummarySamples)
                    {
                        WriteSummary(sampleName, Metric.RenderLabels(snapshot.LabelNames, sample.LabelValues), sample.Count, sample.Sum, null);
                    }

                    break;
                case MetricSnapshotKind.StateSet:
                    string[] names = [.. snapshot.LabelNames, name];
                    foreach (var sample in snapshot.StateSetSamples)
                    {
                        foreach (var (state, value) in sample.States)
                        {
                            WriteSeries(sampleName, default, Metric.RenderLabels(names, [.. sample.LabelValues, state]), value ? 1 : 0);
                        }
                    }

                    break;
                default:
                    // Counters keep the _total name in both formats (the sample name), as the registry's own counters do.
                    foreach (var sample in snapshot.Samples)
                    {
                        var exemplar = _openMetrics && snapshot.Kind == MetricSnapshotKind.Counter ? sample.Exemplar : null;
                        WriteSeries(sampleName, default, Metric.RenderLabels(snapshot.LabelNames, sample.LabelValues), sample.Value, exemplar);
                    }

                    break;
            }
        }
    }

    private void WriteCollectedHistograms(byte[] name, MetricSnapshot snapshot)
    {
        var bounds = snapshot.BucketArray;
        var leLabels = bounds.Select(b => FormatBound(b, _openMetrics)).ToArray();
        var perBucket = Scratch(bounds.Length);
        foreach (var sample in snapshot.HistogramSamples)
        {
            WriteHistogram(name, bounds, leLabels, Metric.RenderLabels(snapshot.LabelNames, sample.LabelValues), CollectorSamples.PerBucket(sample, perBucket, bounds.Length), sample.Sum, null, _openMetrics ? BucketExemplars(sample) : null);
        }
    }

    /// <summary>A collected histogram series' bucket exemplars as the writers take them; null when it has none.</summary>
    internal static RecordedExemplar?[]? BucketExemplars(HistogramSample sample) => sample.Exemplars switch
    {
        null => null,
        RecordedExemplar?[] array => array,
        var list => [.. list],
    };

    /// <summary>Writes a state set series: one sample per state, 1 or 0.</summary>
    private void WriteStates(MetricFamily family, StateValues states)
    {
        var labels = states.LabelBytes;
        for (var i = 0; i < labels.Length; i++)
        {
            WriteSeries(family.NameBytes, default, labels[i], Flag(states.Values[i].Get()));
        }
    }

    /// <summary>An info's or state's value as exposed: 1 when the combined value is not 0, as OpenMetrics allows only 1 (and 0).</summary>
    internal static double Flag(double value) => StateValues.IsTrue(value) ? 1 : 0;

    /// <summary>Backends' reports about themselves, once per backend, and the host's own, skipping names the application uses.</summary>
    private void WriteStatistics(MetricRegistry registry, IReadOnlyList<object> entries)
    {
        foreach (var statistic in StatisticsToWrite(registry, entries, _statistics ??= new(StringComparer.Ordinal)))
        {
            var nameBytes = Encoding.UTF8.GetBytes(ExposedName(statistic.Name, statistic.Type));
            WriteHeader(nameBytes, statistic.Help, statistic.Type, FamilyKind.Plain, null);
            WriteSeries(nameBytes, _openMetrics && statistic.Type == MetricType.Counter ? "_total"u8 : default, default, statistic.Value);
        }
    }

    /// <summary>The statistics a scrape shows for <paramref name="registry"/>, leaving out names in <paramref name="written"/> (and adding them).</summary>
    internal static IEnumerable<BackendStatistic> StatisticsToWrite(MetricRegistry registry, IReadOnlyList<object> entries, HashSet<string> written)
    {
        HashSet<ConfiguredBackend>? seen = null;
        foreach (var entry in entries)
        {
            if (entry is not MetricFamily family || family.Backend == ConfiguredBackend.Memory || !(seen ??= []).Add(family.Backend))
            {
                continue;
            }

            foreach (var statistic in family.Backend.Statistics())
            {
                if (Writable(registry, statistic, written))
                {
                    yield return statistic;
                }
            }
        }

        if (registry.SkippedValues > 0)
        {
            var skipped = new BackendStatistic(
                "metrics_scrape_skipped_values_total",
                "Values a backend returned that do not fit the metric's definition in this process (other buckets or labels, written by a process that declared the metric differently), left out of scrapes.",
                MetricType.Counter,
                registry.SkippedValues);
            if (Writable(registry, skipped, written))
            {
                yield return skipped;
            }
        }
    }

    /// <summary>The counter of label sets the cardinality limit refused, one series per family that refused any.</summary>
    internal const string OverflowName = "metrics_cardinality_overflow_total";

    internal const string OverflowHelp = "New label sets a metric family refused because it held as many series as its cardinality limit; their updates went to the series whose labels are all \"__overflow__\".";

    /// <summary>
    /// The families that refused label sets, by exposed name, unless the application uses the counter's name itself: the
    /// registry's overflow counter as its backend holds it (summed over processes on a shared one), for the families the
    /// registry has.
    /// </summary>
    internal static List<(string Metric, double Count)> Overflows(IReadOnlyList<(MetricRegistry Registry, CollectedScrape Scrape)> scrapes)
    {
        var result = new List<(string, double)>();
        foreach (var (registry, scrape) in scrapes)
        {
            if (scrape.Overflow is not { } overflow || registry.IsRegistered(OverflowName))
            {
                continue;
            }

            // Built on the first refusal found: most scrapes have none. A family shows once, and only the registry's own.
            HashSet<string>? names = null;
            bool Shows(string metric) => (names ??= scrape.Entries.OfType<MetricFamily>().Select(f => f.Name).ToHashSet(StringComparer.Ordinal)).Remove(metric);
            if (scrape.Collected is not null && scrape.Collected.TryGetValue(overflow, out var values))
            {
                foreach (var value in values)
                {
                    if (value.Bucket is null && value.LabelValues.Count == 1 && value.Value > 0 && Shows(value.LabelValues[0]))
                    {
                        result.Add((value.LabelValues[0], value.Value));
                    }
                }

                continue;
            }

            foreach (var child in overflow.Children())
            {
                var count = ((Counter)child).Backing!.Get();
                if (count > 0 && Shows(child.FullValues![0]))
                {
                    result.Add((child.FullValues[0], count));
                }
            }
        }

        return result;
    }

    private void WriteOverflows(IReadOnlyList<(MetricRegistry Registry, CollectedScrape Scrape)> scrapes)
    {
        var overflows = Overflows(scrapes);
        if (overflows.Count == 0)
        {
            return;
        }

        var nameBytes = Encoding.UTF8.GetBytes(ExposedName(OverflowName, MetricType.Counter));
        WriteHeader(nameBytes, OverflowHelp, MetricType.Counter, FamilyKind.Plain, null);
        foreach (var (metric, count) in overflows)
        {
            WriteSeries(nameBytes, _openMetrics ? "_total"u8 : default, Metric.RenderLabels(["metric"], [metric]), count);
        }
    }

    private static bool Writable(MetricRegistry registry, BackendStatistic statistic, HashSet<string> written) =>
        !registry.IsRegistered(statistic.Name) && statistic.Type is MetricType.Counter or MetricType.Gauge && written.Add(statistic.Name);

    /// <summary>The family name in the header: a counter's base in OpenMetrics, its <c>_total</c> name in text.</summary>
    private string ExposedName(string name, MetricType type) =>
        type != MetricType.Counter ? name : _openMetrics ? NameRules.CounterBase(name) : NameRules.CounterBase(name) + "_total";

    private ReadOnlySpan<byte> TypeName(MetricType type, FamilyKind kind) => (kind, _openMetrics) switch
    {
        (FamilyKind.Info, true) => "info"u8,
        (FamilyKind.StateSet, true) => "stateset"u8,
        _ => TypeName(type),
    };

    private static ReadOnlySpan<byte> TypeName(MetricType type) => type switch
    {
        MetricType.Counter => "counter"u8,
        MetricType.Gauge => "gauge"u8,
        MetricType.Histogram => "histogram"u8,
        _ => "summary"u8,
    };

    private void WriteHeader(MetricFamily family)
    {
        var index = _openMetrics ? 1 : 0;
        var header = family.HeaderCache[index];
        if (header is null)
        {
            using var temp = new ExpositionBuffer(256);
            new ExpositionWriter(_openMetrics ? ExpositionFormat.OpenMetrics : ExpositionFormat.PrometheusText, temp)
                .WriteHeader(_openMetrics ? family.OpenMetricsCounterBase : family.NameBytes, family.Help, family.Type, family.Kind, family.Unit);
            header = temp.Written.ToArray();
            family.HeaderCache[index] = header;
        }

        _out.WriteRaw(header);
    }

    private void WriteHeader(ReadOnlySpan<byte> name, string help, MetricType type, FamilyKind kind, string? unit)
    {
        _out.WriteRaw("# HELP "u8);
        _out.WriteRaw(name);
        _out.WriteByte((byte)' ');
        _out.WriteEscaped(help, escapeQuote: _openMetrics);
        _out.WriteRaw("\n# TYPE "u8);
        _out.WriteRaw(name);
        _out.WriteByte((byte)' ');
        _out.WriteRaw(TypeName(type, kind));
        _out.WriteByte((byte)'\n');

        // Text 0.0.4 has no unit line; the unit is in the name.
        if (_openMetrics && unit is not null)
        {
            _out.WriteRaw("# UNIT "u8);
            _out.WriteRaw(name);
            _out.WriteByte((byte)' ');
            _out.WriteUtf8(unit);
            _out.WriteByte((byte)'\n');
        }
    }

    /// <summary>Exemplars appear in OpenMetrics only, and only for a backend that stores them.</summary>
    private bool ShowsExemplars(MetricFamily family) => _openMetrics && (family.Backend.Capabilities & BackendCapabilities.Exemplars) != 0;

    private void WriteCounter(MetricFamily family, ReadOnlySpan<byte> labels, double value, double created, RecordedExemplar? exemplar = null)
    {
        if (!_openMetrics)
        {
            WriteSeries(family.NameBytes, default, labels, value);
            return;
        }

        var name = family.OpenMetricsCounterBase;
        WriteSeries(name, "_total"u8, labels, value, exemplar);
        WriteCreated(name, labels, created);
    }

    private void WriteHistogram(ReadOnlySpan<byte> name, double[] bounds, byte[][] leLabels, ReadOnlySpan<byte> labels, ReadOnlySpan<double> buckets, double sum, double? created, ReadOnlySpan<RecordedExemplar?> exemplars = default)
    {
        var cumulative = 0.0;
        for (var i = 0; i < buckets.Length; i++)
        {
            cumulative += buckets[i];
            _out.Ensure(name.Length + labels.Length + leLabels[i].Length + 64);
            _out.WriteRaw(name);
            _out.WriteRaw("_bucket{"u8);
            if (labels.Length > 0)
            {
                _out.WriteRaw(labels);
                _out.WriteByte((byte)',');
            }

            _out.WriteRaw(leLabels[i]);
            _out.WriteRaw("} "u8);
            _out.WriteDouble(cumulative);
            if (i < exemplars.Length && exemplars[i] is { } exemplar)
            {
                WriteExemplar(exemplar);
            }

            _out.WriteByte((byte)'\n');
        }

        // _count is the +Inf bucket by construction, so the two always agree, whatever the backend's consistency.
        // OpenMetrics forbids _sum on a histogram with negative bucket bounds, where it could go down.
        if (!_openMetrics || bounds[0] >= 0)
        {
            WriteSeries(name, "_sum"u8, labels, sum);
        }

        WriteSeries(name, "_count"u8, labels, cumulative);
        if (_openMetrics && created is { } createdSeconds)
        {
            WriteCreated(name, labels, createdSeconds);
        }
    }

    private void WriteSummary(ReadOnlySpan<byte> name, ReadOnlySpan<byte> labels, double count, double sum, double? created)
    {
        WriteSeries(name, "_sum"u8, labels, sum);
        WriteSeries(name, "_count"u8, labels, count);
        if (_openMetrics && created is { } createdSeconds)
        {
            WriteCreated(name, labels, createdSeconds);
        }
    }

    /// <summary>
    /// Writes <c>name_created</c>. Creation times are whole milliseconds, so they are written as integer seconds and
    /// a millisecond fraction: the same text as the general formatter gives, at a fraction of its cost.
    /// </summary>
    private void WriteCreated(ReadOnlySpan<byte> name, ReadOnlySpan<byte> labels, double created)
    {
        var ms = (long)Math.Round(created * 1000);
        if (ms < 0 || ms / 1000.0 != created)
        {
            WriteSeries(name, "_created"u8, labels, created);
            return;
        }

        _out.Ensure(name.Length + labels.Length + 48);
        _out.WriteRaw(name);
        _out.WriteRaw("_created"u8);
        if (labels.Length > 0)
        {
            _out.WriteByte((byte)'{');
            _out.WriteRaw(labels);
            _out.WriteByte((byte)'}');
        }

        _out.WriteByte((byte)' ');
        _out.WriteInt64(ms / 1000);
        var fraction = (int)(ms % 1000);
        if (fraction != 0)
        {
            _out.WriteByte((byte)'.');
            var digits = fraction % 100 == 0 ? 1 : fraction % 10 == 0 ? 2 : 3;
            var scaled = digits == 1 ? fraction / 100 : digits == 2 ? fraction / 10 : fraction;
            _out.WriteInt32(scaled, digits == 1 ? "D1" : digits == 2 ? "D2" : "D3");
        }

        _out.WriteByte((byte)'\n');
    }

    /// <summary>Writes <c> # {labels} value timestamp</c>, the OpenMetrics exemplar that follows a sample on its line.</summary>
    private void WriteExemplar(in RecordedExemplar exemplar)
    {
        _out.WriteRaw(" # {"u8);
        var pairs = exemplar.Labels.Pairs();
        for (var i = 0; i < pairs.Length; i += 2)
        {
            if (i > 0)
            {
                _out.WriteByte((byte)',');
            }

            _out.WriteUtf8(pairs[i]);
            _out.WriteRaw("=\""u8);
            _out.WriteEscaped(pairs[i + 1], escapeQuote: true);
            _out.WriteByte((byte)'"');
        }

        _out.WriteRaw("} "u8);
        _out.WriteDouble(exemplar.Value);
        _out.WriteByte((byte)' ');
        _out.WriteDouble(exemplar.TimestampUnixSeconds);
    }

    private void WriteSeries(ReadOnlySpan<byte> name, ReadOnlySpan<byte> suffix, ReadOnlySpan<byte> labels, double value, RecordedExemplar? exemplar = null)
    {
        _out.Ensure(name.Length + suffix.Length + labels.Length + 40);
        _out.WriteRaw(name);
        _out.WriteRaw(suffix);
        if (labels.Length > 0)
        {
            _out.WriteByte((byte)'{');
            _out.WriteRaw(labels);
            _out.WriteByte((byte)'}');
        }

        _out.WriteByte((byte)' ');
        _out.WriteDouble(value);
        if (exemplar is { } shown)
        {
            WriteExemplar(shown);
        }

        _out.WriteByte((byte)'\n');
    }

    private double[] Scratch(int length)
    {
        if (_scratch.Length < length)
        {
            _scratch = new double[length];
        }

        return _scratch;
    }
}
