using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llada.Numerics;

/// <summary>
/// Y[m, n] = X[m, k] * W[n, k]^T for a <see cref="DType.Q8_0"/> weight matrix W, in integer arithmetic.
/// <para>
/// Each row of X is quantised on the fly to the same 32-wide blocks (int16-held quants in [-127, 127], a float32
/// scale max|x| / 127 per block), so every block contributes one exact integer dot product s = Σ qx·qw (at most
/// 32·127² = 516 128, exact in float32) and y = Σ_blocks s · (dw · dx), accumulated with one fused multiply-add per
/// block in block order. The vector path and the scalar path perform exactly these float operations, so they agree
/// bit for bit.
/// </para>
/// <para>
/// Vector path (AVX-512BW): W is widened, 32 output columns at a time, into a panel of int16 pairs
/// [k/2][32 columns][2] so that vpmaddwd (<see cref="Avx512BW.MultiplyAddAdjacent(Vector512{short}, Vector512{short})"/>)
/// of a broadcast activation pair against one panel row yields two products for each of 16 columns. A 4-row x
/// 32-column tile keeps 8 int32 block accumulators and 8 float32 accumulators in registers. Work is split over
/// panels, so results do not depend on the thread count.
/// </para>
/// </summary>
internal static unsafe class QuantizedGemm
{
    /// <summary>Whether the AVX-512BW kernels run; tests switch it off to cover the scalar path.</summary>
    internal static bool UseVector = Avx512BW.IsSupported;

    private const int B = Q8Blocks.BlockSize;
    private const int PanelCols = 32;
    private const int TileRows = 4;

    private struct Problem
    {
        public int M, N, K, Blocks;
        public float* X, Y, XScales;
        public short* XQuants;
        public sbyte* W;
        public Half* WScales;
        public bool Accumulate, Vector;
    }

    /// <summary>Y (+)= X W^T; <paramref name="w"/> must be <see cref="DType.Q8_0"/>. Steady-state calls do not allocate.</summary>
    public static void MultiplyTransposed(float* x, int m, in WeightMatrix w, float* y, bool accumulate)
    {
        if (w.DType != DType.Q8_0) throw new ArgumentException($"expected a Q8_0 matrix, got {w.DType}", nameof(w));
        int k = w.Cols, n = w.Rows;
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate) new Span<float>(y, checked(m * n)).Clear();
            return;
        }
        var pr = new Problem
        {
            M = m, N = n, K = k, Blocks = k / B, X = x, Y = y, W = (sbyte*)w.Data, WScales = w.Scales,
            Accumulate = accumulate, Vector = UseVector,
        };
        // The quantised activations are the calling thread's; workers read them while it waits in For.
        pr.XQuants = (short*)ScratchBuffers.Get(8, ((long)m * k + 1) / 2);
        pr.XScales = ScratchBuffers.Get(9, (long)m * pr.Blocks);
        WorkerPool.For(m, &QuantizeRowItem, &pr);
        WorkerPool.For((n + PanelCols - 1) / PanelCols, &PanelItem, &pr);
    }

    private static void QuantizeRowItem(void* context, int i)
    {
        ref Problem pr = ref *(Problem*)context;
        QuantizeActivations(pr.X + (long)i * pr.K, pr.K, pr.XQuants + (long)i * pr.K, pr.XScales + (long)i * pr.Blocks, pr.Vector);
    }

    /// <summary>
    /// Quantises k floats (a multiple of 32) into int16-held quants round(x · 127 / max) (ties to even) and one
    /// float32 scale max / 127 per block; max = the block's largest |x|, 0 gives scale 0 and zero quants.
    /// </summary>
    internal static void QuantizeActivations(float* x, int k, short* quants, float* scales, bool vector)
    {
        for (int b = 0; b < k / B; b++)
        {
            float* xb = x + b * B;
            short* qb = quants + b * B;
            if (vector)
            {
                var v0 = Vector512.Load(xb);
                var v1 = Vector512.Load(xb + 16);
                var m = Vector512.Max(Vector512.Abs(v0), Vector512.Abs(v1));
                var m8 = Vector256.Max(m.GetLower(), m.GetUpper());
                var m4 = Vector128.Max(m8.GetLower(), m8.GetUpper());
                float max = MathF.Max(MathF.Max(m4[0], m4[1]), MathF.Max(m4[2], m4[3]));
                float inverse = max == 0 ? 0 : 127f / max;
                scales[b] = max / 127f;
                var s = Vector512.Create(inverse);
                Avx512F.ConvertToVector256Int16(Avx512F.ConvertToVector512Int32(v0 * s)).Store(qb);
                Avx512F.ConvertToVector256Int16(Avx512F.ConvertToVector512Int32(v1 * s)).Store(qb + 16);
            }
            else
            {
                float max = 0;
                for (int p = 0; p < B; p++) max = MathF.Max(max, MathF.Abs(xb[p]));
                float inverse = max == 0 ? 0 : 127f / max;
                scales[b] = max / 127f;
                for (int p = 0; p < B; p++) qb[p] = (short)MathF.Round(xb[p] * inverse, MidpointRounding.ToEven);
            }
        }
    }

    private static void PanelItem(void* context, int item)
    {
        ref Problem pr = ref *(Problem*)context;
        int j0 = item * PanelCols, cols = Math.Min(PanelCols, pr.N - j0), k = pr.K;
        float* tile = stackalloc float[TileRows * PanelCols];
        short** xq = stackalloc short*[TileRows];
        float** xs = stackalloc float*[TileRows];
        int* panel = null;
        float* panelScales = null;
        if (pr.Vector)
        {
            panel = (int*)ScratchBuffers.Get(5, (long)k / 2 * PanelCols + (long)pr.Blocks * PanelCols);
            panelScales = (float*)(panel + (long)k / 2 * PanelCols);
            Pack(ref pr, j0, cols, panel, panelScales);
        }
        for (int i = 0; i < pr.M; i += TileRows)
        {
            int rows = Math.Min(TileRows, pr.M - i);
            for (int r = 0; r < TileRows; r++)
            {
                int row = i + Math.Min(r, rows - 1); // duplicate the last row into unused slots
                xq[r] = pr.XQuants + (long)row * k;
                xs[r] = pr.XScales + (long)row * pr.Blocks;
            }
            if (pr.Vector) Kernel4x32(panel, panelScales, pr.Blocks, xq, xs, tile);
            else ScalarTile(ref pr, j0, cols, xq, xs, tile);
            for (int r = 0; r < rows; r++)
            {
                float* yr = pr.Y + (long)(i + r) * pr.N + j0;
                float* tr = tile + r * PanelCols;
                if (pr.Accumulate) for (int c = 0; c < cols; c++) yr[c] += tr[c];
                else new ReadOnlySpan<float>(tr, cols).CopyTo(new Span<float>(yr, cols));
            }
        }
    }

    /// <summary>
    /// Widens W rows [j0, j0 + cols) to int16 pairs: panel[(p * 32 + c)] = (w[j0+c, 2p], w[j0+c, 2p+1]) as one int32,
    /// and their block scales to float32 scales[b * 32 + c]; missing columns are zero.
    /// </summary>
    private static void Pack(ref Problem pr, int j0, int cols, int* panel, float* scales)
    {
        int pairs = pr.K / 2;
        int* pairsOut = stackalloc int[16];
        for (int c = 0; c < PanelCols; c++)
        {
            if (c >= cols)
            {
                for (int p = 0; p < pairs; p++) panel[p * PanelCols + c] = 0;
                for (int b = 0; b < pr.Blocks; b++) scales[b * PanelCols + c] = 0;
                continue;
            }
            sbyte* row = pr.W + (long)(j0 + c) * pr.K;
            Half* rowScales = pr.WScales + (long)(j0 + c) * pr.Blocks;
            for (int b = 0; b < pr.Blocks; b++)
            {
                scales[b * PanelCols + c] = (float)rowScales[b];
                // Sign-extend 32 int8 to int16; adjacent int16 pairs are then the int32 lanes vpmaddwd consumes.
                Avx512BW.ConvertToVector512Int16(Vector256.Load(row + b * B)).AsInt32().Store(pairsOut);
                int* dst = panel + (long)b * 16 * PanelCols + c;
                for (int t = 0; t < 16; t++) dst[t * PanelCols] = pairsOut[t];
            }
        }
    }

    /// <summary>tile[r, c] = Σ_b fma(Σ_{p in b} xq[r][p]·w[c][p], ws[c, b]·xs[r][b]) for a 4 x 32 tile, in registers.</summary>
    private static void Kernel4x32(int* panel, float* panelScales, int blocks, short** xq, float** xs, float* tile)
    {
        Vector512<float> f00 = default, f01 = default, f10 = default, f11 = default;
        Vector512<float> f20 = default, f21 = default, f30 = default, f31 = default;
        int* x0 = (int*)xq[0], x1 = (int*)xq[1], x2 = (int*)xq[2], x3 = (int*)xq[3];
        float* s0 = xs[0], s1 = xs[1], s2 = xs[2], s3 = xs[3];
        for (int b = 0; b < blocks; b++)
        {
            Vector512<int> a00 = default, a01 = default, a10 = default, a11 = default;
            Vector512<int> a20 = default, a21 = default, a30 = default, a31 = default;
            int* wp = panel + b * 16 * PanelCols;
            int t0 = b * 16;
            for (int t = 0; t < 16; t++)
            {
                var w0 = Vector512.Load(wp).AsInt16();
                var w1 = Vector512.Load(wp + 16).AsInt16();
                var v = Vector512.Create(x0[t0 + t]).AsInt16();
                a00 += Avx512BW.MultiplyAddAdjacent(v, w0);
                a01 += Avx512BW.MultiplyAddAdjacent(v, w1);
                v = Vector512.Create(x1[t0 + t]).AsInt16();
                a10 += Avx512BW.MultiplyAddAdjacent(v, w0);
                a11 += Avx512BW.MultiplyAddAdjacent(v, w1);
                v = Vector512.Create(x2[t0 + t]).AsInt16();
                a20 += Avx512BW.MultiplyAddAdjacent(v, w0);
                a21 += Avx512BW.MultiplyAddAdjacent(v, w1);
                v = Vector512.Create(x3[t0 + t]).AsInt16();
                a30 += Avx512BW.MultiplyAddAdjacent(v, w0);
                a31 += Avx512BW.MultiplyAddAdjacent(v, w1);
                wp += PanelCols;
            }
            var ws0 = Vector512.Load(panelScales + b * PanelCols);
            var ws1 = Vector512.Load(panelScales + b * PanelCols + 16);
            var d = Vector512.Create(s0[b]);
            f00 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a00), ws0 * d, f00);
            f01 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a01), ws1 * d, f01);
            d = Vector512.Create(s1[b]);
            f10 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a10), ws0 * d, f10);
            f11 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a11), ws1 * d, f11);
            d = Vector512.Create(s2[b]);
            f20 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a20), ws0 * d, f20);
            f21 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a21), ws1 * d, f21);
            d = Vector512.Create(s3[b]);
            f30 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a30), ws0 * d, f30);
            f31 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a31), ws1 * d, f31);
        }
        f00.Store(tile); f01.Store(tile + 16);
        f10.Store(tile + 32); f11.Store(tile + 48);
        f20.Store(tile + 64); f21.Store(tile + 80);
        f30.Store(tile + 96); f31.Store(tile + 112);
    }

    /// <summary>The same arithmetic as <see cref="Kernel4x32"/>, element by element, straight from the int8 rows.</summary>
    private static void ScalarTile(ref Problem pr, int j0, int cols, short** xq, float** xs, float* tile)
    {
        for (int r = 0; r < TileRows; r++)
            for (int c = 0; c < cols; c++)
            {
                sbyte* w = pr.W + (long)(j0 + c) * pr.K;
                Half* ws = pr.WScales + (long)(j0 + c) * pr.Blocks;
                float f = 0;
                for (int b = 0; b < pr.Blocks; b++)
                {
                    int s = 0;
                    for (int p = b * B; p < (b + 1) * B; p++) s += xq[r][p] * w[p];
                    f = MathF.FusedMultiplyAdd(s, (float)ws[b] * xs[r][b], f);
                }
                tile[r * PanelCols + c] = f;
            }
    }
}
