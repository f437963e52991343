namespace Metrics;

/// <summary>
/// Renders a collected scrape in the Prometheus protobuf format: a stream of <c>io.prometheus.client.MetricFamily</c>
/// messages, each preceded by its varint length, encoded by hand into the pooled <see cref="ExpositionBuffer"/>.
/// </summary>
/// <remarks>
/// Field numbers follow client_model's <c>metrics.proto</c> (proto2, so repeated scalars are written unpacked). A counter
/// keeps the <c>_total</c> name the text format shows, so switching formats never renames a series. Native histograms
/// carry schema, zero bucket, spans and deltas, with their buckets merged into the coarsest schema stored.
/// </remarks>
internal sealed class ProtobufWriter : IFamilyWriter
{
    private const int Varint = 0;
    private const int Fixed64 = 1;
    private const int Delimited = 2;

    // io.prometheus.client.MetricType values.
    private const ulong CounterType = 0;
    private const ulong GaugeType = 1;
    private const ulong SummaryType = 2;
    private const ulong HistogramType = 4;

    private readonly ExpositionBuffer _out;
    private double[] _scratch = new double[32];
    private CollectedParts? _parts;

    private ProtobufWriter(ExpositionBuffer output) => _out = output;

    public static ExpositionBuffer Render(IReadOnlyList<(MetricRegistry Registry, CollectedScrape Scrape)> scrapes, int sizeHint = 64 * 1024)
    {
        var output = new ExpositionBuffer(sizeHint);
        try
        {
            var writer = new ProtobufWriter(output);
            IFamilyWriter.WriteEntries(scrapes, writer);
            CollectedParts.Return(writer._parts);
            writer._parts = null;

            var written = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (registry, scrape) in scrapes)
            {
                foreach (var statistic in ExpositionWriter.StatisticsToWrite(registry, scrape.Entries, written))
                {
                    var name = statistic.Type == MetricType.Counter ? NameRules.CounterBase(statistic.Name) + "_total" : statistic.Name;
                    var family = writer.BeginFamily(name, statistic.Help, statistic.Type);
                    var metric = writer.BeginMetric([], []);
                    writer.WriteScalar(statistic.Type, statistic.Value, null);
                    writer.End(metric);
                    writer.End(family);
                }
            }

            var overflows = ExpositionWriter.Overflows(scrapes);
            if (overflows.Count > 0)
            {
                var family = writer.BeginFamily(ExpositionWriter.OverflowName, ExpositionWriter.OverflowHelp, MetricType.Counter);
                foreach (var (name, count) in overflows)
                {
                    var metric = writer.BeginMetric(["metric"], [name]);
                    writer.WriteScalar(MetricType.Counter, count, null);
                    writer.End(metric);
                }

                writer.End(family);
            }

            return output;
        }
        catch
        {
            output.Dispose();
            throw;
        }
    }

    public void WriteLocal(MetricFamily family)
    {
        var children = family.Children();
        if (children.Length == 0)
        {
            return;
        }

        var start = BeginFamily(family);
        foreach (var child in children)
        {
            // A state set series is one gauge per state, each with the state label.
            var states = child switch
            {
                StateSet stateSet => stateSet.Values,
                EnumMetric enumMetric => enumMetric.Values,
                _ => null,
            };
            if (states is not null)
            {
                for (var i = 0; i < states.Values.Length; i++)
                {
                    var stateMetric = BeginMetric(family.BackendLabelNames, states.StateLabelValues(i));
                    WriteScalar(MetricType.Gauge, ExpositionWriter.Flag(states.Values[i].Get()), null);
                    End(stateMetric);
                }

                continue;
            }

            var metric = BeginMetric(family.LabelNames, child.FullValues!);
            switch (child)
            {
                case Info info:
                    WriteScalar(MetricType.Gauge, ExpositionWriter.Flag(info.BackingValue!.Get()), null);
                    break;
                case Counter counter:
                    WriteScalar(MetricType.Counter, counter.Backing!.Get(), counter.CreatedUnixSeconds, StoresExemplars(family) ? counter.Backing!.GetExemplar() : null);
                    break;
                case Gauge gauge:
                    WriteScalar(MetricType.Gauge, gauge.BackingValue!.Get(), null);
                    break;
                case Summary summary:
                    WriteSummary(summary.CountValue!.Get(), summary.SumValue!.Get(), summary.CreatedUnixSeconds);
                    break;
                case Histogram histogram:
                    var bounds = family.Buckets.Length;
                    var scratch = Scratch(bounds);
                    var values = histogram.BucketValues!;
                    var exemplars = StoresExemplars(family) ? new RecordedExemplar?[bounds] : null;
                    for (var i = 0; i < bounds; i++)
                    {
                        scratch[i] = values[i].Get();
                        if (exemplars is not null)
                        {
                            exemplars[i] = values[i].GetExemplar();
                        }
                    }

                    NativeHistogramData? native = null;
                    if (histogram.NativeValues is { } series)
                    {
                        native = new NativeHistogramData(series.Schema, series.ZeroThreshold);
                        foreach (var entry in series.Entries)
                        {
                            native.Add(entry.Bucket, entry.Value.Get());
                        }
                    }

                    WriteHistogram(family.Buckets, scratch.AsSpan(0, bounds), histogram.SumValue!.Get(), native?.Complete(), histogram.CreatedUnixSeconds, exemplars);
                    break;
            }

            End(metric);
        }

        End(start);
    }

    /// <summary>Writes the values a backend collected; returns how many did not fit the family's definition.</summary>
    public long WriteCollected(MetricFamily family, IReadOnlyList<CollectedValue> values)
    {
        if (values.Count == 0)
        {
            return 0;
        }

        var skipped = 0L;
        if (family.Type is MetricType.Counter or MetricType.Gauge)
        {
            var start = -1;
            var count = values.Count;
            for (var position = 0; position < count; position++)
            {
                // Only a counter shows its series' creation time, found by position as the text writer finds it; a gauge
                // needs no look-up.
                var value = values[position];
                var series = family.Type == MetricType.Counter ? family.CollectedSeriesAt(position, count, value.LabelValues) : null;
                if (series is null && (family.Type == MetricType.Counter || !family.Fits(value.LabelValues)))
                {
                    skipped++;
                    continue;
                }

                if (start < 0)
                {
                    start = BeginFamily(family);
                }

                var metric = BeginMetric(family.BackendLabelNames, value.LabelValues);
                WriteScalar(family.Type, family.Kind == FamilyKind.Plain ? value.Value : ExpositionWriter.Flag(value.Value), series?.CreatedUnixSeconds, series is null ? null : value.Exemplar);
                End(metric);
            }

            if (start >= 0)
            {
                End(start);
            }

            // As the text writer does: a scraper that only asks for protobuf must not grow the look-up indexes either.
            family.TrimCollectedSeries(values.Count);
            return skipped;
        }

        var parts = _parts ??= CollectedParts.Rent();
        skipped += parts.Group(family, values, nativeBuckets: true, exemplars: true);
        if (parts.Count > 0)
        {
            var familyStart = BeginFamily(family);
            for (var i = 0; i < parts.Count; i++)
            {
                var created = parts.SeriesAt(i).CreatedUnixSeconds;
                var metric = BeginMetric(family.LabelNames, parts.LabelValuesAt(i));
                if (family.Type == MetricType.Histogram)
                {
                    WriteHistogram(family.Buckets, parts.BucketsAt(i), parts.SumAt(i), parts.NativeAt(i)?.Complete(), created, parts.ExemplarsAt(i));
                }
                else
                {
                    WriteSummary(parts.SummaryCountAt(i), parts.SumAt(i), created);
                }

                End(metric);
            }

            End(familyStart);
        }

        family.TrimCollectedSeries(values.Count);
        return skipped;
    }

    public void WriteCollector(MetricRegistry registry, ICollector collector)
    {
        foreach (var snapshot in collector.CollectDeclared())
        {
            var name = CollectorSamples.Name(registry, snapshot);
            var family = BeginFamily(CollectorSamples.SampleName(name, snapshot.Kind), snapshot.Help, snapshot.Type, snapshot.Unit);
            switch (snapshot.Kind)
            {
                case MetricSnapshotKind.Histogram:
                    var bounds = snapshot.BucketArray;
                    var perBucket = Scratch(bounds.Length);
                    foreach (var sample in snapshot.HistogramSamples)
                    {
                        var histogram = BeginMetric(snapshot.LabelNames, sample.LabelValues);
                        WriteHistogram(bounds, CollectorSamples.PerBucket(sample, perBucket, bounds.Length), sample.Sum, null, 0, ExpositionWriter.BucketExemplars(sample));
                        End(histogram);
                    }

                    break;
                case MetricSnapshotKind.Summary:
                    foreach (var sample in snapshot.SummarySamples)
                    {
                        var summary = BeginMetric(snapshot.LabelNames, sample.LabelValues);
                        WriteSummary(sample.Count, sample.Sum, 0);
                        End(summary);
                    }

                    break;
                case MetricSnapshotKind.StateSet:
                    string[] names = [.. snapshot.LabelNames, name];
                    foreach (var sample in snapshot.StateSetSamples)
                    {
                        foreach (var (state, value) in sample.States)
                        {
                            var metric = BeginMetric(names, [.. sample.LabelValues, state]);
                            WriteScalar(MetricType.Gauge, value ? 1 : 0, null);
                            End(metric);
                        }
                    }

                    break;
                default:
                    foreach (var sample in snapshot.Samples)
                    {
                        var metric = BeginMetric(snapshot.LabelNames, sample.LabelValues);
                        WriteScalar(snapshot.Type, sample.Value, null, snapshot.Kind == MetricSnapshotKind.Counter ? sample.Exemplar : null);
                        End(metric);
                    }

                    break;
            }

            End(family);
        }
    }

    private int BeginFamily(MetricFamily family)
    {
        // A family message is only preceded by its length: the stream is "delimited", not a repeated field.
        var start = _out.BeginLength();
        Tag(1, Delimited);
        _out.WriteVarint((ulong)family.NameBytes.Length);
        _out.WriteRaw(family.NameBytes);
        String(2, family.Help);
        Tag(3, Varint);
        _out.WriteVarint(TypeOf(family.Type));
        Unit(family.Unit);
        return start;
    }

    private int BeginFamily(string name, string help, MetricType type, string? unit = null)
    {
        var start = _out.BeginLength();
        String(1, name);
        String(2, help);
        Tag(3, Varint);
        _out.WriteVarint(TypeOf(type));
        Unit(unit);
        return start;
    }

    /// <summary>Writes <c>MetricFamily.unit</c> (field 5 in client_model's metrics.proto), left out when the metric has none.</summary>
    private void Unit(string? unit)
    {
        if (unit is not null)
        {
            String(5, unit);
        }
    }

    private static ulong TypeOf(MetricType type) => type switch
    {
        MetricType.Counter => CounterType,
        MetricType.Gauge => GaugeType,
        MetricType.Summary => SummaryType,
        _ => HistogramType,
    };

    /// <summary>Starts a <c>Metric</c> (field 4 of <c>MetricFamily</c>) with its label pairs.</summary>
    private int BeginMetric(IReadOnlyList<string> names, IReadOnlyList<string> values)
    {
        var metric = BeginMessage(4);
        for (var i = 0; i < names.Count; i++)
        {
            var pair = BeginMessage(1);
            String(1, names[i]);
            String(2, values[i]);
            End(pair);
        }

        return metric;
    }

    private static bool StoresExemplars(MetricFamily family) => (family.Backend.Capabilities & BackendCapabilities.Exemplars) != 0;

    /// <summary>Writes an <c>Exemplar</c> message (labels 1, value 2, timestamp 3) as field <paramref name="field"/>.</summary>
    private void WriteExemplar(int field, in RecordedExemplar exemplar)
    {
        var message = BeginMessage(field);
        var pairs = exemplar.Labels.Pairs();
        for (var i = 0; i < pairs.Length; i += 2)
        {
            var pair = BeginMessage(1);
            String(1, pairs[i]);
            String(2, pairs[i + 1]);
            End(pair);
        }

        Double(2, exemplar.Value);
        Timestamp(3, exemplar.TimestampUnixSeconds);
        End(message);
    }

    private void WriteScalar(MetricType type, double value, double? created, RecordedExemplar? exemplar = null)
    {
        // Counter is field 3 of Metric, Gauge field 2; each holds its value in field 1 (a counter its exemplar in 2).
        var message = BeginMessage(type == MetricType.Counter ? 3 : 2);
        Double(1, value);
        if (exemplar is { } shown)
        {
            WriteExemplar(2, shown);
        }

        if (created is { } seconds)
        {
            Timestamp(3, seconds);
        }

        End(message);
    }

    private void WriteSummary(double count, double sum, double created)
    {
        var summary = BeginMessage(4);
        Tag(1, Varint);
        _out.WriteVarint(Count(count));
        Double(2, sum);
        Timestamp(4, created);
        End(summary);
    }

    private void WriteHistogram(double[] bounds, ReadOnlySpan<double> buckets, double sum, NativeHistogramData? native, double created, ReadOnlySpan<RecordedExemplar?> exemplars = default)
    {
        var histogram = BeginMessage(7);
        var cumulative = 0.0;
        foreach (var bucket in buckets)
        {
            cumulative += bucket;
        }

        // With native buckets the count is theirs: Prometheus requires it to equal the zero bucket plus every bucket.
        Tag(1, Varint);
        _out.WriteVarint(Count(native?.Count ?? cumulative));
        Double(2, sum);

        // The +Inf bucket is implied by the count; a native histogram declared without classic buckets has no others.
        cumulative = 0;
        for (var i = 0; i < buckets.Length - 1; i++)
        {
            cumulative += buckets[i];
            var bucket = BeginMessage(3);
            Tag(1, Varint);
            _out.WriteVarint(Count(cumulative));
            Double(2, bounds[i]);
            if (i < exemplars.Length && exemplars[i] is { } exemplar)
            {
                WriteExemplar(3, exemplar);
            }

            End(bucket);
        }

        Timestamp(15, created);
        if (native is not null)
        {
            Tag(5, Varint);
            _out.WriteVarint(ZigZag(native.Schema));
            Double(6, native.ZeroThreshold);
            Tag(7, Varint);
            _out.WriteVarint(Count(native.ZeroCount));
            WriteSpans(9, 10, native.Negative);
            if (native.Positive.Length == 0 && native.Negative.Length == 0 && native.ZeroThreshold == 0)
            {
                // A no-op span: without any native field set, Prometheus would read a classic histogram.
                var span = BeginMessage(12);
                End(span);
            }
            else
            {
                WriteSpans(12, 13, native.Positive);
            }

            // A native histogram's exemplars (field 16), the +Inf bucket's included, which has no bucket message.
            foreach (var exemplar in exemplars)
            {
                if (exemplar is { } shown)
                {
                    WriteExemplar(16, shown);
                }
            }
        }

        End(histogram);
    }

    /// <summary>
    /// Writes buckets as spans of consecutive indices and count deltas. As in client_golang, a gap of one or two empty
    /// buckets is written as zero counts inside the span: cheaper than starting another one.
    /// </summary>
    private void WriteSpans(int spanField, int deltaField, (int Index, double Count)[] buckets)
    {
        if (buckets.Length == 0)
        {
            return;
        }

        // First the spans, then the deltas: proto fields may come in any order, and these are two repeated fields.
        var spanStart = 0;
        var next = 0;
        for (var i = 0; i <= buckets.Length; i++)
        {
            var ends = i == buckets.Length || (i > 0 && buckets[i].Index - buckets[i - 1].Index > 3);
            if (i > 0 && ends)
            {
                var first = buckets[spanStart].Index;
                var length = buckets[i - 1].Index - first + 1;
                var span = BeginMessage(spanField);
                Tag(1, Varint);
                _out.WriteVarint(ZigZag(first - next));
                Tag(2, Varint);
                _out.WriteVarint((ulong)length);
                End(span);
                next = first + length;
                spanStart = i;
            }
        }

        var previous = 0L;
        for (var i = 0; i < buckets.Length; i++)
        {
            if (i > 0)
            {
                var gap = buckets[i].Index - buckets[i - 1].Index - 1;
                if (gap is > 0 and <= 2)
                {
                    for (var j = 0; j < gap; j++)
                    {
                        Tag(deltaField, Varint);
                        _out.WriteVarint(ZigZag(-previous));
                        previous = 0;
                    }
                }
            }

            var count = (long)Count(buckets[i].Count);
            Tag(deltaField, Varint);
            _out.WriteVarint(ZigZag(count - previous));
            previous = count;
        }
    }

    private void Timestamp(int field, double unixSeconds)
    {
        if (!(unixSeconds > 0))
        {
            return;
        }

        var ms = (long)Math.Round(unixSeconds * 1000);
        var timestamp = BeginMessage(field);
        Tag(1, Varint);
        _out.WriteVarint((ulong)(ms / 1000));
        var nanos = ms % 1000 * 1_000_000;
        if (nanos != 0)
        {
            Tag(2, Varint);
            _out.WriteVarint((ulong)nanos);
        }

        End(timestamp);
    }

    /// <summary>A count for a uint64 field: counts are whole numbers stored as doubles; anything else is clamped.</summary>
    private static ulong Count(double value) => value > 0 ? value < 1.8446744073709552E+19 ? (ulong)Math.Round(value) : ulong.MaxValue : 0;

    private static ulong ZigZag(long value) => (ulong)((value << 1) ^ (value >> 63));

    private void Tag(int field, int wireType) => _out.WriteVarint((ulong)((field << 3) | wireType));

    private void Double(int field, double value)
    {
        Tag(field, Fixed64);
        _out.WriteFixed64(value);
    }

    private void String(int field, string value)
    {
        var message = BeginMessage(field);
        _out.WriteUtf8(value);
        End(message);
    }

    private int BeginMessage(int field)
    {
        Tag(field, Delimited);
        return _out.BeginLength();
    }

    private void End(int start) => _out.EndLength(start);

    private double[] Scratch(int length)
    {
        if (_scratch.Length < length)
        {
            _scratch = new double[length];
        }

        return _scratch;
    }
}
