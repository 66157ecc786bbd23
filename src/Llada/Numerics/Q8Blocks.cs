namespace Llada.Numerics;

/// <summary>
/// The <see cref="DType.Q8_0"/> block format. A row of weights is cut into blocks of <see cref="BlockSize"/>
/// consecutive values along the reduction dimension; each block stores a binary16 scale d = max|x| / 127 and 32
/// int8 quants q = round(x / d) in [-127, 127], so x ≈ q * d with an error of at most d / 2 per element
/// (8.5 bits per weight). The scale is rounded to binary16 before the quants are computed, so the stored pair
/// reproduces the weights as well as the stored scale allows.
/// </summary>
public static class Q8Blocks
{
    /// <summary>Weights per block (and per scale).</summary>
    public const int BlockSize = 32;

    /// <summary>
    /// Quantises <paramref name="values"/> (a multiple of <see cref="BlockSize"/> long) into <paramref name="quants"/>
    /// (same length) and <paramref name="scales"/> (one per block).
    /// </summary>
    /// <exception cref="ArgumentException">Lengths that do not fit, or a block whose scale overflows binary16 (|x| above ~8.3e6) or is not finite.</exception>
    public static void Quantize(ReadOnlySpan<float> values, Span<sbyte> quants, Span<Half> scales)
    {
        if (values.Length % BlockSize != 0)
            throw new ArgumentException($"{values.Length} values are not a whole number of {BlockSize}-value blocks", nameof(values));
        int blocks = values.Length / BlockSize;
        if (quants.Length < values.Length) throw new ArgumentException($"quants holds {quants.Length}, expected {values.Length}", nameof(quants));
        if (scales.Length < blocks) throw new ArgumentException($"scales holds {scales.Length}, expected {blocks}", nameof(scales));
        for (int b = 0; b < blocks; b++)
        {
            var block = values.Slice(b * BlockSize, BlockSize);
            float max = 0;
            foreach (float v in block) max = MathF.Max(max, MathF.Abs(v));
            Half scale = (Half)(max / 127f);
            if (!float.IsFinite(max) || Half.IsInfinity(scale))
                throw new ArgumentException($"block {b} (values {b * BlockSize}..{b * BlockSize + BlockSize - 1}) has max |x| = {max}, which Q8_0 cannot store");
            scales[b] = scale;
            float d = (float)scale;
            float inverse = d == 0 ? 0 : 1f / d;
            for (int i = 0; i < BlockSize; i++)
                quants[b * BlockSize + i] = (sbyte)Math.Clamp(MathF.Round(block[i] * inverse), -127, 127);
        }
    }

    /// <summary>values[i] = quants[i] * scales[i / 32]: the float32 value each stored element stands for.</summary>
    public static void Dequantize(ReadOnlySpan<sbyte> quants, ReadOnlySpan<Half> scales, Span<float> values)
    {
        if (quants.Length % BlockSize != 0)
            throw new ArgumentException($"{quants.Length} quants are not a whole number of {BlockSize}-value blocks", nameof(quants));
        if (scales.Length < quants.Length / BlockSize) throw new ArgumentException($"scales holds {scales.Length}, expected {quants.Length / BlockSize}", nameof(scales));
        if (values.Length < quants.Length) throw new ArgumentException($"values holds {values.Length}, expected {quants.Length}", nameof(values));
        for (int b = 0; b < quants.Length / BlockSize; b++)
        {
            float d = (float)scales[b];
            for (int i = b * BlockSize; i < (b + 1) * BlockSize; i++) values[i] = quants[i] * d;
        }
    }
}
