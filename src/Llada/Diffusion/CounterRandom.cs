namespace Llada.Diffusion;

/// <summary>
/// SplitMix64 stream keyed by the coordinates of a draw (seed, row, block, step, position). Keying each position's
/// stream by where it is, instead of sharing one sequential generator, makes results independent of how the work
/// is split across threads and of which other rows share the batch.
/// </summary>
internal struct CounterRandom
{
    private const ulong Golden = 0x9E3779B97F4A7C15UL;
    private ulong _state;

    public CounterRandom(ulong key) => _state = key;

    /// <summary>Stream for the given coordinates.</summary>
    public static CounterRandom For(long seed, long a, long b = 0, long c = 0, long d = 0, long e = 0)
    {
        ulong h = Finalize((ulong)seed + Golden);
        h = Mix(h, a, 1);
        h = Mix(h, b, 2);
        h = Mix(h, c, 3);
        h = Mix(h, d, 4);
        h = Mix(h, e, 5);
        return new CounterRandom(h);
    }

    private static ulong Mix(ulong h, long value, ulong slot) => Finalize(h ^ Finalize(unchecked((ulong)value + slot * Golden)));

    public ulong NextUInt64() => Finalize(_state += Golden);

    /// <summary>Uniform in the open interval (0, 1), so that ln(U) and ln(-ln U) are finite.</summary>
    public double NextOpenUnit() => ((NextUInt64() >> 11) + 0.5) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, n).</summary>
    public int NextInt(int n) => (int)((NextUInt64() >> 33) * (ulong)n >> 31);

    private static ulong Finalize(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
