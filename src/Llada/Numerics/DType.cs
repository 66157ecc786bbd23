namespace Llada.Numerics;

/// <summary>Element types a weight tensor may be stored in.</summary>
public enum DType
{
    /// <summary>IEEE 754 binary32.</summary>
    F32,
    /// <summary>bfloat16: the upper 16 bits of a binary32.</summary>
    BF16,
    /// <summary>IEEE 754 binary16 (<see cref="Half"/>).</summary>
    F16,
    /// <summary>
    /// Blocks of <see cref="Q8Blocks.BlockSize"/> int8 weights along a row with one binary16 scale each (llama.cpp's
    /// Q8_0 idea): element = quant * scale. Only as a <see cref="WeightMatrix"/>; see <see cref="Q8Blocks"/>.
    /// </summary>
    Q8_0,
}

/// <summary>Sizes and scalar conversions of <see cref="DType"/> elements.</summary>
public static class DTypes
{
    /// <summary>Bytes per element (for <see cref="DType.Q8_0"/>: per quant, the block scales come on top).</summary>
    public static int SizeOf(DType dtype) => dtype switch
    {
        DType.F32 => 4,
        DType.BF16 => 2,
        DType.F16 => 2,
        DType.Q8_0 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>bfloat16 bits to float32 (exact).</summary>
    public static float BF16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>float32 to bfloat16 bits, rounding to nearest even (NaN stays NaN).</summary>
    public static ushort SingleToBF16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
