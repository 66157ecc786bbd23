using System.Numerics.Tensors;

namespace Llada.Numerics;

/// <summary>Root-mean-square layer normalisation over the rows of a [rows, dim] float32 matrix.</summary>
public static unsafe class RmsNorm
{
    /// <summary>
    /// y[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * weight. <paramref name="y"/> may be the same memory as
    /// <paramref name="x"/> (in place). The mean of squares is accumulated in float32.
    /// </summary>
    public static void Apply(ReadOnlySpan<float> x, int rows, int dim, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        Check(x.Length, y.Length, rows, dim);
        if (weight.Length != dim) throw new ArgumentException($"RMSNorm weight holds {weight.Length} values, expected {dim}", nameof(weight));
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> row = x.Slice(r * dim, dim);
            Span<float> outRow = y.Slice(r * dim, dim);
            float scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(row) / dim + eps);
            TensorPrimitives.Multiply(row, scale, outRow);
            TensorPrimitives.Multiply(outRow, weight, outRow);
        }
    }

    /// <summary>
    /// As <see cref="Apply(ReadOnlySpan{float}, int, int, ReadOnlySpan{float}, float, Span{float})"/> with the
    /// weight given as a 1 x dim <see cref="WeightMatrix"/> of any dtype (converted once per call into per-thread scratch).
    /// </summary>
    public static void Apply(ReadOnlySpan<float> x, int rows, int dim, in WeightMatrix weight, float eps, Span<float> y)
    {
        if (weight.Rows != 1 || weight.Cols != dim)
            throw new ArgumentException($"RMSNorm weight is {weight.Rows}x{weight.Cols}, expected 1x{dim}", nameof(weight));
        float* w = ScratchBuffers.Get(4, dim);
        WeightRows.ToSingle(weight, 0, new Span<float>(w, dim));
        Apply(x, rows, dim, new ReadOnlySpan<float>(w, dim), eps, y);
    }

    internal static void Check(int xLength, int yLength, int rows, int dim)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        if (xLength < (long)rows * dim) throw new ArgumentException($"x holds {xLength} floats, expected {rows}x{dim}", "x");
        if (yLength < (long)rows * dim) throw new ArgumentException($"y holds {yLength} floats, expected {rows}x{dim}", "y");
    }
}

/// <summary>Row access to <see cref="WeightMatrix"/> in float32.</summary>
public static unsafe class WeightRows
{
    /// <summary>Converts row <paramref name="row"/> of <paramref name="w"/> to float32 into <paramref name="destination"/> (length w.Cols).</summary>
    public static void ToSingle(in WeightMatrix w, int row, Span<float> destination)
    {
        if ((uint)row >= (uint)w.Rows) throw new ArgumentOutOfRangeException(nameof(row), row, $"weight has {w.Rows} rows");
        if (destination.Length < w.Cols) throw new ArgumentException($"destination holds {destination.Length} floats, expected {w.Cols}", nameof(destination));
        long start = (long)row * w.Cols;
        switch (w.DType)
        {
            case DType.F32:
                new ReadOnlySpan<float>((float*)w.Data + start, w.Cols).CopyTo(destination);
                break;
            case DType.BF16:
                fixed (float* d = destination) GemmEngine.WidenBF16((ushort*)w.Data + start, d, w.Cols);
                break;
            case DType.F16:
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)w.Data + start, w.Cols), destination);
                break;
            case DType.Q8_0:
                Q8Blocks.Dequantize(new ReadOnlySpan<sbyte>((sbyte*)w.Data + start, w.Cols),
                    new ReadOnlySpan<Half>(w.Scales + start / Q8Blocks.BlockSize, w.Cols / Q8Blocks.BlockSize), destination);
                break;
            default:
                throw new InvalidOperationException($"unknown dtype {w.DType}");
        }
    }
}
