using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llada.Numerics;

/// <summary>
/// The wide tile of the small-m path (AVX-512 machines): 8 x rows by 3 weight rows per call, 24 Vector256
/// accumulators held in the 32 EVEX registers. Against the 4x4 tile it loads each widened weight chunk once for 8
/// rows instead of 4 and reduces 8 sums per shuffle sequence instead of 4, which is what a KV-cache window pass
/// (8-32 activation rows against short k) spends its time on.
/// <para>
/// Every output element is summed exactly as <see cref="Dot4x4"/> sums it (the fixed order the 4x4 tile, the
/// thread split and the golden fixtures rely on): lane l of its accumulator takes the terms p = l (mod 8) of the
/// first k - k % 8 with fused multiply-adds in increasing p, the lanes fold as ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)),
/// then the last k % 8 terms are added one at a time. So the two tiles agree to the bit, whichever runs.
/// </para>
/// </summary>
internal static unsafe partial class GemmEngine
{
    /// <summary>x rows and weight rows (output columns) of the wide tile.</summary>
    private const int WideRows = 8, WideCols = 3;

    /// <summary>Output columns per small-m work item are a multiple of this: whole wide tiles and whole 4x4 tiles.</summary>
    private const int SmallColumnUnit = 12;

    /// <summary>Whether the wide tile runs: it needs the 32 vector registers of AVX-512 (16 would spill).</summary>
    private static bool WideTile(ref Problem pr) => pr.Kind == KernelKind.Vector512 && Avx512F.VL.IsSupported;

    /// <summary>
    /// All rows of the item's columns [j0, j1) through the wide tile: groups of 8 rows, the last one of 5-7 rows
    /// with its missing rows repeating the last one, or of 1-4 rows through the tile's four-row variant.
    /// </summary>
    private static void DotRowsWide(ref Problem pr, int j0, int j1)
    {
        int m = pr.M, k = pr.K;
        // f16 rows are converted to float32 once per column group; bf16 is widened inside the tile (one shift per
        // chunk, cheaper than a store and a reload).
        float* convert = pr.BType == DType.F16 ? ScratchBuffers.Get(2, (long)WideCols * k) : null;
        float* sums = stackalloc float[WideRows * WideCols];
        float** x = stackalloc float*[WideRows];
        void** w = stackalloc void*[WideCols];
        int size = DTypes.SizeOf(pr.BType);
        for (int j = j0; j < j1; j += WideCols)
        {
            int cols = Math.Min(WideCols, j1 - j);
            for (int q = 0; q < WideCols; q++)
                w[q] = (byte*)pr.B + (j + Math.Min(q, cols - 1)) * pr.Ldb * size; // unused slots repeat the last row
            // The weights stream from L3 or memory (a window pass reads every matrix once): the tile fetches the
            // next column group's rows while it computes, or each group would start with three cache misses. With
            // dense rows (ldb = k) they are one block of 3k elements right after this group's.
            byte* next = pr.Ldb == k && j + 2 * WideCols <= j1 ? (byte*)pr.B + (j + WideCols) * pr.Ldb * size : (byte*)w[0];
            if (convert != null)
            {
                for (int q = 0; q < cols; q++)
                    TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(w[q], k), new Span<float>(convert + q * k, k));
                for (int q = 0; q < WideCols; q++) w[q] = convert + Math.Min(q, cols - 1) * k;
            }
            for (int i = 0; i < m; i += WideRows)
            {
                int rows = Math.Min(WideRows, m - i);
                for (int r = 0; r < WideRows; r++) x[r] = pr.A + (i + Math.Min(r, rows - 1)) * pr.Lda;
                bool bf16 = pr.BType == DType.BF16;
                if (rows > 4)
                {
                    if (bf16) DotWide<Bf16Row, EightRows>(x, w, k, sums, next);
                    else DotWide<F32Row, EightRows>(x, w, k, sums, next);
                }
                else if (bf16) DotWide<Bf16Row, FourRows>(x, w, k, sums, next);
                else DotWide<F32Row, FourRows>(x, w, k, sums, next);
                StoreTile(sums, rows, cols, pr.C + i * pr.Ldc + j, pr.Ldc, pr.Alpha, pr.Beta);
            }
        }
    }

    /// <summary>c[r, q] = alpha * sums[q * 8 + r] (+ c[r, q], or + beta * c[r, q]), with the rounding of the 4x4 tile's epilogue.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreTile(float* sums, int rows, int cols, float* c, long ldc, float alpha, float beta)
    {
        // The products of a forward pass (alpha 1, overwrite or accumulate, whole tiles) unrolled; 1 * s == s exactly.
        if (alpha == 1 && cols == WideCols && (beta == 0 || beta == 1))
        {
            float* s1 = sums + WideRows, s2 = sums + 2 * WideRows;
            if (beta == 0)
                for (int r = 0; r < rows; r++, c += ldc) { c[0] = sums[r]; c[1] = s1[r]; c[2] = s2[r]; }
            else
                for (int r = 0; r < rows; r++, c += ldc) { c[0] += sums[r]; c[1] += s1[r]; c[2] += s2[r]; }
            return;
        }
        for (int r = 0; r < rows; r++, c += ldc)
        {
            if (beta == 0)
                for (int q = 0; q < cols; q++) c[q] = alpha * sums[q * WideRows + r];
            else if (beta == 1)
                for (int q = 0; q < cols; q++) c[q] += alpha * sums[q * WideRows + r];
            else
                for (int q = 0; q < cols; q++) c[q] = beta * c[q] + alpha * sums[q * WideRows + r];
        }
    }

    /// <summary>A weight row as the wide tile reads it: eight elements widened to float32, or one.</summary>
    private interface IWeightRow
    {
        static abstract Vector256<float> Load8(void* row, int p);
        static abstract float At(void* row, int p);
        static abstract int Bytes { get; }
    }

    private readonly struct F32Row : IWeightRow
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load8(void* row, int p) => Vector256.Load((float*)row + p);

        public static float At(void* row, int p) => ((float*)row)[p];

        public static int Bytes => sizeof(float);
    }

    private readonly struct Bf16Row : IWeightRow
    {
        // Zero-extend eight bf16 to 32 bits straight from memory, then shift them into the float's high half.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load8(void* row, int p) =>
            Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32((ushort*)row + p), 16).AsSingle();

        public static float At(void* row, int p) => DTypes.BF16ToSingle(((ushort*)row)[p]);

        public static int Bytes => sizeof(ushort);
    }

    /// <summary>Rows of a wide tile: all eight, or the first four (a last group of 1-4 rows wastes less on it).</summary>
    private interface ITileRows
    {
        static abstract bool Eight { get; }
    }

    private readonly struct EightRows : ITileRows
    {
        public static bool Eight => true;
    }

    private readonly struct FourRows : ITileRows
    {
        public static bool Eight => false;
    }

    /// <summary>
    /// sums[q * 8 + r] = dot(x[r], w[q]) for q &lt; 3 and r &lt; 8 (r &lt; 4 with <see cref="FourRows"/>), in the
    /// summation order of <see cref="Dot4x4"/>. Each step also prefetches the matching stretch of the 3k weights
    /// at <paramref name="next"/> (the next column group).
    /// </summary>
    private static void DotWide<TRow, TRows>(float** x, void** w, int k, float* sums, byte* next) where TRow : struct, IWeightRow where TRows : struct, ITileRows
    {
        float* x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3], x4 = x[4], x5 = x[5], x6 = x[6], x7 = x[7];
        void* w0 = w[0], w1 = w[1], w2 = w[2];
        Vector256<float> a00 = default, a01 = default, a02 = default, a10 = default, a11 = default, a12 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a30 = default, a31 = default, a32 = default;
        Vector256<float> a40 = default, a41 = default, a42 = default, a50 = default, a51 = default, a52 = default;
        Vector256<float> a60 = default, a61 = default, a62 = default, a70 = default, a71 = default, a72 = default;
        int p = 0;
        for (; p + 8 <= k; p += 8)
        {
            var v0 = TRow.Load8(w0, p);
            var v1 = TRow.Load8(w1, p);
            var v2 = TRow.Load8(w2, p);
            // A step reads 8 elements of each of 3 rows: 48 bytes of bf16 (one line at most), 96 of float32 (two).
            byte* ahead = next + (long)p * WideCols * TRow.Bytes;
            Sse.Prefetch0(ahead);
            if (TRow.Bytes > 2) Sse.Prefetch0(ahead + 64);
            var u = Vector256.Load(x0 + p);
            a00 = Vector256.FusedMultiplyAdd(u, v0, a00); a01 = Vector256.FusedMultiplyAdd(u, v1, a01); a02 = Vector256.FusedMultiplyAdd(u, v2, a02);
            u = Vector256.Load(x1 + p);
            a10 = Vector256.FusedMultiplyAdd(u, v0, a10); a11 = Vector256.FusedMultiplyAdd(u, v1, a11); a12 = Vector256.FusedMultiplyAdd(u, v2, a12);
            u = Vector256.Load(x2 + p);
            a20 = Vector256.FusedMultiplyAdd(u, v0, a20); a21 = Vector256.FusedMultiplyAdd(u, v1, a21); a22 = Vector256.FusedMultiplyAdd(u, v2, a22);
            u = Vector256.Load(x3 + p);
            a30 = Vector256.FusedMultiplyAdd(u, v0, a30); a31 = Vector256.FusedMultiplyAdd(u, v1, a31); a32 = Vector256.FusedMultiplyAdd(u, v2, a32);
            if (TRows.Eight)
            {
                u = Vector256.Load(x4 + p);
                a40 = Vector256.FusedMultiplyAdd(u, v0, a40); a41 = Vector256.FusedMultiplyAdd(u, v1, a41); a42 = Vector256.FusedMultiplyAdd(u, v2, a42);
                u = Vector256.Load(x5 + p);
                a50 = Vector256.FusedMultiplyAdd(u, v0, a50); a51 = Vector256.FusedMultiplyAdd(u, v1, a51); a52 = Vector256.FusedMultiplyAdd(u, v2, a52);
                u = Vector256.Load(x6 + p);
                a60 = Vector256.FusedMultiplyAdd(u, v0, a60); a61 = Vector256.FusedMultiplyAdd(u, v1, a61); a62 = Vector256.FusedMultiplyAdd(u, v2, a62);
                u = Vector256.Load(x7 + p);
                a70 = Vector256.FusedMultiplyAdd(u, v0, a70); a71 = Vector256.FusedMultiplyAdd(u, v1, a71); a72 = Vector256.FusedMultiplyAdd(u, v2, a72);
            }
        }
        Reduce8(a00, a10, a20, a30, a40, a50, a60, a70).Store(sums);
        Reduce8(a01, a11, a21, a31, a41, a51, a61, a71).Store(sums + WideRows);
        Reduce8(a02, a12, a22, a32, a42, a52, a62, a72).Store(sums + 2 * WideRows);
        for (; p < k; p++)
            for (int q = 0; q < WideCols; q++)
            {
                float wq = TRow.At(w[q], p);
                for (int r = 0; r < (TRows.Eight ? WideRows : 4); r++) sums[q * WideRows + r] += x[r][p] * wq;
            }
    }

    /// <summary>
    /// Lane r of the result = the sum of all 8 lanes of input r, as ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)) like
    /// <see cref="Reduce4"/>, for eight accumulators at once (full-width shuffles and adds instead of 128-bit ones).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Reduce8(Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3,
        Vector256<float> a4, Vector256<float> a5, Vector256<float> a6, Vector256<float> a7)
    {
        // Only instructions with EVEX forms (vshuff32x4, vshufps, vaddps), so the accumulators can stay in ymm16-31.
        // [lanes 0-3 of x | lanes 0-3 of y] + [lanes 4-7 of x | lanes 4-7 of y]: each input folded to four lanes,
        // inputs paired (a0, a4), (a1, a5), ... so that the pairwise adds below leave lane r for input r.
        var t04 = Avx512F.VL.Shuffle2x128(a0, a4, 0b00) + Avx512F.VL.Shuffle2x128(a0, a4, 0b11);
        var t15 = Avx512F.VL.Shuffle2x128(a1, a5, 0b00) + Avx512F.VL.Shuffle2x128(a1, a5, 0b11);
        var t26 = Avx512F.VL.Shuffle2x128(a2, a6, 0b00) + Avx512F.VL.Shuffle2x128(a2, a6, 0b11);
        var t37 = Avx512F.VL.Shuffle2x128(a3, a7, 0b00) + Avx512F.VL.Shuffle2x128(a3, a7, 0b11);
        // Per 128-bit half: (l0+l4)+(l1+l5) and (l2+l6)+(l3+l7) of two inputs, then their sum.
        var h0 = PairwiseAdd(t04, t15);
        var h1 = PairwiseAdd(t26, t37);
        return PairwiseAdd(h0, h1);
    }

    /// <summary>What vhaddps computes ([a0+a1, a2+a3, b0+b1, b2+b3] per 128-bit half), from EVEX-encodable shuffles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> PairwiseAdd(Vector256<float> a, Vector256<float> b) =>
        Avx.Shuffle(a, b, 0b10_00_10_00) + Avx.Shuffle(a, b, 0b11_01_11_01);
}
