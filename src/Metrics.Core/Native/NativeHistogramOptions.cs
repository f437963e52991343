namespace Metrics;

/// <summary>
/// Makes a <see cref="Histogram"/> a Prometheus native histogram: exponential buckets created on first use, a zero bucket,
/// and a resolution chosen from a relative error. Exposed in the protobuf format; text formats see the classic buckets.
/// </summary>
/// <remarks>
/// <para>
/// Native buckets are stored only by a backend that declares <see cref="BackendCapabilities.NativeHistogramBuckets"/>
/// (Memory, SharedMemory and Redis do); with any other backend the histogram keeps its classic buckets only.
/// </para>
/// <para>
/// When a series would need more than <see cref="MaxBucketNumber"/> buckets, its resolution is halved (the schema reduced
/// by one) as often as needed, down to schema -4. The histogram is never reset: in a shared store a reset could not be
/// applied to other processes' values at once. Buckets written at the finer schema stay, and every scrape merges all
/// buckets into the coarsest schema present, which is exact because each bucket lies inside one coarser bucket.
/// </para>
/// </remarks>
public sealed record NativeHistogramOptions
{
    /// <summary>The zero threshold client_golang uses by default: 2^-128.</summary>
    public const double DefaultZeroThreshold = 2.938735877055719e-39;

    private readonly double _bucketFactor = 1.1;
    private readonly double _zeroThreshold = DefaultZeroThreshold;
    private readonly int _maxBucketNumber = 160;

    /// <summary>
    /// The largest ratio allowed between a bucket's upper and lower bound (1.1 = at most 10% relative error). The schema is
    /// the coarsest whose factor 2^(2^-schema) does not exceed it, from -4 to 8, as client_golang picks it. Default 1.1
    /// (schema 3).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a finite number greater than 1.</exception>
    public double BucketFactor
    {
        get => _bucketFactor;
        init => _bucketFactor = value > 1 && double.IsFinite(value)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(BucketFactor), value, "A native histogram's bucket factor must be a finite number greater than 1, such as 1.1 for 10% relative error.");
    }

    /// <summary>Observations whose magnitude is at most this go to the zero bucket. Default 2^-128; 0 keeps only exact zeros there.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative, NaN or infinite.</exception>
    public double ZeroThreshold
    {
        get => _zeroThreshold;
        init => _zeroThreshold = value >= 0 && double.IsFinite(value)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(ZeroThreshold), value, "A native histogram's zero threshold must be a finite number of at least 0.");
    }

    /// <summary>
    /// The most positive plus negative buckets a series uses at its current schema before its resolution is halved;
    /// 0 for no limit. Default 160: each bucket is a backend value, and a shared store must stay bounded.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative.</exception>
    public int MaxBucketNumber
    {
        get => _maxBucketNumber;
        init => _maxBucketNumber = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(MaxBucketNumber), value, "The maximum bucket number must be 0 (no limit) or more.");
    }

    /// <summary>The schema <see cref="BucketFactor"/> gives: each power of two is split into 2^schema buckets.</summary>
    public int Schema => NativeBuckets.PickSchema(BucketFactor);
}
