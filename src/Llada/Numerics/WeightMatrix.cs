namespace Llada.Numerics;

/// <summary>
/// A read-only row-major matrix of <see cref="Rows"/> x <see cref="Cols"/> elements of <see cref="DType"/>,
/// in the checkpoint's [out, in] layout. It points into memory it does not own (a memory-mapped file or a
/// pinned array); the owner keeps that memory alive for as long as the view is used.
/// A <see cref="DType.Q8_0"/> matrix is two arrays: int8 quants [Rows, Cols] at <see cref="Data"/> and binary16
/// block scales [Rows, Cols / 32] at <see cref="Scales"/> (see <see cref="Q8Blocks"/>); the matrix products take
/// either kind, so model code never needs to know which it holds.
/// </summary>
public readonly unsafe struct WeightMatrix
{
    /// <summary>Start of the first element (the first int8 quant for <see cref="DType.Q8_0"/>).</summary>
    public readonly void* Data;
    /// <summary>Start of the binary16 block scales of a <see cref="DType.Q8_0"/> matrix; null for the float dtypes.</summary>
    public readonly Half* Scales;
    /// <summary>Number of rows (output features).</summary>
    public readonly int Rows;
    /// <summary>Number of columns (input features).</summary>
    public readonly int Cols;
    /// <summary>Element type.</summary>
    public readonly DType DType;
    /// <summary>
    /// A <see cref="DType.Q8_0"/> matrix packed once into the matrix kernel's panel layout (see
    /// <see cref="PackedWeights"/>), or null; <see cref="Data"/> and <see cref="Scales"/> stay valid either way.
    /// </summary>
    internal readonly sbyte* Panels;
    /// <summary>Whether <see cref="Panels"/> hold w + 128 (the emitted VNNI kernel's layout) rather than w.</summary>
    internal readonly bool PanelsOffset;

    /// <summary>Creates a view; <paramref name="data"/> must hold rows*cols elements of a float <paramref name="dtype"/>.</summary>
    public WeightMatrix(void* data, int rows, int cols, DType dtype)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (dtype == DType.Q8_0) throw new ArgumentException("a Q8_0 matrix needs its block scales: use WeightMatrix.Q8", nameof(dtype));
        Data = data;
        Rows = rows;
        Cols = cols;
        DType = dtype;
    }

    private WeightMatrix(sbyte* quants, Half* scales, int rows, int cols, sbyte* panels = null, bool panelsOffset = false)
    {
        Data = quants;
        Scales = scales;
        Rows = rows;
        Cols = cols;
        DType = DType.Q8_0;
        Panels = panels;
        PanelsOffset = panelsOffset;
    }

    /// <summary>This Q8_0 view with its packed panels attached.</summary>
    internal WeightMatrix WithPanels(sbyte* panels, bool offset) => new((sbyte*)Data, Scales, Rows, Cols, panels, offset);

    /// <summary>
    /// A <see cref="DType.Q8_0"/> view: <paramref name="quants"/> holds rows*cols int8 values, <paramref name="scales"/>
    /// rows*(cols/32) binary16 scales, row-major; cols must be a multiple of <see cref="Q8Blocks.BlockSize"/>.
    /// </summary>
    public static WeightMatrix Q8(sbyte* quants, Half* scales, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (cols % Q8Blocks.BlockSize != 0)
            throw new ArgumentException($"a Q8_0 matrix needs a multiple of {Q8Blocks.BlockSize} columns, got {cols}", nameof(cols));
        return new WeightMatrix(quants, scales, rows, cols);
    }

    /// <summary>Bytes the matrix occupies (quants plus scales for <see cref="DType.Q8_0"/>).</summary>
    public long ByteLength => (long)Rows * Cols * DTypes.SizeOf(DType) +
        (DType == DType.Q8_0 ? (long)Rows * (Cols / Q8Blocks.BlockSize) * sizeof(ushort) : 0);

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
                DType.Q8_0 => ((sbyte*)Data)[i] * (float)Scales[i / Q8Blocks.BlockSize],
                _ => throw new InvalidOperationException($"unknown dtype {DType}"),
            };
        }
    }
}
