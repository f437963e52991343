// The multi-process tests start real processes on a small machine; running test classes in parallel would only
// make them compete for the cores and stretch the kill timings.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
