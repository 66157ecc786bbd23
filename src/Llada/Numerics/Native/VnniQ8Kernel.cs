namespace Llada.Numerics.Native;

/// <summary>
/// The Q8_0 tile kernel written with AVX512-VNNI, emitted as machine code at startup because .NET 10 has no
/// intrinsics for vpdpbusd. It computes exactly what <see cref="QuantizedGemm"/>'s managed kernel does:
/// tile[r, c] = Σ_b fma(s_b, ws[c, b]·xs[r][b]) with s_b the exact integer block dot product.
/// <para>
/// vpdpbusd multiplies unsigned by signed bytes, four adjacent products summed into each int32 lane without
/// saturation. The weights are the unsigned side, stored w + 128 in [0, 255] (exact even for a stored −128), and
/// the activation quants (signed, [−127, 127]) are the embedded-broadcast memory operand, so a step is one
/// instruction per row and 16 columns with no separate broadcast. The offset is removed by starting each block's
/// accumulator at −128·Σ_block q_x (stored next to the quants): s = Σ (w + 128)·q_x − 128·Σ q_x = Σ w·q_x,
/// |Σ (w + 128)·q_x| ≤ 32·255·127, far inside int32.
/// </para>
/// <para>
/// Tile: up to 6 rows x 32 columns, i.e. 12 int32 block accumulators (zmm0-11) and 12 float32 accumulators
/// (zmm12-23) in registers, two weight registers shared by all rows; one variant per row count 1..6.
/// </para>
/// </summary>
internal static class VnniQ8Kernel
{
    /// <summary>Bytes per activation block: 32 quants, the int32 correction, the float32 scale.</summary>
    public const int ActivationBlockBytes = 40;
    private const int CorrectionOffset = 32, ScaleOffset = 36;

    private const int Columns = TileKernel.Columns, ColumnVectors = TileKernel.ColumnVectors;
    private const int PanelBlockBytes = Q8Blocks.BlockSize * Columns; // 8 groups x 128 bytes

    private static readonly Zmm Scale = new(26), Product = new(27);
    private static Zmm Int(int r, int c) => new(r * ColumnVectors + c);
    private static Zmm Float(int r, int c) => new(12 + r * ColumnVectors + c);
    private static Zmm Weight(int c) => new(24 + c);

    /// <summary>The machine code of the kernel for <paramref name="rows"/> (1..6) rows; <paramref name="windows"/> picks the calling convention.</summary>
    public static byte[] Emit(int rows, bool windows)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rows, TileKernel.MaxRows);
        var e = new X64Emitter();
        TileKernel.Enter(e, rows, windows);
        Gpr[] row = TileKernel.RowRegisters;
        Gpr panel = TileKernel.Panel, scales = TileKernel.Scales;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < ColumnVectors; c++) e.Xor(Float(r, c), Float(r, c), Float(r, c));

        int loop = e.Position;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < ColumnVectors; c++) e.Broadcast32(Int(r, c), new Mem(row[r], CorrectionOffset));
        for (int g = 0; g < Q8Blocks.BlockSize / 4; g++)
        {
            for (int c = 0; c < ColumnVectors; c++) e.Load(Weight(c), new Mem(panel, g * 4 * Columns + 64 * c));
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < ColumnVectors; c++)
                    e.Vpdpbusd(Int(r, c), Weight(c), new Mem(row[r], 4 * g, Broadcast: true));
        }
        // f = fma(float(s), ws · xs, f), the managed kernel's operations in the same order.
        for (int r = 0; r < rows; r++)
        {
            e.Broadcast32(Scale, new Mem(row[r], ScaleOffset));
            for (int c = 0; c < ColumnVectors; c++)
            {
                e.Multiply(Product, Scale, new Mem(scales, 64 * c));
                e.ConvertInt32ToSingle(Int(r, c), Int(r, c));
                e.FusedMultiplyAdd231(Float(r, c), Int(r, c), Product);
            }
        }
        e.Add(panel, PanelBlockBytes);
        e.Add(scales, Columns * sizeof(float));
        for (int r = 0; r < rows; r++) e.Add(row[r], ActivationBlockBytes);
        e.Dec(TileKernel.Count);
        e.Jnz(loop);

        TileKernel.Leave(e, rows, Float);
        return e.ToArray();
    }

    /// <summary>Entry points by row count (index rows - 1), or null when the kernels are unavailable.</summary>
    public static nint[]? EntryPoints => Lazy.Value.Entries;

    /// <summary>Why the kernels are off (null when they are on).</summary>
    public static string? Unavailable => Lazy.Value.Reason;

    private static readonly Lazy<(nint[]? Entries, string? Reason)> Lazy =
        new(() => TileKernel.Create(CpuFeatures.Avx512Vnni, "AVX512_VNNI", Emit));
}
