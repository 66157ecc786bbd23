using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Llada.Numerics.Native;

namespace Llada.Numerics;

/// <summary>
/// Y[m, n] = X[m, k] * W[n, k]^T for a <see cref="DType.Q8_0"/> weight matrix W, in integer arithmetic.
/// <para>
/// Each row of X is quantised on the fly to the same 32-wide blocks (int8 quants in [-127, 127], a float32 scale
/// max|x| / 127 per block), so every block contributes one exact integer dot product s = Σ qx·qw (at most
/// 32·127·128 = 520 192, exact in float32) and y = Σ_blocks s · (dw · dx), accumulated with one fused multiply-add
/// per block in block order. The vector path and the scalar path perform exactly these float operations, so they
/// agree bit for bit.
/// </para>
/// <para>
/// Vector path (AVX-512BW, no VNNI in .NET 10): W stays int8. 32 output columns at a time are interleaved into a
/// panel [k/4][32 columns][4] (the same bytes, moved by in-register transposes; no widening), so one 64-byte load holds 4 consecutive
/// weights of 16 columns. vpmaddubsw (<see cref="Avx512BW.MultiplyAddAdjacent(Vector512{byte}, Vector512{sbyte})"/>)
/// multiplies unsigned by signed bytes, so the weight side is |w| and the weight's sign moves onto the broadcast
/// activation (a byte blend of qx and -qx on the sign bits of w); pair sums are at most 2·128·127 &lt; 2^15, so
/// nothing saturates, even for a stored -128. vpmaddwd against ones widens the pairs to int32. A 4-row x
/// 32-column tile keeps 8 int32 block accumulators and 8 float32 accumulators in registers (1- and 2-row tiles
/// take small m and the last rows). Work is split over
/// panels, so results do not depend on the thread count.
/// </para>
/// <para>
/// Where the CPU has AVX512-VNNI, the same panels (bytes offset to w + 128) feed an emitted machine-code kernel
/// (<see cref="VnniQ8Kernel"/>: one vpdpbusd per row and 16 columns per step, 6-row tiles) that performs the same
/// integer and float operations, so all three paths agree bit for bit.
/// </para>
/// <para>
/// The panels are made per call from the row-major matrix, or read ready-made when the matrix was packed once by
/// <see cref="PackedWeights"/> for the kernel that runs (signed bytes for the managed kernel, w + 128 for the
/// emitted one); any other combination packs per call, so every kernel accepts every matrix.
/// </para>
/// </summary>
internal static unsafe class QuantizedGemm
{
    /// <summary>Whether the AVX-512BW kernels run; tests switch it off to cover the scalar path.</summary>
    internal static bool UseVector = Avx512BW.IsSupported;

    /// <summary>Whether the emitted AVX512-VNNI kernel runs (when it exists and <see cref="UseVector"/> is on); tests switch it off.</summary>
    internal static bool UseNative = VnniQ8Kernel.EntryPoints is not null;

    private const int B = Q8Blocks.BlockSize;
    internal const int PanelCols = 32;
    private const int TileRows = 4;

    private struct Problem
    {
        public int M, N, K, Blocks;
        public float* X, Y, XScales;
        public sbyte* XQuants;
        public sbyte* W;
        public Half* WScales;
        public sbyte* Panels; // prepacked panels in the running kernel's layout, or null to pack per call
        public bool Accumulate, Vector;
        public nint* Native; // VnniQ8Kernel entry points by row count, or null for the managed kernels
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
        nint[]? native = UseNative && UseVector ? VnniQ8Kernel.EntryPoints : null;
        if (w.Panels != null && UseVector && w.PanelsOffset == (native is not null)) pr.Panels = w.Panels;
        fixed (nint* entries = native)
        {
            pr.Native = entries;
            // The quantised activations are the calling thread's; workers read them while it waits in For.
            if (native is not null)
                pr.XQuants = (sbyte*)ScratchBuffers.Get(8, (long)m * pr.Blocks * VnniQ8Kernel.ActivationBlockBytes / sizeof(float));
            else
            {
                pr.XQuants = (sbyte*)ScratchBuffers.Get(8, (long)m * k / 2);
                pr.XScales = ScratchBuffers.Get(9, (long)m * pr.Blocks);
            }
            WorkerPool.For(m, &QuantizeRowItem, &pr);
            WorkerPool.For((n + PanelCols - 1) / PanelCols, &PanelItem, &pr);
        }
    }

    private static void QuantizeRowItem(void* context, int i)
    {
        ref Problem pr = ref *(Problem*)context;
        if (pr.Native != null)
            QuantizeActivationsForVnni(pr.X + (long)i * pr.K, pr.K, pr.XQuants + (long)i * pr.Blocks * VnniQ8Kernel.ActivationBlockBytes);
        else
            QuantizeActivations(pr.X + (long)i * pr.K, pr.K, pr.XQuants + 2L * i * pr.K, pr.XScales + (long)i * pr.Blocks, pr.Vector);
    }

    /// <summary>
    /// Quantises k floats (a multiple of 32) into int8 quants round(x · 127 / max) (ties to even), followed by their
    /// negations at quants[k..2k) (the vector kernel broadcasts both), and one float32 scale max / 127 per block;
    /// max = the block's largest |x|, 0 gives scale 0 and zero quants.
    /// </summary>
    internal static void QuantizeActivations(float* x, int k, sbyte* quants, float* scales, bool vector)
    {
        for (int b = 0; b < k / B; b++)
        {
            sbyte* qb = quants + b * B;
            scales[b] = QuantizeBlock(x + b * B, qb, vector);
            if (vector) (-Vector256.Load(qb)).Store(qb + k);
            else for (int p = 0; p < B; p++) qb[k + p] = (sbyte)-qb[p];
        }
    }

    /// <summary>
    /// The same quants and scales laid out for <see cref="VnniQ8Kernel"/>: per block 32 quants, then the int32
    /// −128·Σ quants that removes the kernel's +128 weight offset, then the float32 scale (40 bytes).
    /// </summary>
    internal static void QuantizeActivationsForVnni(float* x, int k, sbyte* blocks)
    {
        for (int b = 0; b < k / B; b++)
        {
            sbyte* qb = blocks + b * VnniQ8Kernel.ActivationBlockBytes;
            float scale = QuantizeBlock(x + b * B, qb, vector: true);
            var q = Vector256.Load(qb);
            int sum = Vector256.Sum(Vector256.WidenLower(q) + Vector256.WidenUpper(q)); // |sum| <= 32 * 127
            *(int*)(qb + B) = -128 * sum;
            *(float*)(qb + B + 4) = scale;
        }
    }

    /// <summary>Writes round(x · 127 / max) (ties to even) for 32 floats and returns the block scale max / 127.</summary>
    private static float QuantizeBlock(float* xb, sbyte* qb, bool vector)
    {
        if (vector)
        {
            var v0 = Vector512.Load(xb);
            var v1 = Vector512.Load(xb + 16);
            float max = MaxAcross(Vector512.Max(Vector512.Abs(v0), Vector512.Abs(v1)));
            float inverse = max == 0 ? 0 : 127f / max;
            var s = Vector512.Create(inverse);
            // vcvtps2dq rounds to nearest even (the default MXCSR mode); vpmovdb narrows the in-range values.
            var q0 = Avx512F.ConvertToVector128SByte(Avx512F.ConvertToVector512Int32(v0 * s));
            var q1 = Avx512F.ConvertToVector128SByte(Avx512F.ConvertToVector512Int32(v1 * s));
            Vector256.Create(q0, q1).Store(qb);
            return max / 127f;
        }
        else
        {
            float max = 0;
            for (int p = 0; p < B; p++) max = MathF.Max(max, MathF.Abs(xb[p]));
            float inverse = max == 0 ? 0 : 127f / max;
            for (int p = 0; p < B; p++) qb[p] = (sbyte)MathF.Round(xb[p] * inverse, MidpointRounding.ToEven);
            return max / 127f;
        }
    }

    /// <summary>The largest of 16 floats, as a chain of MathF.Max would find it.</summary>
    private static float MaxAcross(Vector512<float> v)
    {
        var m8 = Vector256.Max(v.GetLower(), v.GetUpper());
        var m4 = Vector128.Max(m8.GetLower(), m8.GetUpper());
        return MathF.Max(MathF.Max(m4[0], m4[1]), MathF.Max(m4[2], m4[3]));
    }

    private static void PanelItem(void* context, int item)
    {
        ref Problem pr = ref *(Problem*)context;
        int j0 = item * PanelCols, cols = Math.Min(PanelCols, pr.N - j0), k = pr.K;
        float* tile = stackalloc float[TileKernel.MaxRows * PanelCols];
        sbyte** xq = stackalloc sbyte*[TileRows];
        float** xs = stackalloc float*[TileRows];
        sbyte* panel = null;
        float* panelScales = null;
        if (pr.Panels != null)
        {
            panel = pr.Panels + item * PanelBytes(k);
            panelScales = (float*)(panel + (long)k * PanelCols);
        }
        else if (pr.Vector)
        {
            panel = (sbyte*)ScratchBuffers.Get(5, PanelBytes(k) / sizeof(float));
            panelScales = (float*)(panel + (long)k * PanelCols);
            Pack(pr.W, pr.WScales, k, j0, cols, panel, panelScales, offset: pr.Native != null);
        }
        if (pr.Native != null)
        {
            NativePanel(ref pr, j0, cols, panel, panelScales, tile);
            return;
        }
        for (int i = 0; i < pr.M; i += TileRows)
        {
            int rows = Math.Min(TileRows, pr.M - i);
            for (int r = 0; r < TileRows; r++)
            {
                int row = i + Math.Min(r, rows - 1); // duplicate the last row into unused slots
                xq[r] = pr.XQuants + 2L * row * k;
                xs[r] = pr.XScales + (long)row * pr.Blocks;
            }
            if (pr.Vector)
            {
                // Small m (and the last rows) runs narrower tiles instead of computing duplicated rows.
                if (rows >= 3) Kernel<FourRows>(panel, panelScales, pr.Blocks, xq, xs, tile);
                else if (rows == 2) Kernel<TwoRows>(panel, panelScales, pr.Blocks, xq, xs, tile);
                else Kernel<OneRow>(panel, panelScales, pr.Blocks, xq, xs, tile);
            }
            else ScalarTile(ref pr, j0, cols, xq, xs, tile);
            StoreTile(pr.Y, pr.N, pr.Accumulate, i, rows, j0, cols, tile);
        }
    }

    /// <summary>Y[i.., j0..] (+)= a [rows][32] tile, the first <paramref name="cols"/> columns of it.</summary>
    internal static void StoreTile(float* y, int n, bool accumulate, int i, int rows, int j0, int cols, float* tile)
    {
        for (int r = 0; r < rows; r++)
        {
            float* yr = y + (long)(i + r) * n + j0;
            float* tr = tile + r * PanelCols;
            if (accumulate) for (int c = 0; c < cols; c++) yr[c] += tr[c];
            else new ReadOnlySpan<float>(tr, cols).CopyTo(new Span<float>(yr, cols));
        }
    }

    /// <summary>All row tiles of one packed panel through the emitted VNNI kernel (6 rows a call, the last call fewer).</summary>
    private static void NativePanel(ref Problem pr, int j0, int cols, sbyte* panel, float* panelScales, float* tile)
    {
        long rowBytes = (long)pr.Blocks * VnniQ8Kernel.ActivationBlockBytes;
        TileKernelArgs args;
        args.Panel = (byte*)panel;
        args.Scales = panelScales;
        args.Steps = pr.Blocks;
        args.Tile = tile;
        for (int i = 0; i < pr.M; i += TileKernel.MaxRows)
        {
            int rows = Math.Min(TileKernel.MaxRows, pr.M - i);
            for (int r = 0; r < rows; r++) args.Rows[r] = (long)(pr.XQuants + (i + r) * rowBytes);
            TileKernel.Call(pr.Native[rows - 1], &args);
            StoreTile(pr.Y, pr.N, pr.Accumulate, i, rows, j0, cols, tile);
        }
    }

    /// <summary>Bytes of one panel for k columns: k · 32 quants, then blocks · 32 float32 scales.</summary>
    internal static long PanelBytes(int k) => (long)k * PanelCols + (long)(k / B) * PanelCols * sizeof(float);

    /// <summary>Bytes of all panels of a Q8_0 matrix (<see cref="PackPanels"/>): one per 32 rows, the last one full-width.</summary>
    internal static long PackedByteLength(in WeightMatrix w) => (long)((w.Rows + PanelCols - 1) / PanelCols) * PanelBytes(w.Cols);

    /// <summary>
    /// Packs panels [first, first + count) of Q8_0 <paramref name="w"/> into <paramref name="panels"/> (laid out
    /// <see cref="PanelBytes"/> apart from panel 0), the bytes offset to w + 128 for the emitted kernel when
    /// <paramref name="offset"/>; the panels are spread over the worker pool.
    /// </summary>
    internal static void PackPanels(in WeightMatrix w, bool offset, sbyte* panels, int first, int count)
    {
        var job = new PackJob { W = (sbyte*)w.Data, Scales = w.Scales, N = w.Rows, K = w.Cols, Offset = offset, Panels = panels, First = first };
        WorkerPool.For(count, &PackItem, &job);
    }

    private struct PackJob
    {
        public sbyte* W, Panels;
        public Half* Scales;
        public int N, K, First;
        public bool Offset;
    }

    private static void PackItem(void* context, int i)
    {
        ref PackJob job = ref *(PackJob*)context;
        int item = job.First + i, j0 = item * PanelCols;
        sbyte* panel = job.Panels + item * PanelBytes(job.K);
        Pack(job.W, job.Scales, job.K, j0, Math.Min(PanelCols, job.N - j0), panel, (float*)(panel + (long)job.K * PanelCols), job.Offset);
    }

    /// <summary>
    /// Interleaves W rows [j0, j0 + cols) into panel[(g * 32 + c) * 4 + t] = w[j0 + c, 4g + t] and their block scales
    /// into float32 scales[b * 32 + c]. Columns past the matrix repeat its last row; their results are never stored.
    /// With <paramref name="offset"/> the bytes become w + 128 (the sign bit flipped), the emitted kernel's unsigned operand.
    /// </summary>
    private static void Pack(sbyte* w, Half* wScales, int k, int j0, int cols, sbyte* panel, float* scales, bool offset)
    {
        int blocks = k / B;
        PackPanel(w, k, j0, cols, panel);
        if (offset)
        {
            var flip = Vector512.Create((byte)0x80);
            for (long p = 0; p < (long)k * PanelCols; p += 64) (Vector512.Load((byte*)panel + p) ^ flip).Store((byte*)panel + p);
        }
        for (int c = 0; c < PanelCols; c++)
        {
            Half* rowScales = wScales + (long)(j0 + Math.Min(c, cols - 1)) * blocks;
            for (int b = 0; b < blocks; b++) scales[b * PanelCols + c] = (float)rowScales[b];
        }
    }

    /// <summary>
    /// Interleaves 32 rows of <paramref name="rowBytes"/> bytes (a multiple of 32) starting at row j0 into
    /// panel[(g * 32 + c) * 4 + t] = byte 4g + t of row j0 + c: 4-byte groups of 32 rows side by side, what one
    /// 64-byte load of 16 columns needs (4 int8 weights, or 2 bf16 weights, per column). Rows past
    /// <paramref name="cols"/> repeat the last one.
    /// </summary>
    internal static void PackPanel(sbyte* w, long rowBytes, int j0, int cols, sbyte* panel)
    {
        sbyte** rows = stackalloc sbyte*[PanelCols];
        for (int c = 0; c < PanelCols; c++) rows[c] = w + (j0 + Math.Min(c, cols - 1)) * rowBytes;
        for (int half = 0; half < 2; half++)
            for (long b = 0; b < rowBytes / 32; b++)
                TransposeBlock(rows + half * 16, b * 32, (int*)panel + b * 8 * PanelCols + half * 16);
    }

    /// <summary>
    /// One block of 16 rows as a 16 x 8 matrix of 4-byte groups, transposed: dst[g * 32 + c] = group g of row c.
    /// Each 512-bit register holds rows c and c + 8, so one 8 x 8 transpose (unpack 32, unpack 64, 128-bit
    /// permute) runs in both 256-bit halves at once and leaves columns 0..15 of a group in order.
    /// </summary>
    private static void TransposeBlock(sbyte** rows, long offset, int* dst)
    {
        Vector512<int> Row(int c) => Vector512.Create(Vector256.Load(rows[c] + offset), Vector256.Load(rows[c + 8] + offset)).AsInt32();
        Vector512<int> r0 = Row(0), r1 = Row(1), r2 = Row(2), r3 = Row(3), r4 = Row(4), r5 = Row(5), r6 = Row(6), r7 = Row(7);
        Vector512<long> t0 = Avx512F.UnpackLow(r0, r1).AsInt64(), t1 = Avx512F.UnpackHigh(r0, r1).AsInt64();
        Vector512<long> t2 = Avx512F.UnpackLow(r2, r3).AsInt64(), t3 = Avx512F.UnpackHigh(r2, r3).AsInt64();
        Vector512<long> t4 = Avx512F.UnpackLow(r4, r5).AsInt64(), t5 = Avx512F.UnpackHigh(r4, r5).AsInt64();
        Vector512<long> t6 = Avx512F.UnpackLow(r6, r7).AsInt64(), t7 = Avx512F.UnpackHigh(r6, r7).AsInt64();
        // u_g holds, per 256-bit half, groups g (low 128 bits) and g + 4 (high 128 bits) of rows 0..3 (or 4..7 for v_g).
        var u0 = Avx512F.UnpackLow(t0, t2); var u1 = Avx512F.UnpackHigh(t0, t2);
        var u2 = Avx512F.UnpackLow(t1, t3); var u3 = Avx512F.UnpackHigh(t1, t3);
        var v0 = Avx512F.UnpackLow(t4, t6); var v1 = Avx512F.UnpackHigh(t4, t6);
        var v2 = Avx512F.UnpackLow(t5, t7); var v3 = Avx512F.UnpackHigh(t5, t7);
        var low = Vector512.Create(0L, 1, 8, 9, 4, 5, 12, 13);
        var high = Vector512.Create(2L, 3, 10, 11, 6, 7, 14, 15);
        Avx512F.PermuteVar8x64x2(u0, low, v0).AsInt32().Store(dst);
        Avx512F.PermuteVar8x64x2(u1, low, v1).AsInt32().Store(dst + PanelCols);
        Avx512F.PermuteVar8x64x2(u2, low, v2).AsInt32().Store(dst + 2 * PanelCols);
        Avx512F.PermuteVar8x64x2(u3, low, v3).AsInt32().Store(dst + 3 * PanelCols);
        Avx512F.PermuteVar8x64x2(u0, high, v0).AsInt32().Store(dst + 4 * PanelCols);
        Avx512F.PermuteVar8x64x2(u1, high, v1).AsInt32().Store(dst + 5 * PanelCols);
        Avx512F.PermuteVar8x64x2(u2, high, v2).AsInt32().Store(dst + 6 * PanelCols);
        Avx512F.PermuteVar8x64x2(u3, high, v3).AsInt32().Store(dst + 7 * PanelCols);
    }

    /// <summary>Tile heights the kernel is compiled for; the JIT specialises it per struct, dropping unused rows.</summary>
    private interface ITileRows { static abstract int Count { get; } }
    private struct OneRow : ITileRows { public static int Count => 1; }
    private struct TwoRows : ITileRows { public static int Count => 2; }
    private struct FourRows : ITileRows { public static int Count => 4; }

    /// <summary>
    /// tile[r, c] = Σ_b fma(Σ_{p in b} xq[r][p]·w[c][p], ws[c, b]·xs[r][b]) for a <typeparamref name="TRows"/> x 32
    /// tile (rows 1, 2 or 4), in registers; each weight load, |w| and sign mask serve every row of the tile.
    /// </summary>
    private static void Kernel<TRows>(sbyte* panel, float* panelScales, int blocks, sbyte** xq, float** xs, float* tile)
        where TRows : struct, ITileRows
    {
        int rows = TRows.Count;
        Vector512<float> f00 = default, f01 = default, f10 = default, f11 = default;
        Vector512<float> f20 = default, f21 = default, f30 = default, f31 = default;
        // Unused rows alias row 0; their code is compiled out.
        int* x0 = (int*)xq[0], x1 = (int*)xq[rows > 1 ? 1 : 0], x2 = (int*)xq[rows > 2 ? 2 : 0], x3 = (int*)xq[rows > 3 ? 3 : 0];
        int negated = blocks * B / 4; // -x follows x in each quantised row
        float* s0 = xs[0], s1 = xs[rows > 1 ? 1 : 0], s2 = xs[rows > 2 ? 2 : 0], s3 = xs[rows > 3 ? 3 : 0];
        var ones = Vector512.Create((short)1);
        sbyte* wp = panel;
        for (int b = 0; b < blocks; b++)
        {
            Vector512<int> a00 = default, a01 = default, a10 = default, a11 = default;
            Vector512<int> a20 = default, a21 = default, a30 = default, a31 = default;
            for (int g = b * 8; g < b * 8 + 8; g++, wp += 4 * PanelCols)
            {
                var w0 = Vector512.Load(wp);
                var w1 = Vector512.Load(wp + 64);
                var u0 = Avx512BW.Abs(w0);
                var u1 = Avx512BW.Abs(w1);
                var v = Vector512.Create(x0[g]).AsSByte();
                var n = Vector512.Create(x0[g + negated]).AsSByte();
                a00 += Step(u0, w0, v, n, ones);
                a01 += Step(u1, w1, v, n, ones);
                if (rows == 1) continue;
                v = Vector512.Create(x1[g]).AsSByte();
                n = Vector512.Create(x1[g + negated]).AsSByte();
                a10 += Step(u0, w0, v, n, ones);
                a11 += Step(u1, w1, v, n, ones);
                if (rows == 2) continue;
                v = Vector512.Create(x2[g]).AsSByte();
                n = Vector512.Create(x2[g + negated]).AsSByte();
                a20 += Step(u0, w0, v, n, ones);
                a21 += Step(u1, w1, v, n, ones);
                v = Vector512.Create(x3[g]).AsSByte();
                n = Vector512.Create(x3[g + negated]).AsSByte();
                a30 += Step(u0, w0, v, n, ones);
                a31 += Step(u1, w1, v, n, ones);
            }
            var ws0 = Vector512.Load(panelScales + b * PanelCols);
            var ws1 = Vector512.Load(panelScales + b * PanelCols + 16);
            var d = Vector512.Create(s0[b]);
            f00 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a00), ws0 * d, f00);
            f01 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a01), ws1 * d, f01);
            if (rows == 1) continue;
            d = Vector512.Create(s1[b]);
            f10 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a10), ws0 * d, f10);
            f11 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a11), ws1 * d, f11);
            if (rows == 2) continue;
            d = Vector512.Create(s2[b]);
            f20 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a20), ws0 * d, f20);
            f21 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a21), ws1 * d, f21);
            d = Vector512.Create(s3[b]);
            f30 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a30), ws0 * d, f30);
            f31 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a31), ws1 * d, f31);
        }
        f00.Store(tile); f01.Store(tile + 16);
        if (rows == 1) return;
        f10.Store(tile + 32); f11.Store(tile + 48);
        if (rows == 2) return;
        f20.Store(tile + 64); f21.Store(tile + 80);
        f30.Store(tile + 96); f31.Store(tile + 112);
    }

    /// <summary>
    /// For each group of 4 bytes: Σ_t |w_t| · (w_t &lt; 0 ? -x_t : x_t) = Σ_t w_t · x_t, as 16 int32 (vpmaddubsw then
    /// vpmaddwd with ones); <paramref name="negX"/> = -x (x is in [-127, 127], so that never overflows).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Step(Vector512<byte> wAbs, Vector512<sbyte> w, Vector512<sbyte> x, Vector512<sbyte> negX, Vector512<short> ones)
    {
        var signed = Avx512BW.BlendVariable(x, negX, w);
        return Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(wAbs, signed), ones);
    }

    /// <summary>The same arithmetic as the vector kernel, element by element, straight from the int8 rows.</summary>
    private static void ScalarTile(ref Problem pr, int j0, int cols, sbyte** xq, float** xs, float* tile)
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
