using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llada.Numerics;

/// <summary>
/// The blocked, packed, multithreaded float32 product behind <see cref="Gemm"/>. Every product is phrased as
/// C[m, n] = alpha * A[m, k] * Bt[n, k]^T + beta * C, where A and Bt are each either "rows along k"
/// (element (r, p) at ptr[r * ld + p]) or "columns along k" (element (r, p) at ptr[p * ld + r]).
/// <para>
/// Packed path (BLIS-style): for each k block of <see cref="Kc"/>, a block of Bt is converted to float32 and
/// packed into NR-wide panels ([p][NR]); A is packed MR rows at a time ([p][MR]); a register-tiled
/// outer-product micro-kernel (8x32 with Vector512, 6x16 with Vector256) accumulates the tile and adds it to C.
/// Small-m path (m &lt;= <see cref="SmallM"/>, both operands rows along k, i.e. X * W^T for decode-sized
/// batches): no packing, 8x3 (AVX-512) or 4x4 blocks of dot products straight from the rows, bf16 widened on the fly.
/// </para>
/// <para>
/// Determinism: work is split only over output blocks; every output element sees the same kernel and the
/// same k-block order whatever the block or thread it falls in, so results are bit-identical for any
/// <see cref="Parallelism.ThreadCount"/>.
/// </para>
/// </summary>
internal static unsafe partial class GemmEngine
{
    /// <summary>Depth of one k block (packed panels hold this many k steps).</summary>
    internal const int Kc = 256;

    internal enum KernelKind { Scalar, Vector256, Vector512 }

    /// <summary>Which micro-kernel family runs; tests switch it to cover the narrower paths.</summary>
    internal static KernelKind Kind =
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? KernelKind.Vector512
        : Vector256.IsHardwareAccelerated && Fma.IsSupported ? KernelKind.Vector256
        : KernelKind.Scalar;

    /// <summary>Largest m that takes the unpacked dot-product path (when the layouts allow it).</summary>
    internal static int SmallM = 48;

    internal struct Problem
    {
        public int M, N, K;
        public float* A;
        public long Lda;
        public bool ARowsAlongK;
        public void* B;
        public long Ldb;
        public bool BRowsAlongK;
        public DType BType;
        public float* C;
        public long Ldc;
        public float Alpha, Beta;
        // Scheduling, filled in by Run.
        public int Mr, Nr, Mc, Nc, MBlocks, NBlocks, RowsPerItem;
        public KernelKind Kind;
        // A packed once for all output blocks (null: each block packs its own): k block p0 of height kc starts at
        // PackedA + p0 * MPad and holds micro-panels [i / mr][p][mr].
        public float* PackedA;
        public int MPad, APackRows;
    }

    public static void Run(ref Problem pr)
    {
        if (pr.M == 0 || pr.N == 0) return;
        if (pr.K == 0)
        {
            for (int i = 0; i < pr.M; i++) ScaleRow(pr.C + i * pr.Ldc, pr.N, pr.Beta);
            return;
        }
        pr.Kind = Kind;
        int threads = Parallelism.ThreadCount;
        fixed (Problem* p = &pr)
        {
            if (pr.M <= SmallM && pr.ARowsAlongK && pr.BRowsAlongK && pr.Kind != KernelKind.Scalar)
            {
                // Enough items to balance, few enough that each streams a useful stretch of W.
                int units = (pr.N + SmallColumnUnit - 1) / SmallColumnUnit;
                int perItem = threads == 1 ? units : Math.Clamp(units / (8 * threads), 1, 21);
                pr.RowsPerItem = perItem * SmallColumnUnit;
                WorkerPool.For((pr.N + pr.RowsPerItem - 1) / pr.RowsPerItem, &DotItem, p);
                return;
            }
            if (pr.Kind == KernelKind.Scalar)
            {
                pr.RowsPerItem = 1;
                WorkerPool.For(pr.M, &ScalarRow, p);
                return;
            }
            pr.Mr = pr.Kind == KernelKind.Vector512 ? 8 : 6;
            pr.Nr = pr.Kind == KernelKind.Vector512 ? 32 : 16;
            int nb = (pr.N + 511) / 512, mb = (pr.M + 255) / 256;
            // Several blocks per thread: on a shared machine a thread can lose its core for milliseconds, and with
            // only one or two big blocks each the others would wait for it; with A packed once, narrower column
            // blocks cost little.
            while (threads > 1 && nb * mb < 8 * threads)
            {
                if (pr.N / (nb + 1) >= 2 * pr.Nr) nb++;
                else if (pr.M / (mb + 1) >= 2 * pr.Mr) mb++;
                else break;
            }
            pr.Nc = RoundUp((pr.N + nb - 1) / nb, pr.Nr);
            pr.Mc = RoundUp((pr.M + mb - 1) / mb, pr.Mr);
            pr.NBlocks = (pr.N + pr.Nc - 1) / pr.Nc;
            pr.MBlocks = (pr.M + pr.Mc - 1) / pr.Mc;
            // Every column block needs all of A: pack it once up front (in parallel) rather than once per block,
            // when it is not too big. The buffer is the calling thread's; workers read it while it waits in For.
            pr.MPad = RoundUp(pr.M, pr.Mr);
            pr.PackedA = null;
            if (pr.NBlocks > 1 && (long)pr.MPad * pr.K <= SharedAFloats)
            {
                pr.PackedA = ScratchBuffers.Get(7, (long)pr.MPad * pr.K);
                // Column-major A is packed by whole source rows (contiguous reads), so one item per k block.
                pr.APackRows = pr.ARowsAlongK ? 8 * pr.Mr : pr.MPad;
                WorkerPool.For((pr.K + Kc - 1) / Kc * ((pr.M + pr.APackRows - 1) / pr.APackRows), &PackAItem, p);
            }
            WorkerPool.For(pr.NBlocks * pr.MBlocks, &PackedItem, p);
        }
    }

    /// <summary>Largest packed A (floats) shared by all output blocks; bigger products pack A per block (tests lower it).</summary>
    internal static long SharedAFloats = 8L << 20;

    /// <summary>Packs rows [APackRows * r, +APackRows) of k block b into the shared packed A.</summary>
    private static void PackAItem(void* context, int item)
    {
        ref Problem pr = ref *(Problem*)context;
        int groups = (pr.M + pr.APackRows - 1) / pr.APackRows;
        int p0 = item / groups * Kc, i0 = item % groups * pr.APackRows, i1 = Math.Min(pr.M, i0 + pr.APackRows);
        int kc = Math.Min(Kc, pr.K - p0);
        float* dst = pr.PackedA + (long)p0 * pr.MPad + (long)i0 * kc;
        if (!pr.ARowsAlongK) PackABlock(ref pr, i0, i1, p0, kc, dst);
        else
            for (int i = i0; i < i1; i += pr.Mr)
                PackA(ref pr, i, Math.Min(pr.Mr, i1 - i), p0, kc, dst + (long)(i - i0) * kc);
    }

    private static int RoundUp(int x, int multiple) => (x + multiple - 1) / multiple * multiple;

    private static void ScaleRow(float* c, int n, float beta)
    {
        var row = new Span<float>(c, n);
        if (beta == 0) row.Clear();
        else if (beta != 1) TensorPrimitives.Multiply(row, beta, row);
    }

    // ---------------------------------------------------------------- packed path

    private static void PackedItem(void* context, int item)
    {
        ref Problem pr = ref *(Problem*)context;
        int ib = item / pr.NBlocks, jb = item % pr.NBlocks;
        int i0 = ib * pr.Mc, i1 = Math.Min(pr.M, i0 + pr.Mc);
        int j0 = jb * pr.Nc, j1 = Math.Min(pr.N, j0 + pr.Nc);
        int mr = pr.Mr, nr = pr.Nr;
        int panels = (j1 - j0 + nr - 1) / nr;
        int kcMax = Math.Min(Kc, pr.K);
        float* packB = ScratchBuffers.Get(0, (long)panels * nr * kcMax);
        // The whole A block is packed once per k block ([micro-panel][p][mr]) and stays in L2 while each B
        // micro-panel (kc x nr) is reused from L1 against all of it.
        float* packA = pr.PackedA != null ? null : ScratchBuffers.Get(1, (long)RoundUp(i1 - i0, mr) * kcMax);
        float* convert = ScratchBuffers.Get(2, (long)nr * kcMax);
        float* tile = ScratchBuffers.Get(3, mr * nr);

        if (pr.Beta != 0 && pr.Beta != 1)
            for (int i = i0; i < i1; i++) ScaleRow(pr.C + i * pr.Ldc + j0, j1 - j0, pr.Beta);

        for (int p0 = 0; p0 < pr.K; p0 += Kc)
        {
            int kc = Math.Min(Kc, pr.K - p0);
            bool add = p0 > 0 || pr.Beta != 0;
            for (int q = 0; q < panels; q++)
            {
                int j = j0 + q * nr;
                PackB(ref pr, j, Math.Min(nr, j1 - j), p0, kc, packB + (long)q * nr * kc, convert);
            }
            // Column-major A (transA) is packed row by row of the source so it is read contiguously once,
            // instead of a few floats from each of many strided rows per micro-panel (cache-set conflicts).
            if (pr.PackedA != null) packA = pr.PackedA + (long)p0 * pr.MPad + (long)i0 * kc;
            else if (!pr.ARowsAlongK) PackABlock(ref pr, i0, i1, p0, kc, packA);
            else
                for (int i = i0; i < i1; i += mr)
                    PackA(ref pr, i, Math.Min(mr, i1 - i), p0, kc, packA + (long)(i - i0) * kc);
            // While a panel's products run, prefetch (to L2) its source rows for the next k block, so the next
            // PackB reads weights from cache instead of waiting on memory.
            int nextK = p0 + Kc < pr.K ? Math.Min(Kc, pr.K - p0 - Kc) : 0;
            bool prefetch = nextK > 0 && pr.BRowsAlongK && Sse.IsSupported;
            int steps = (i1 - i0 + mr - 1) / mr;
            long rowBytes = (long)nextK * DTypes.SizeOf(pr.BType);
            for (int q = 0; q < panels; q++)
            {
                int j = j0 + q * nr;
                int cols = Math.Min(nr, j1 - j);
                float* bp = packB + (long)q * nr * kc;
                int perStep = (cols + steps - 1) / steps;
                for (int i = i0; i < i1; i += mr)
                {
                    if (prefetch)
                    {
                        int r0 = (i - i0) / mr * perStep;
                        for (int r = r0; r < Math.Min(cols, r0 + perStep); r++)
                        {
                            byte* src = (byte*)pr.B + ((j + r) * pr.Ldb + p0 + Kc) * DTypes.SizeOf(pr.BType);
                            for (long off = 0; off < rowBytes; off += 64) Sse.Prefetch1(src + off);
                        }
                    }
                    int rows = Math.Min(mr, i1 - i);
                    float* ap = packA + (long)(i - i0) * kc;
                    float* c = pr.C + i * pr.Ldc + j;
                    if (rows == mr && cols == nr)
                    {
                        MicroKernel(pr.Kind, ap, bp, kc, c, pr.Ldc, pr.Alpha, add);
                        continue;
                    }
                    // Edge tile: same kernel on a padded copy, so edge outputs get identical arithmetic.
                    new Span<float>(tile, mr * nr).Clear();
                    if (add)
                        for (int r = 0; r < rows; r++)
                            new ReadOnlySpan<float>(c + r * pr.Ldc, cols).CopyTo(new Span<float>(tile + r * nr, cols));
                    MicroKernel(pr.Kind, ap, bp, kc, tile, nr, pr.Alpha, add);
                    for (int r = 0; r < rows; r++)
                        new ReadOnlySpan<float>(tile + r * nr, cols).CopyTo(new Span<float>(c + r * pr.Ldc, cols));
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MicroKernel(KernelKind kind, float* a, float* b, int kc, float* c, long ldc, float alpha, bool add)
    {
        if (kind == KernelKind.Vector512) Kernel8x32(a, b, kc, c, ldc, alpha, add);
        else Kernel6x16(a, b, kc, c, ldc, alpha, add);
    }

    /// <summary>Packs row-major A rows [i, i+rows) x k [p0, p0+kc) as [p][mr], zero-padding missing rows.</summary>
    private static void PackA(ref Problem pr, int i, int rows, int p0, int kc, float* dst) =>
        Transpose(pr.A + i * pr.Lda + p0, pr.Lda, rows, kc, dst, pr.Mr);

    /// <summary>Packs column-major A rows [i0, i1) x k [p0, p0+kc) as consecutive [p][mr] micro-panels.</summary>
    private static void PackABlock(ref Problem pr, int i0, int i1, int p0, int kc, float* dst)
    {
        int mr = pr.Mr;
        for (int p = 0; p < kc; p++)
        {
            float* src = pr.A + (p0 + p) * pr.Lda;
            for (int i = i0; i < i1; i += mr)
            {
                float* d = dst + (long)(i - i0) * kc + p * mr;
                int rows = Math.Min(mr, i1 - i), r = 0;
                for (; r < rows; r++) d[r] = src[i + r];
                for (; r < mr; r++) d[r] = 0;
            }
        }
    }

    /// <summary>Packs Bt rows [j, j+cols) x k [p0, p0+kc) as float32 [p][nr], zero-padding missing columns.</summary>
    private static void PackB(ref Problem pr, int j, int cols, int p0, int kc, float* dst, float* convert)
    {
        int nr = pr.Nr;
        if (!pr.BRowsAlongK)
        {
            float* b = (float*)pr.B;
            for (int p = 0; p < kc; p++)
            {
                float* src = b + (p0 + p) * pr.Ldb + j;
                float* d = dst + p * nr;
                Buffer.MemoryCopy(src, d, cols * sizeof(float), cols * sizeof(float));
                for (int r = cols; r < nr; r++) d[r] = 0;
            }
            return;
        }
        switch (pr.BType)
        {
            case DType.F32:
                Transpose((float*)pr.B + j * pr.Ldb + p0, pr.Ldb, cols, kc, dst, nr);
                return;
            case DType.BF16:
                for (int r = 0; r < cols; r++)
                    WidenBF16((ushort*)pr.B + (j + r) * pr.Ldb + p0, convert + r * kc, kc);
                break;
            case DType.F16:
                for (int r = 0; r < cols; r++)
                    TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)pr.B + (j + r) * pr.Ldb + p0, kc), new Span<float>(convert + r * kc, kc));
                break;
            default:
                throw new InvalidOperationException($"unsupported weight dtype {pr.BType}");
        }
        Transpose(convert, kc, cols, kc, dst, nr);
    }

    /// <summary>bfloat16 to float32 is a 16-bit left shift of the bits.</summary>
    internal static void WidenBF16(ushort* src, float* dst, int count)
    {
        int p = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; p + 16 <= count; p += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(src + p));
                Vector256.ShiftLeft(lo, 16).AsSingle().Store(dst + p);
                Vector256.ShiftLeft(hi, 16).AsSingle().Store(dst + p + 8);
            }
        }
        for (; p < count; p++) dst[p] = BitConverter.Int32BitsToSingle(src[p] << 16);
    }

    /// <summary>
    /// dst[p * stride + r] = src[r * ld + p] for r &lt; rows, p &lt; cols; rows up to stride are zero-filled.
    /// Full 8-row groups go through an in-register 8x8 transpose.
    /// </summary>
    internal static void Transpose(float* src, long ld, int rows, int cols, float* dst, int stride)
    {
        int full = Avx.IsSupported ? rows & ~7 : 0;
        for (int r0 = 0; r0 < full; r0 += 8)
        {
            float* s = src + r0 * ld;
            int p = 0;
            for (; p + 8 <= cols; p += 8) Transpose8x8(s + p, ld, dst + (long)p * stride + r0, stride);
            for (; p < cols; p++)
                for (int r = 0; r < 8; r++) dst[(long)p * stride + r0 + r] = s[r * ld + p];
        }
        for (int p = 0; p < cols; p++)
        {
            float* d = dst + (long)p * stride;
            int r = full;
            for (; r < rows; r++) d[r] = src[r * ld + p];
            for (; r < stride; r++) d[r] = 0;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* s, long ld, float* d, int stride)
    {
        var r0 = Avx.LoadVector256(s);
        var r1 = Avx.LoadVector256(s + ld);
        var r2 = Avx.LoadVector256(s + 2 * ld);
        var r3 = Avx.LoadVector256(s + 3 * ld);
        var r4 = Avx.LoadVector256(s + 4 * ld);
        var r5 = Avx.LoadVector256(s + 5 * ld);
        var r6 = Avx.LoadVector256(s + 6 * ld);
        var r7 = Avx.LoadVector256(s + 7 * ld);
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(d, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(d + stride, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(d + 2 * stride, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(d + 3 * stride, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(d + 4 * stride, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(d + 5 * stride, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(d + 6 * stride, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(d + 7 * stride, Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>C[8, 32] (+)= alpha * A[8, kc] * B[kc, 32] from packed panels; 16 accumulators stay in zmm registers.</summary>
    private static void Kernel8x32(float* a, float* b, int kc, float* c, long ldc, float alpha, bool add)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var x = Vector512.Create(a[0]);
            c00 = Avx512F.FusedMultiplyAdd(x, b0, c00);
            c01 = Avx512F.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a[1]);
            c10 = Avx512F.FusedMultiplyAdd(x, b0, c10);
            c11 = Avx512F.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a[2]);
            c20 = Avx512F.FusedMultiplyAdd(x, b0, c20);
            c21 = Avx512F.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a[3]);
            c30 = Avx512F.FusedMultiplyAdd(x, b0, c30);
            c31 = Avx512F.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a[4]);
            c40 = Avx512F.FusedMultiplyAdd(x, b0, c40);
            c41 = Avx512F.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a[5]);
            c50 = Avx512F.FusedMultiplyAdd(x, b0, c50);
            c51 = Avx512F.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a[6]);
            c60 = Avx512F.FusedMultiplyAdd(x, b0, c60);
            c61 = Avx512F.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a[7]);
            c70 = Avx512F.FusedMultiplyAdd(x, b0, c70);
            c71 = Avx512F.FusedMultiplyAdd(x, b1, c71);
            a += 8;
            b += 32;
        }
        var va = Vector512.Create(alpha);
        Store512(c, c00, c01, va, add);
        Store512(c + ldc, c10, c11, va, add);
        Store512(c + 2 * ldc, c20, c21, va, add);
        Store512(c + 3 * ldc, c30, c31, va, add);
        Store512(c + 4 * ldc, c40, c41, va, add);
        Store512(c + 5 * ldc, c50, c51, va, add);
        Store512(c + 6 * ldc, c60, c61, va, add);
        Store512(c + 7 * ldc, c70, c71, va, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(float* c, Vector512<float> lo, Vector512<float> hi, Vector512<float> alpha, bool add)
    {
        if (add)
        {
            Avx512F.FusedMultiplyAdd(lo, alpha, Vector512.Load(c)).Store(c);
            Avx512F.FusedMultiplyAdd(hi, alpha, Vector512.Load(c + 16)).Store(c + 16);
        }
        else
        {
            (lo * alpha).Store(c);
            (hi * alpha).Store(c + 16);
        }
    }

    /// <summary>C[6, 16] (+)= alpha * A[6, kc] * B[kc, 16] from packed panels (AVX2/FMA machines).</summary>
    private static void Kernel6x16(float* a, float* b, int kc, float* c, long ldc, float alpha, bool add)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var x = Vector256.Create(a[0]);
            c00 = Fma.MultiplyAdd(x, b0, c00);
            c01 = Fma.MultiplyAdd(x, b1, c01);
            x = Vector256.Create(a[1]);
            c10 = Fma.MultiplyAdd(x, b0, c10);
            c11 = Fma.MultiplyAdd(x, b1, c11);
            x = Vector256.Create(a[2]);
            c20 = Fma.MultiplyAdd(x, b0, c20);
            c21 = Fma.MultiplyAdd(x, b1, c21);
            x = Vector256.Create(a[3]);
            c30 = Fma.MultiplyAdd(x, b0, c30);
            c31 = Fma.MultiplyAdd(x, b1, c31);
            x = Vector256.Create(a[4]);
            c40 = Fma.MultiplyAdd(x, b0, c40);
            c41 = Fma.MultiplyAdd(x, b1, c41);
            x = Vector256.Create(a[5]);
            c50 = Fma.MultiplyAdd(x, b0, c50);
            c51 = Fma.MultiplyAdd(x, b1, c51);
            a += 6;
            b += 16;
        }
        var va = Vector256.Create(alpha);
        Store256(c, c00, c01, va, add);
        Store256(c + ldc, c10, c11, va, add);
        Store256(c + 2 * ldc, c20, c21, va, add);
        Store256(c + 3 * ldc, c30, c31, va, add);
        Store256(c + 4 * ldc, c40, c41, va, add);
        Store256(c + 5 * ldc, c50, c51, va, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store256(float* c, Vector256<float> lo, Vector256<float> hi, Vector256<float> alpha, bool add)
    {
        if (add)
        {
            Fma.MultiplyAdd(lo, alpha, Vector256.Load(c)).Store(c);
            Fma.MultiplyAdd(hi, alpha, Vector256.Load(c + 8)).Store(c + 8);
        }
        else
        {
            (lo * alpha).Store(c);
            (hi * alpha).Store(c + 8);
        }
    }

    // ---------------------------------------------------------------- small-m path

    private static void DotItem(void* context, int item)
    {
        ref Problem pr = ref *(Problem*)context;
        int j0 = item * pr.RowsPerItem, j1 = Math.Min(pr.N, j0 + pr.RowsPerItem);
        if (WideTile(ref pr)) DotRowsWide(ref pr, j0, j1);
        else DotRows4x4(ref pr, j0, j1);
    }

    /// <summary>All rows of the item's columns [j0, j1) through the 4x4 tile.</summary>
    private static void DotRows4x4(ref Problem pr, int j0, int j1)
    {
        int k = pr.K;
        // f16 rows are always converted first; bf16 rows are widened on the fly when only one group of four x rows
        // uses them, and converted once when several do (the widening would otherwise repeat per group). Widening
        // is exact and both kernels sum in the same order, so the choice does not change a bit of the result.
        bool convertRows = pr.BType == DType.F16 || (pr.BType == DType.BF16 && pr.M > 4);
        float* convert = convertRows ? ScratchBuffers.Get(2, 4L * k) : null;
        float* sums = stackalloc float[16];
        float** x = stackalloc float*[4];
        void** w = stackalloc void*[4];
        for (int j = j0; j < j1; j += 4)
        {
            int cols = Math.Min(4, j1 - j);
            DType type = pr.BType;
            for (int q = 0; q < 4; q++)
            {
                int row = j + Math.Min(q, cols - 1); // duplicate the last row into unused slots
                w[q] = (byte*)pr.B + row * pr.Ldb * DTypes.SizeOf(type);
            }
            if (convertRows)
            {
                for (int q = 0; q < cols; q++)
                {
                    if (type == DType.F16) TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(w[q], k), new Span<float>(convert + q * k, k));
                    else WidenBF16((ushort*)w[q], convert + q * k, k);
                }
                for (int q = 0; q < 4; q++) w[q] = convert + Math.Min(q, cols - 1) * k;
                type = DType.F32;
            }
            for (int i = 0; i < pr.M; i += 4)
            {
                int rows = Math.Min(4, pr.M - i);
                for (int r = 0; r < 4; r++) x[r] = pr.A + (i + Math.Min(r, rows - 1)) * pr.Lda;
                if (type == DType.BF16) Dot4x4BF16(x, (ushort**)w, k, sums);
                else Dot4x4(x, (float**)w, k, sums);
                for (int r = 0; r < rows; r++)
                {
                    float* c = pr.C + (i + r) * pr.Ldc + j;
                    for (int q = 0; q < cols; q++)
                    {
                        float s = pr.Alpha * sums[r * 4 + q];
                        c[q] = pr.Beta == 0 ? s : pr.Beta == 1 ? c[q] + s : pr.Beta * c[q] + s;
                    }
                }
            }
        }
    }

    /// <summary>sums[r*4+q] = dot(x[r], w[q]) over k, 16 Vector256 accumulators, fixed lane-then-tail order.</summary>
    internal static void Dot4x4(float** x, float** w, int k, float* sums)
    {
        float* x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
        float* w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector256<float> a30 = default, a31 = default, a32 = default, a33 = default;
        int p = 0;
        for (; p + 8 <= k; p += 8)
        {
            var v0 = Vector256.Load(w0 + p);
            var v1 = Vector256.Load(w1 + p);
            var v2 = Vector256.Load(w2 + p);
            var v3 = Vector256.Load(w3 + p);
            var u = Vector256.Load(x0 + p);
            a00 = Vector256.FusedMultiplyAdd(u, v0, a00); a01 = Vector256.FusedMultiplyAdd(u, v1, a01);
            a02 = Vector256.FusedMultiplyAdd(u, v2, a02); a03 = Vector256.FusedMultiplyAdd(u, v3, a03);
            u = Vector256.Load(x1 + p);
            a10 = Vector256.FusedMultiplyAdd(u, v0, a10); a11 = Vector256.FusedMultiplyAdd(u, v1, a11);
            a12 = Vector256.FusedMultiplyAdd(u, v2, a12); a13 = Vector256.FusedMultiplyAdd(u, v3, a13);
            u = Vector256.Load(x2 + p);
            a20 = Vector256.FusedMultiplyAdd(u, v0, a20); a21 = Vector256.FusedMultiplyAdd(u, v1, a21);
            a22 = Vector256.FusedMultiplyAdd(u, v2, a22); a23 = Vector256.FusedMultiplyAdd(u, v3, a23);
            u = Vector256.Load(x3 + p);
            a30 = Vector256.FusedMultiplyAdd(u, v0, a30); a31 = Vector256.FusedMultiplyAdd(u, v1, a31);
            a32 = Vector256.FusedMultiplyAdd(u, v2, a32); a33 = Vector256.FusedMultiplyAdd(u, v3, a33);
        }
        StoreSums(sums, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33);
        for (; p < k; p++)
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++) sums[r * 4 + q] += x[r][p] * w[q][p];
    }

    private static void Dot4x4BF16(float** x, ushort** w, int k, float* sums)
    {
        float* x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
        ushort* w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector256<float> a30 = default, a31 = default, a32 = default, a33 = default;
        int p = 0;
        for (; p + 8 <= k; p += 8)
        {
            var v0 = Vector256.ShiftLeft(Vector256.WidenLower(Vector128.Load(w0 + p).ToVector256Unsafe()), 16).AsSingle();
            var v1 = Vector256.ShiftLeft(Vector256.WidenLower(Vector128.Load(w1 + p).ToVector256Unsafe()), 16).AsSingle();
            var v2 = Vector256.ShiftLeft(Vector256.WidenLower(Vector128.Load(w2 + p).ToVector256Unsafe()), 16).AsSingle();
            var v3 = Vector256.ShiftLeft(Vector256.WidenLower(Vector128.Load(w3 + p).ToVector256Unsafe()), 16).AsSingle();
            var u = Vector256.Load(x0 + p);
            a00 = Vector256.FusedMultiplyAdd(u, v0, a00); a01 = Vector256.FusedMultiplyAdd(u, v1, a01);
            a02 = Vector256.FusedMultiplyAdd(u, v2, a02); a03 = Vector256.FusedMultiplyAdd(u, v3, a03);
            u = Vector256.Load(x1 + p);
            a10 = Vector256.FusedMultiplyAdd(u, v0, a10); a11 = Vector256.FusedMultiplyAdd(u, v1, a11);
            a12 = Vector256.FusedMultiplyAdd(u, v2, a12); a13 = Vector256.FusedMultiplyAdd(u, v3, a13);
            u = Vector256.Load(x2 + p);
            a20 = Vector256.FusedMultiplyAdd(u, v0, a20); a21 = Vector256.FusedMultiplyAdd(u, v1, a21);
            a22 = Vector256.FusedMultiplyAdd(u, v2, a22); a23 = Vector256.FusedMultiplyAdd(u, v3, a23);
            u = Vector256.Load(x3 + p);
            a30 = Vector256.FusedMultiplyAdd(u, v0, a30); a31 = Vector256.FusedMultiplyAdd(u, v1, a31);
            a32 = Vector256.FusedMultiplyAdd(u, v2, a32); a33 = Vector256.FusedMultiplyAdd(u, v3, a33);
        }
        StoreSums(sums, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33);
        for (; p < k; p++)
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < 4; q++) sums[r * 4 + q] += x[r][p] * DTypes.BF16ToSingle(w[q][p]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreSums(float* s,
        Vector256<float> a00, Vector256<float> a01, Vector256<float> a02, Vector256<float> a03,
        Vector256<float> a10, Vector256<float> a11, Vector256<float> a12, Vector256<float> a13,
        Vector256<float> a20, Vector256<float> a21, Vector256<float> a22, Vector256<float> a23,
        Vector256<float> a30, Vector256<float> a31, Vector256<float> a32, Vector256<float> a33)
    {
        // Reduce four accumulators at once into one vector of four sums (then the next four); cheaper than 16 separate horizontal sums.
        Reduce4(a00, a01, a02, a03).Store(s);
        Reduce4(a10, a11, a12, a13).Store(s + 4);
        Reduce4(a20, a21, a22, a23).Store(s + 8);
        Reduce4(a30, a31, a32, a33).Store(s + 12);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Reduce4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        // Result lane q = sum of all 8 lanes of input q: fold the halves, then two rounds of pairwise adds.
        var a4 = a.GetLower() + a.GetUpper();
        var b4 = b.GetLower() + b.GetUpper();
        var c4 = c.GetLower() + c.GetUpper();
        var d4 = d.GetLower() + d.GetUpper();
        if (Sse3.IsSupported) return Sse3.HorizontalAdd(Sse3.HorizontalAdd(a4, b4), Sse3.HorizontalAdd(c4, d4));
        return Vector128.Create(Vector128.Sum(a4), Vector128.Sum(b4), Vector128.Sum(c4), Vector128.Sum(d4));
    }

    // ---------------------------------------------------------------- scalar fallback

    private static void ScalarRow(void* context, int i)
    {
        ref Problem pr = ref *(Problem*)context;
        for (int j = 0; j < pr.N; j++)
        {
            float s = 0;
            for (int p = 0; p < pr.K; p++) s += ElementA(ref pr, i, p) * ElementB(ref pr, j, p);
            float* c = pr.C + i * pr.Ldc + j;
            *c = pr.Beta == 0 ? pr.Alpha * s : pr.Alpha * s + pr.Beta * *c;
        }
    }

    private static float ElementA(ref Problem pr, int i, int p) => pr.ARowsAlongK ? pr.A[i * pr.Lda + p] : pr.A[p * pr.Lda + i];

    private static float ElementB(ref Problem pr, int j, int p)
    {
        long index = pr.BRowsAlongK ? j * pr.Ldb + p : p * pr.Ldb + j;
        return pr.BType switch
        {
            DType.F32 => ((float*)pr.B)[index],
            DType.BF16 => DTypes.BF16ToSingle(((ushort*)pr.B)[index]),
            _ => (float)((Half*)pr.B)[index],
        };
    }
}
