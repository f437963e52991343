namespace Metrics;

/// <summary>
/// A number a backend reports about its own health (updates it had to drop, series it refused), exposed by the host
/// next to the application's metrics in every scrape that reads this backend.
/// </summary>
/// <param name="Name">The metric name, for example <c>metrics_backend_dropped_updates_total</c>; a counter's name ends in <c>_total</c>.</param>
/// <param name="Help">What the number means and what to do when it grows.</param>
/// <param name="Type"><see cref="MetricType.Counter"/> or <see cref="MetricType.Gauge"/>.</param>
/// <param name="Value">The current value.</param>
public readonly record struct BackendStatistic(string Name, string Help, MetricType Type, double Value);
