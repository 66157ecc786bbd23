namespace Llada.Numerics.Native;

/// <summary>
/// The bf16 tile kernel for <see cref="Bf16Arithmetic.Bf16Activations"/>, emitted as machine code because .NET 10
/// has no intrinsics for AVX512_BF16: tile[r, c] = Σ_p x[r][p]·w[c][p] with x and w in bf16, accumulated in
/// float32 by vdpbf16ps (each instruction adds, per lane, the two products of one bf16 pair; round to nearest even,
/// denormal inputs and results flushed to zero, as the instruction defines).
/// <para>
/// Panel: 32 columns of W interleaved as [k/2][32 columns][2 bf16] (<see cref="QuantizedGemm.PackPanel"/> on the
/// bf16 bytes), so one 64-byte load holds one k-pair of 16 columns; activation rows are bf16 [k] and each pair is
/// the {1to16} broadcast memory operand. Tile: up to 6 rows x 32 columns, 12 float32 accumulators (zmm0-11), two
/// weight registers (zmm24-25); a loop trip covers 16 values of k.
/// </para>
/// </summary>
internal static class Bf16DotKernel
{
    /// <summary>Values of k per loop trip; k must be a multiple.</summary>
    public const int KPerStep = 16;

    private const int Columns = TileKernel.Columns, ColumnVectors = TileKernel.ColumnVectors;
    private static Zmm Float(int r, int c) => new(r * ColumnVectors + c);
    private static Zmm Weight(int c) => new(24 + c);

    /// <summary>The machine code of the kernel for <paramref name="rows"/> (1..6) rows; <paramref name="windows"/> picks the calling convention.</summary>
    public static byte[] Emit(int rows, bool windows)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rows, TileKernel.MaxRows);
        var e = new X64Emitter();
        TileKernel.Enter(e, rows, windows);
        Gpr[] row = TileKernel.RowRegisters;
        Gpr panel = TileKernel.Panel;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < ColumnVectors; c++) e.Xor(Float(r, c), Float(r, c), Float(r, c));
        int loop = e.Position;
        for (int pair = 0; pair < KPerStep / 2; pair++)
        {
            for (int c = 0; c < ColumnVectors; c++) e.Load(Weight(c), new Mem(panel, pair * 4 * Columns + 64 * c));
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < ColumnVectors; c++)
                    e.Vdpbf16ps(Float(r, c), Weight(c), new Mem(row[r], 4 * pair, Broadcast: true));
        }
        e.Add(panel, KPerStep * 2 * Columns);
        for (int r = 0; r < rows; r++) e.Add(row[r], KPerStep * sizeof(ushort));
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
        new(() => TileKernel.Create(CpuFeatures.Avx512Bf16, "AVX512_BF16", Emit));
}
