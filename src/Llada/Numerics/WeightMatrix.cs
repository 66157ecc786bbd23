namespace Llada.Numerics;

/// <summary>
/// A read-only row-major matrix of <see cref="Rows"/> x <see cref="Cols"/> elements of <see cref="DType"/>,
/// in the checkpoint's [out, in] layout. It points into memory it does not own (a memory-mapped file or a
/// pinned array); the owner keeps that memory alive for as long as the view is used.
/// </summary>
public readonly unsafe struct WeightMatrix
{
    /// <summary>Start of the first element.</summary>
    public readonly void* Data;
    /// <summary>Number of rows (output features).</summary>
    public readonly int Rows;
    /// <summary>Number of columns (input features).</summary>
    public readonly int Cols;
    /// <summary>Element type.</summary>
    public readonly DType DType;

    /// <summary>Creates a view; <paramref name="data"/> must hold rows*cols elements of <paramref name="dtype"/>.</summary>
    public WeightMatrix(void* data, int rows, int cols, DType dtype)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        Data = data;
        Rows = rows;
        Cols = cols;
        DType = dtype;
    }

    /// <summary>Bytes the matrix occupies.</summary>
    public long ByteLength => (long)Rows * Cols * DTypes.SizeOf(DType);

    /// <summary>Element (r, c) converted to float32 (slow; for tests and reference paths).</summary>
    public float this[int r, int c]
    {
        get
        {
            long i = (long)r * Cols + c;
            return DType switch
            {
                DType.F32 => ((float*)Data)[i],
                DType.BF16 => DTypes.BF16ToSingle(((ushort*)Data)[i]),
                DType.F16 => (float)((Half*)Data)[i],
                _ => throw new InvalidOperationException($"unknown dtype {DType}"),
            };
        }
    }
}
