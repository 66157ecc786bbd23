using System.Runtime.Intrinsics;

namespace Llada.Numerics;

/// <summary>
/// Precomputed rotary position embedding (RoPE) in the LLaDA/Llama "rotate half" convention:
/// inv_freq[j] = theta^(-2j/D) for j &lt; D/2, angle = pos * inv_freq[j] shared by both halves of a head, and
/// (x1, x2) -&gt; (x1 cos - x2 sin, x2 cos + x1 sin) for the first and second half x1, x2 of each head.
/// inv_freq and the angle are rounded to float32 as the PyTorch reference computes them; cos/sin of that
/// float32 angle are then taken accurately.
/// </summary>
public sealed class RopeTable
{
    private readonly float[] _cos, _sin; // [MaxPositions, HeadDim / 2]

    /// <summary>Builds the table for positions 0 .. <paramref name="maxPositions"/> - 1.</summary>
    public RopeTable(int headDim, int maxPositions, double theta)
    {
        if (headDim <= 0 || headDim % 2 != 0) throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "head dimension must be positive and even");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPositions);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(theta);
        HeadDim = headDim;
        MaxPositions = maxPositions;
        Theta = theta;
        int half = headDim / 2;
        var invFreq = new float[half];
        for (int j = 0; j < half; j++) invFreq[j] = 1f / (float)Math.Pow(theta, (float)(2 * j) / headDim);
        _cos = new float[maxPositions * half];
        _sin = new float[maxPositions * half];
        for (int pos = 0; pos < maxPositions; pos++)
            for (int j = 0; j < half; j++)
            {
                float angle = pos * invFreq[j];
                _cos[pos * half + j] = (float)Math.Cos(angle);
                _sin[pos * half + j] = (float)Math.Sin(angle);
            }
    }

    /// <summary>Per-head dimension D.</summary>
    public int HeadDim { get; }

    /// <summary>Number of positions the table covers.</summary>
    public int MaxPositions { get; }

    /// <summary>The base theta.</summary>
    public double Theta { get; }

    /// <summary>cos(angle) for (position, j), j &lt; D/2.</summary>
    public float Cos(int position, int j) => _cos[position * (HeadDim / 2) + j];

    /// <summary>sin(angle) for (position, j), j &lt; D/2.</summary>
    public float Sin(int position, int j) => _sin[position * (HeadDim / 2) + j];

    /// <summary>
    /// Rotates x, a row-major [positions.Length, heads * D] matrix, in place: row t is at absolute position
    /// positions[t] (any subset or order of positions below <see cref="MaxPositions"/>).
    /// </summary>
    public void Apply(Span<float> x, int heads, ReadOnlySpan<int> positions)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        int d = HeadDim, half = d / 2, width = heads * d;
        if (x.Length < (long)positions.Length * width)
            throw new ArgumentException($"x holds {x.Length} floats, expected {positions.Length}x{width}", nameof(x));
        for (int t = 0; t < positions.Length; t++)
        {
            int pos = positions[t];
            if ((uint)pos >= (uint)MaxPositions)
                throw new ArgumentOutOfRangeException(nameof(positions), pos, $"position of row {t} is outside the table's 0..{MaxPositions - 1}");
            ReadOnlySpan<float> cos = _cos.AsSpan(pos * half, half), sin = _sin.AsSpan(pos * half, half);
            for (int h = 0; h < heads; h++)
            {
                Span<float> x1 = x.Slice(t * width + h * d, half), x2 = x.Slice(t * width + h * d + half, half);
                Rotate(x1, x2, cos, sin);
            }
        }
    }

    private static void Rotate(Span<float> x1, Span<float> x2, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; j + 8 <= x1.Length; j += 8)
            {
                var a = Vector256.Create<float>(x1.Slice(j));
                var b = Vector256.Create<float>(x2.Slice(j));
                var c = Vector256.Create<float>(cos.Slice(j));
                var s = Vector256.Create<float>(sin.Slice(j));
                (a * c - b * s).CopyTo(x1.Slice(j));
                (b * c + a * s).CopyTo(x2.Slice(j));
            }
        }
        for (; j < x1.Length; j++)
        {
            float a = x1[j], b = x2[j];
            x1[j] = a * cos[j] - b * sin[j];
            x2[j] = b * cos[j] + a * sin[j];
        }
    }
}
