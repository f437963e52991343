namespace Metrics;

/// <summary>One exposition format's writing of the three kinds of registry entry; the walk over a scrape is shared.</summary>
internal interface IFamilyWriter
{
    /// <summary>Writes a family whose values this process holds (read value by value).</summary>
    void WriteLocal(MetricFamily family);

    /// <summary>Writes a family from what its backend collected; returns how many values did not fit the family and were left out.</summary>
    long WriteCollected(MetricFamily family, IReadOnlyList<CollectedValue> values);

    /// <summary>Writes what a custom collector yields.</summary>
    void WriteCollector(MetricRegistry registry, ICollector collector);

    /// <summary>Writes every entry of every scrape in registration order and counts the values left out per registry.</summary>
    static void WriteEntries(IReadOnlyList<(MetricRegistry Registry, CollectedScrape Scrape)> scrapes, IFamilyWriter writer)
    {
        foreach (var (registry, scrape) in scrapes)
        {
            var collected = scrape.Collected;
            var skipped = 0L;
            foreach (var entry in scrape.Entries)
            {
                switch (entry)
                {
                    case MetricFamily family when collected is not null && collected.TryGetValue(family, out var values):
                        skipped += writer.WriteCollected(family, values);
                        break;
                    case MetricFamily family:
                        writer.WriteLocal(family);
                        break;
                    case ICollector collector:
                        writer.WriteCollector(registry, collector);
                        break;
                }
            }

            registry.AddSkippedValues(skipped);
        }
    }
}
