using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Llada.Numerics.Native;

namespace Llada.Numerics;

/// <summary>How matrix products with <see cref="DType.BF16"/> weights treat the activations.</summary>
public enum Bf16Arithmetic
{
    /// <summary>The default: bf16 weights are widened to float32 and multiplied with float32 activations.</summary>
    Float32,
    /// <summary>
    /// Opt-in, like PyTorch's bf16 autocast: activations are rounded to bf16 (to nearest even, a relative error of
    /// at most 2^-9 each) and products are summed in float32, by the emitted vdpbf16ps kernel where the CPU has
    /// AVX512_BF16. Changes results (not bit-identical to <see cref="Float32"/>, nor across CPUs with and without the
    /// instruction), so it is never chosen implicitly.
    /// </summary>
    Bf16Activations,
}

/// <summary>
/// Y[m, n] = bf16(X)[m, k] · W[n, k]^T for bf16 W under <see cref="Bf16Arithmetic.Bf16Activations"/>. With the
/// emitted kernel (<see cref="Bf16DotKernel"/>, k a multiple of 16): X rounded to bf16 rows, W packed per call into
/// 32-column panels of bf16 pairs, 6 x 32 tiles, work split over panels (results independent of the thread count).
/// Otherwise X is rounded to bf16 values held in float32 and the float32 engine does the rest.
/// </summary>
internal static unsafe class Bf16Gemm
{
    /// <summary>Whether the emitted kernel runs when it exists; tests switch it off to cover the fallback.</summary>
    internal static bool UseNative = Bf16DotKernel.EntryPoints is not null;

    private const int PanelCols = QuantizedGemm.PanelCols;

    private struct Problem
    {
        public int M, N, K;
        public float* X, Y, XRounded;
        public ushort* XBf16, W;
        public bool Accumulate;
        public nint* Native;
    }

    public static void MultiplyTransposed(float* x, int m, in WeightMatrix w, float* y, bool accumulate)
    {
        if (w.DType != DType.BF16) throw new ArgumentException($"expected a BF16 matrix, got {w.DType}", nameof(w));
        int k = w.Cols, n = w.Rows;
        if (m == 0 || n == 0) return;
        var pr = new Problem { M = m, N = n, K = k, X = x, Y = y, W = (ushort*)w.Data, Accumulate = accumulate };
        nint[]? native = UseNative && k > 0 && k % Bf16DotKernel.KPerStep == 0 ? Bf16DotKernel.EntryPoints : null;
        if (native is null)
        {
            pr.XRounded = ScratchBuffers.Get(8, (long)m * k);
            WorkerPool.For(m, &RoundRowItem, &pr);
            Gemm.MultiplyTransposedFloat(pr.XRounded, m, w, y, accumulate);
            return;
        }
        fixed (nint* entries = native)
        {
            pr.Native = entries;
            pr.XBf16 = (ushort*)ScratchBuffers.Get(8, (long)m * k / 2);
            WorkerPool.For(m, &RoundRowItem, &pr);
            WorkerPool.For((n + PanelCols - 1) / PanelCols, &PanelItem, &pr);
        }
    }

    private static void RoundRowItem(void* context, int i)
    {
        ref Problem pr = ref *(Problem*)context;
        long offset = (long)i * pr.K;
        RoundToBf16(pr.X + offset, pr.K, pr.XBf16 == null ? null : pr.XBf16 + offset, pr.XRounded == null ? null : pr.XRounded + offset);
    }

    /// <summary>
    /// Rounds <paramref name="count"/> floats to bf16 (nearest even, NaN stays NaN, as <see cref="DTypes.SingleToBF16"/>),
    /// writing the bits to <paramref name="bits"/> and/or the values as float32 to <paramref name="values"/>.
    /// </summary>
    internal static void RoundToBf16(float* x, int count, ushort* bits, float* values)
    {
        int p = 0;
        if (Avx512F.IsSupported)
        {
            for (; p + 16 <= count; p += 16)
            {
                var v = Vector512.Load(x + p);
                var u = v.AsUInt32();
                var rounded = (u + Vector512.Create(0x7FFFu) + ((u >> 16) & Vector512<uint>.One)) & Vector512.Create(0xFFFF0000u);
                var nan = (u | Vector512.Create(0x00400000u)) & Vector512.Create(0xFFFF0000u);
                rounded = Vector512.ConditionalSelect(Vector512.Equals(v, v).AsUInt32(), rounded, nan);
                if (values != null) rounded.AsSingle().Store(values + p);
                if (bits != null) Avx512F.ConvertToVector256UInt16(rounded >> 16).Store(bits + p);
            }
        }
        for (; p < count; p++)
        {
            ushort b = DTypes.SingleToBF16(x[p]);
            if (bits != null) bits[p] = b;
            if (values != null) values[p] = DTypes.BF16ToSingle(b);
        }
    }

    private static void PanelItem(void* context, int item)
    {
        ref Problem pr = ref *(Problem*)context;
        int j0 = item * PanelCols, cols = Math.Min(PanelCols, pr.N - j0), k = pr.K;
        float* tile = stackalloc float[TileKernel.MaxRows * PanelCols];
        var panel = (sbyte*)ScratchBuffers.Get(5, (long)k * PanelCols / 2);
        QuantizedGemm.PackPanel((sbyte*)pr.W, 2L * k, j0, cols, panel);
        TileKernelArgs args;
        args.Panel = (byte*)panel;
        args.Scales = null;
        args.Steps = k / Bf16DotKernel.KPerStep;
        args.Tile = tile;
        for (int i = 0; i < pr.M; i += TileKernel.MaxRows)
        {
            int rows = Math.Min(TileKernel.MaxRows, pr.M - i);
            for (int r = 0; r < rows; r++) args.Rows[r] = (long)(pr.XBf16 + (long)(i + r) * k);
            TileKernel.Call(pr.Native[rows - 1], &args);
            QuantizedGemm.StoreTile(pr.Y, pr.N, pr.Accumulate, i, rows, j0, cols, tile);
        }
    }
}
