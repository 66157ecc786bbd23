namespace Llada.Diffusion;

/// <summary>
/// The forward (noising) process q(x_t | x_0) of the masked diffusion model: each token of x_0 is replaced by the
/// mask token independently with probability p_mask(t). Owns a xoshiro256** random stream whose state can be
/// read and restored, so training resumes bit-identically.
/// </summary>
public sealed class ForwardProcess
{
    /// <summary>eps of p_mask = (1 - eps) t + eps: keeps 1/p_mask at most 1000.</summary>
    public const double Epsilon = 1e-3;

    private ulong _s0, _s1, _s2, _s3;

    /// <summary>Creates the process with its random stream seeded from <paramref name="seed"/>.</summary>
    public ForwardProcess(int maskTokenId, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maskTokenId);
        MaskTokenId = maskTokenId;
        ulong s = seed;
        _s0 = SplitMix64(ref s); _s1 = SplitMix64(ref s); _s2 = SplitMix64(ref s); _s3 = SplitMix64(ref s);
    }

    /// <summary>Id written at masked positions.</summary>
    public int MaskTokenId { get; }

    /// <summary>Masking probability at time t (Eq. 3, with eps so 1/t stays bounded): (1 - eps) t + eps.</summary>
    public static double MaskProbability(double t) => (1 - Epsilon) * t + Epsilon;

    /// <summary>Draws t ~ U[0, 1).</summary>
    public double SampleTime() => NextDouble();

    /// <summary>
    /// Forward process (Sec. 2.1): copies <paramref name="x0"/> to <paramref name="xt"/>, replacing each token by the
    /// mask id independently with probability <paramref name="pMask"/>. Returns how many were masked.
    /// </summary>
    public int Mask(ReadOnlySpan<int> x0, Span<int> xt, double pMask)
    {
        if (xt.Length < x0.Length) throw new ArgumentException($"xt holds {xt.Length} ids, expected at least {x0.Length}", nameof(xt));
        int masked = 0;
        for (int i = 0; i < x0.Length; i++)
        {
            bool mask = NextDouble() < pMask;
            xt[i] = mask ? MaskTokenId : x0[i];
            masked += mask ? 1 : 0;
        }
        return masked;
    }

    /// <summary>Uniform double in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, <paramref name="exclusiveMax"/>) (Lemire's multiply-shift with rejection).</summary>
    public int NextInt(int exclusiveMax)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(exclusiveMax, 1);
        ulong range = (ulong)exclusiveMax;
        ulong threshold = (0UL - range) % range;
        while (true)
        {
            UInt128 product = (UInt128)NextUInt64() * range;
            if ((ulong)product >= threshold) return (int)(ulong)(product >> 64);
        }
    }

    /// <summary>Next 64 random bits (xoshiro256**).</summary>
    public ulong NextUInt64()
    {
        ulong result = BitRotate(_s1 * 5, 7) * 9, t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3; _s2 ^= t; _s3 = BitRotate(_s3, 45);
        return result;
    }

    /// <summary>The random stream's state (4 words), for saving with a training checkpoint.</summary>
    public ulong[] GetState() => [_s0, _s1, _s2, _s3];

    /// <summary>Restores a state from <see cref="GetState"/>.</summary>
    public void SetState(ReadOnlySpan<ulong> state)
    {
        if (state.Length != 4) throw new ArgumentException($"a forward-process state has 4 words, got {state.Length}", nameof(state));
        if ((state[0] | state[1] | state[2] | state[3]) == 0) throw new ArgumentException("an all-zero xoshiro256** state is invalid", nameof(state));
        (_s0, _s1, _s2, _s3) = (state[0], state[1], state[2], state[3]);
    }

    private static ulong BitRotate(ulong x, int k) => (x << k) | (x >> (64 - k));

    private static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
