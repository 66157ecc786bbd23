using System.Runtime.InteropServices;

namespace Llada.Numerics.Native;

/// <summary>
/// Arguments of one emitted tile call, passed by pointer so both x86-64 calling conventions reduce to "first
/// integer argument"; the layout is fixed because the code addresses the fields by offset.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct TileKernelArgs
{
    /// <summary>The packed weight panel [k/4 or k/2][32 columns][4 bytes].</summary>
    public byte* Panel;
    /// <summary>Float32 weight block scales [blocks][32 columns] (Q8_0 only).</summary>
    public float* Scales;
    /// <summary>Trips of the kernel's main loop (at least 1).</summary>
    public long Steps;
    /// <summary>Output tile [rows][32] float32.</summary>
    public float* Tile;
    /// <summary>Activation rows, in the layout the kernel documents.</summary>
    public fixed long Rows[TileKernel.MaxRows];
    /// <summary>Where the kernel parks zmm6-zmm15 (callee-saved xmm6-15 on Windows) while it uses them.</summary>
    public fixed byte Saved[10 * 64];
}

/// <summary>
/// What the emitted tile kernels share: the frame (callee-saved registers, argument loading, the tile store) and
/// the making of one executable function per tile height 1..<see cref="MaxRows"/>.
/// Register use: rax = the argument block, rbx/rcx/rdx/rsi/rdi/r8 = the activation rows, r9 = the panel,
/// r10 = the scales, r11 = the loop counter; zmm0-27 are the kernel's.
/// </summary>
internal static unsafe class TileKernel
{
    /// <summary>Largest tile height.</summary>
    public const int MaxRows = 6;
    /// <summary>Columns per tile: two zmm of 32-bit lanes.</summary>
    public const int Columns = 32;
    public const int ColumnVectors = Columns / 16;

    public static readonly Gpr[] RowRegisters = [Gpr.Rbx, Gpr.Rcx, Gpr.Rdx, Gpr.Rsi, Gpr.Rdi, Gpr.R8];
    public static readonly Gpr Args = Gpr.Rax, Panel = Gpr.R9, Scales = Gpr.R10, Count = Gpr.R11;

    private static readonly int PanelField = Offset(nameof(TileKernelArgs.Panel));
    private static readonly int ScalesField = Offset(nameof(TileKernelArgs.Scales));
    private static readonly int StepsField = Offset(nameof(TileKernelArgs.Steps));
    private static readonly int TileField = Offset(nameof(TileKernelArgs.Tile));
    private static readonly int RowsField = Offset(nameof(TileKernelArgs.Rows));
    private static readonly int SavedField = Offset(nameof(TileKernelArgs.Saved));
    private static int Offset(string field) => (int)Marshal.OffsetOf<TileKernelArgs>(field);

    /// <summary>Saves what the callee must preserve and loads the arguments into the registers above.</summary>
    public static void Enter(X64Emitter e, int rows, bool windows)
    {
        // rbx (both ABIs), rsi and rdi (Windows) are callee-saved; pushing them on System V costs nothing that matters.
        e.Push(Gpr.Rbx); e.Push(Gpr.Rsi); e.Push(Gpr.Rdi);
        e.Mov(Args, windows ? Gpr.Rcx : Gpr.Rdi);
        for (int i = 0; i < 10; i++) e.Store(new Mem(Args, SavedField + 64 * i), new Zmm(6 + i));
        for (int r = 0; r < rows; r++) e.Mov(RowRegisters[r], new Mem(Args, RowsField + 8 * r));
        e.Mov(Panel, new Mem(Args, PanelField));
        e.Mov(Scales, new Mem(Args, ScalesField));
        e.Mov(Count, new Mem(Args, StepsField));
    }

    /// <summary>Stores the float32 accumulators into the tile [rows][32], restores the caller's registers, returns.</summary>
    public static void Leave(X64Emitter e, int rows, Func<int, int, Zmm> accumulator)
    {
        e.Mov(Panel, new Mem(Args, TileField));
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < ColumnVectors; c++)
                e.Store(new Mem(Panel, (r * Columns + 16 * c) * sizeof(float)), accumulator(r, c));
        for (int i = 0; i < 10; i++) e.Load(new Zmm(6 + i), new Mem(Args, SavedField + 64 * i));
        e.VZeroUpper();
        e.Pop(Gpr.Rdi); e.Pop(Gpr.Rsi); e.Pop(Gpr.Rbx);
        e.Ret();
    }

    /// <summary>
    /// Emits <paramref name="emit"/>(rows, windows) for every height into one block of executable pages and
    /// returns the entry points (index rows - 1), or null and the reason when that is not possible here.
    /// </summary>
    public static (nint[]? Entries, string? Reason) Create(bool cpuHasInstructions, string instructions, Func<int, bool, byte[]> emit)
    {
        if (!NativeKernels.Enabled) return (null, $"{NativeKernels.EnvironmentVariable}=0");
        if (!Environment.Is64BitProcess || RuntimeInformation.ProcessArchitecture != Architecture.X64) return (null, "not an x86-64 process");
        if (!cpuHasInstructions) return (null, $"the CPU (or OS) lacks {instructions}");
        try
        {
            bool windows = OperatingSystem.IsWindows();
            var code = new List<byte>();
            var offsets = new int[MaxRows];
            for (int rows = 1; rows <= MaxRows; rows++)
            {
                while (code.Count % 64 != 0) code.Add(0xCC); // int3 padding; entries on cache lines
                offsets[rows - 1] = code.Count;
                code.AddRange(emit(rows, windows));
            }
            byte* pages = ExecutableMemory.Create(code.ToArray());
            return (offsets.Select(o => (nint)(pages + o)).ToArray(), null);
        }
        catch (Exception ex) when (ex is InvalidOperationException or PlatformNotSupportedException or DllNotFoundException or EntryPointNotFoundException)
        {
            return (null, ex.Message);
        }
    }

    /// <summary>Calls an entry point from <see cref="Create"/>; the kernels run for microseconds, so no GC transition.</summary>
    public static void Call(nint entry, TileKernelArgs* args) =>
        ((delegate* unmanaged[SuppressGCTransition]<TileKernelArgs*, void>)entry)(args);
}
