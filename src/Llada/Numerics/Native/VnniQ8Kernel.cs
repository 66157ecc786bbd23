using System.Runtime.InteropServices;

namespace Llada.Numerics.Native;

/// <summary>
/// Arguments of one emitted Q8_0 tile call, passed by pointer so both x86-64 calling conventions reduce to "first
/// integer argument"; the layout is fixed because the code addresses the fields by offset.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct VnniQ8TileArgs
{
    /// <summary>The weight panel [k/4][32 columns][4 bytes], each byte stored as w + 128 (unsigned).</summary>
    public byte* Panel;
    /// <summary>Float32 weight block scales [blocks][32 columns].</summary>
    public float* Scales;
    /// <summary>Number of 32-wide blocks along k (at least 1).</summary>
    public long Blocks;
    /// <summary>Output tile [rows][32] float32.</summary>
    public float* Tile;
    /// <summary>Activation rows, each [blocks] x (32 int8 quants, int32 -128·Σquants, float32 scale) = 40 bytes a block.</summary>
    public fixed long Rows[VnniQ8Kernel.MaxRows];
    /// <summary>Where the kernel parks zmm6-zmm15 (callee-saved xmm6-15 on Windows) while it uses them.</summary>
    public fixed byte Saved[10 * 64];
}

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
internal static unsafe class VnniQ8Kernel
{
    /// <summary>Largest tile height.</summary>
    public const int MaxRows = 6;
    /// <summary>Columns per tile, two zmm of int32.</summary>
    public const int Columns = 32;
    /// <summary>Bytes per activation block: 32 quants, the int32 correction, the float32 scale.</summary>
    public const int ActivationBlockBytes = 40;
    private const int CorrectionOffset = 32, ScaleOffset = 36;

    private const int ColumnVectors = Columns / 16;
    private const int PanelBlockBytes = Q8Blocks.BlockSize * Columns; // 8 groups x 128 bytes

    private static readonly Gpr[] RowRegisters = [Gpr.Rbx, Gpr.Rcx, Gpr.Rdx, Gpr.Rsi, Gpr.Rdi, Gpr.R8];
    private static readonly Gpr Args = Gpr.Rax, Panel = Gpr.R9, Scales = Gpr.R10, Count = Gpr.R11;
    private static readonly Zmm Scale = new(26), Product = new(27);
    private static Zmm Int(int r, int c) => new(r * ColumnVectors + c);
    private static Zmm Float(int r, int c) => new(12 + r * ColumnVectors + c);
    private static Zmm Weight(int c) => new(24 + c);

    private static readonly int PanelField = (int)Marshal.OffsetOf<VnniQ8TileArgs>(nameof(VnniQ8TileArgs.Panel));
    private static readonly int ScalesField = (int)Marshal.OffsetOf<VnniQ8TileArgs>(nameof(VnniQ8TileArgs.Scales));
    private static readonly int BlocksField = (int)Marshal.OffsetOf<VnniQ8TileArgs>(nameof(VnniQ8TileArgs.Blocks));
    private static readonly int TileField = (int)Marshal.OffsetOf<VnniQ8TileArgs>(nameof(VnniQ8TileArgs.Tile));
    private static readonly int RowsField = (int)Marshal.OffsetOf<VnniQ8TileArgs>(nameof(VnniQ8TileArgs.Rows));
    private static readonly int SavedField = (int)Marshal.OffsetOf<VnniQ8TileArgs>(nameof(VnniQ8TileArgs.Saved));

    /// <summary>The machine code of the kernel for <paramref name="rows"/> (1..6) rows; <paramref name="windows"/> picks the calling convention.</summary>
    public static byte[] Emit(int rows, bool windows)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rows, MaxRows);
        var e = new X64Emitter();
        // rbx (both ABIs), rsi and rdi (Windows) are callee-saved; pushing them on System V costs nothing that matters.
        e.Push(Gpr.Rbx); e.Push(Gpr.Rsi); e.Push(Gpr.Rdi);
        e.Mov(Args, windows ? Gpr.Rcx : Gpr.Rdi);
        for (int i = 0; i < 10; i++) e.Store(new Mem(Args, SavedField + 64 * i), new Zmm(6 + i));
        for (int r = 0; r < rows; r++) e.Mov(RowRegisters[r], new Mem(Args, RowsField + 8 * r));
        e.Mov(Panel, new Mem(Args, PanelField));
        e.Mov(Scales, new Mem(Args, ScalesField));
        e.Mov(Count, new Mem(Args, BlocksField));
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < ColumnVectors; c++) e.Xor(Float(r, c), Float(r, c), Float(r, c));

        int loop = e.Position;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < ColumnVectors; c++) e.Broadcast32(Int(r, c), new Mem(RowRegisters[r], CorrectionOffset));
        for (int g = 0; g < Q8Blocks.BlockSize / 4; g++)
        {
            for (int c = 0; c < ColumnVectors; c++) e.Load(Weight(c), new Mem(Panel, g * 4 * Columns + 64 * c));
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < ColumnVectors; c++)
                    e.Vpdpbusd(Int(r, c), Weight(c), new Mem(RowRegisters[r], 4 * g, Broadcast: true));
        }
        // f = fma(float(s), ws · xs, f), the managed kernel's operations in the same order.
        for (int r = 0; r < rows; r++)
        {
            e.Broadcast32(Scale, new Mem(RowRegisters[r], ScaleOffset));
            for (int c = 0; c < ColumnVectors; c++)
            {
                e.Multiply(Product, Scale, new Mem(Scales, 64 * c));
                e.ConvertInt32ToSingle(Int(r, c), Int(r, c));
                e.FusedMultiplyAdd231(Float(r, c), Int(r, c), Product);
            }
        }
        e.Add(Panel, PanelBlockBytes);
        e.Add(Scales, Columns * sizeof(float));
        for (int r = 0; r < rows; r++) e.Add(RowRegisters[r], ActivationBlockBytes);
        e.Dec(Count);
        e.Jnz(loop);

        e.Mov(Panel, new Mem(Args, TileField));
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < ColumnVectors; c++) e.Store(new Mem(Panel, (r * Columns + 16 * c) * sizeof(float)), Float(r, c));
        for (int i = 0; i < 10; i++) e.Load(new Zmm(6 + i), new Mem(Args, SavedField + 64 * i));
        e.VZeroUpper();
        e.Pop(Gpr.Rdi); e.Pop(Gpr.Rsi); e.Pop(Gpr.Rbx);
        e.Ret();
        return e.ToArray();
    }

    /// <summary>Entry points by row count (index rows - 1), or null when the kernels are unavailable.</summary>
    public static nint[]? EntryPoints => Lazy.Value.Entries;

    /// <summary>Why the kernels are off (null when they are on).</summary>
    public static string? Unavailable => Lazy.Value.Reason;

    private static readonly Lazy<(nint[]? Entries, string? Reason)> Lazy = new(Create);

    private static (nint[]?, string?) Create()
    {
        if (!NativeKernels.Enabled) return (null, $"{NativeKernels.EnvironmentVariable}=0");
        if (!Environment.Is64BitProcess || RuntimeInformation.ProcessArchitecture != Architecture.X64) return (null, "not an x86-64 process");
        if (!CpuFeatures.Avx512Vnni) return (null, "the CPU (or OS) lacks AVX512_VNNI");
        try
        {
            bool windows = OperatingSystem.IsWindows();
            var code = new List<byte>();
            var offsets = new int[MaxRows];
            for (int rows = 1; rows <= MaxRows; rows++)
            {
                while (code.Count % 64 != 0) code.Add(0xCC); // int3 padding; entries on cache lines
                offsets[rows - 1] = code.Count;
                code.AddRange(Emit(rows, windows));
            }
            byte* pages = ExecutableMemory.Create(code.ToArray());
            return (offsets.Select(o => (nint)(pages + o)).ToArray(), null);
        }
        catch (Exception ex) when (ex is InvalidOperationException or PlatformNotSupportedException or DllNotFoundException or EntryPointNotFoundException)
        {
            return (null, ex.Message);
        }
    }
}
