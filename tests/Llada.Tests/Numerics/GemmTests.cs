using Llada.Numerics;

namespace Llada.Tests.Numerics;

[Collection(nameof(NumericsGlobalState))]
public class GemmTests
{
    // float32 dot products of k terms accumulate error ~ sqrt(k) * 6e-8 of the sum of |terms| (blocked sums do
    // better than the worst case k * eps); 1e-5 of that sum holds for every k used here.
    private const double Rel = 1e-5;

    public static TheoryData<int, int, int> Shapes => new()
    {
        { 1, 1, 1 }, { 1, 7, 33 }, { 7, 33, 1 }, { 3, 65, 1000 }, { 1, 100, 257 }, { 9, 37, 31 },
        { 33, 7, 100 }, { 100, 101, 300 }, { 130, 70, 513 }, { 8, 64, 256 }, { 17, 1, 45 },
    };

    private static (double[] Expected, double[] Scale) ReferenceNT(float[] x, float[] w, int m, int n, int k)
    {
        var expected = new double[m * n];
        var scale = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0, a = 0;
                for (int p = 0; p < k; p++) { double t = (double)x[i * k + p] * w[j * k + p]; s += t; a += Math.Abs(t); }
                expected[i * n + j] = s;
                scale[i * n + j] = a;
            }
        return (expected, scale);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MultiplyTransposed_matches_naive_loop_for_every_weight_dtype(int m, int n, int k)
    {
        foreach (DType dtype in new[] { DType.F32, DType.BF16, DType.F16 })
        {
            var w = new NumericsTestData.Weights(n, k, dtype, seed: m * 1000 + n + k);
            float[] x = NumericsTestData.Random(m * k, seed: k);
            var (expected, scale) = ReferenceNT(x, w.Values, m, n, k);
            var y = new float[m * n];
            Gemm.MultiplyTransposed(x, m, w.Matrix, y);
            NumericsTestData.AssertClose(expected, scale, y, Rel, $"{dtype} {m}x{n}x{k}");

            // accumulate: Y += X W^T on top of existing values.
            float[] start = NumericsTestData.Random(m * n, seed: 5);
            start.CopyTo(y, 0);
            Gemm.MultiplyTransposed(x, m, w.Matrix, y, accumulate: true);
            var expectedAcc = new double[m * n];
            var scaleAcc = new double[m * n];
            for (int i = 0; i < m * n; i++) { expectedAcc[i] = expected[i] + start[i]; scaleAcc[i] = scale[i] + Math.Abs(start[i]); }
            NumericsTestData.AssertClose(expectedAcc, scaleAcc, y, Rel, $"{dtype} accumulate {m}x{n}x{k}");
        }
    }

    [Theory]
    [InlineData("Vector256")]
    [InlineData("Scalar")]
    public void Narrower_kernels_match_naive_loop(string kindName)
    {
        var kind = Enum.Parse<GemmEngine.KernelKind>(kindName);
        var saved = GemmEngine.Kind;
        try
        {
            GemmEngine.Kind = kind;
            foreach (var (m, n, k) in new[] { (3, 65, 1000), (100, 101, 300), (1, 7, 33), (13, 40, 17) })
                foreach (DType dtype in new[] { DType.F32, DType.BF16 })
                {
                    var w = new NumericsTestData.Weights(n, k, dtype, seed: 11);
                    float[] x = NumericsTestData.Random(m * k, seed: 12);
                    var (expected, scale) = ReferenceNT(x, w.Values, m, n, k);
                    var y = new float[m * n];
                    Gemm.MultiplyTransposed(x, m, w.Matrix, y);
                    NumericsTestData.AssertClose(expected, scale, y, Rel, $"{kind} {dtype} {m}x{n}x{k}");
                }
        }
        finally { GemmEngine.Kind = saved; }
    }

    [Fact]
    public void Small_m_and_packed_paths_agree_with_reference_at_the_threshold()
    {
        int k = 300, n = 77;
        var w = new NumericsTestData.Weights(n, k, DType.BF16, seed: 3);
        foreach (int m in new[] { GemmEngine.SmallM, GemmEngine.SmallM + 1 })
        {
            float[] x = NumericsTestData.Random(m * k, seed: m);
            var (expected, scale) = ReferenceNT(x, w.Values, m, n, k);
            var y = new float[m * n];
            Gemm.MultiplyTransposed(x, m, w.Matrix, y);
            NumericsTestData.AssertClose(expected, scale, y, Rel, $"m={m}");
        }
    }

    public static TheoryData<bool, bool, int, int, int> SgemmCases()
    {
        var data = new TheoryData<bool, bool, int, int, int>();
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                foreach (var (m, n, k) in new[] { (1, 1, 1), (3, 65, 1000), (7, 33, 100), (100, 37, 129), (1, 300, 64), (65, 1, 9) })
                    data.Add(ta, tb, m, n, k);
        return data;
    }

    [Theory]
    [MemberData(nameof(SgemmCases))]
    public void Sgemm_matches_naive_loop_for_all_transposes_leading_dimensions_alpha_and_beta(bool transA, bool transB, int m, int n, int k)
    {
        // Padded leading dimensions so the kernels must honour them.
        int lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 5, ldc = n + 2;
        float[] a = NumericsTestData.Random((transA ? k : m) * lda, seed: 1);
        float[] b = NumericsTestData.Random((transB ? n : k) * ldb, seed: 2);
        foreach (var (alpha, beta) in new[] { (1f, 0f), (0.5f, 1f), (-2f, 0.25f) })
        {
            float[] c = NumericsTestData.Random(m * ldc, seed: 3);
            if (beta == 0) for (int i = 0; i < c.Length; i += 7) if (i % ldc < n) c[i] = float.NaN; // beta = 0 must ignore NaNs
            var expected = new double[m * ldc];
            var scale = new double[m * ldc];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < ldc; j++)
                {
                    int idx = i * ldc + j;
                    if (j >= n) { expected[idx] = c[idx]; continue; } // padding columns stay untouched
                    double s = 0, sa = 0;
                    for (int p = 0; p < k; p++)
                    {
                        double t = (double)(transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j]);
                        s += t;
                        sa += Math.Abs(t);
                    }
                    expected[idx] = alpha * s + (beta == 0 ? 0 : beta * (double)c[idx]);
                    scale[idx] = Math.Abs(alpha) * sa + (beta == 0 ? 0 : Math.Abs(beta * (double)c[idx]));
                }
            Gemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            for (int i = 0; i < m; i++)
                for (int j = n; j < ldc; j++)
                    Assert.True(c[i * ldc + j].Equals((float)expected[i * ldc + j]), "padding column was written");
            NumericsTestData.AssertClose(expected, scale, c, Rel, $"ta={transA} tb={transB} alpha={alpha} beta={beta}");
        }
    }

    /// <summary>
    /// Several column blocks and k blocks (A packed once and shared, next-k-block prefetch, edge tiles), against
    /// the naive loop for every operand layout, with A shared and packed per block, on one and two threads.
    /// </summary>
    [Theory]
    [InlineData(70, 600, 530)]
    [InlineData(37, 1100, 300)]
    [InlineData(256, 200, 600)]
    public void Packed_path_with_shared_or_per_block_A_matches_naive_loop(int m, int n, int k)
    {
        var w = new NumericsTestData.Weights(n, k, DType.BF16, seed: 21);
        float[] x = NumericsTestData.Random(m * k, seed: 22);
        float[] xt = new float[k * m];
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++) xt[p * m + i] = x[i * k + p];
        float[] wt = new float[k * n];
        for (int j = 0; j < n; j++)
            for (int p = 0; p < k; p++) wt[p * n + j] = w.Values[j * k + p];
        var (expected, scale) = ReferenceNT(x, w.Values, m, n, k);
        int savedThreads = Parallelism.ThreadCount;
        long savedShared = GemmEngine.SharedAFloats;
        try
        {
            foreach (long shared in new[] { savedShared, 0L })
                foreach (int threads in new[] { 1, 2 })
                {
                    GemmEngine.SharedAFloats = shared;
                    Parallelism.ThreadCount = threads;
                    string what = $"{m}x{n}x{k} shared={shared > 0} threads={threads}";
                    var y = new float[m * n];
                    Gemm.MultiplyTransposed(x, m, w.Matrix, y);
                    NumericsTestData.AssertClose(expected, scale, y, Rel, "MT bf16 " + what);
                    Gemm.Sgemm(false, true, m, n, k, 1, x, k, w.Values, k, 0, y, n);
                    NumericsTestData.AssertClose(expected, scale, y, Rel, "NT " + what);
                    Gemm.Sgemm(true, false, m, n, k, 1, xt, m, wt, n, 0, y, n);
                    NumericsTestData.AssertClose(expected, scale, y, Rel, "TN " + what);
                    Gemm.Sgemm(false, false, m, n, k, 1, x, k, wt, n, 0, y, n);
                    NumericsTestData.AssertClose(expected, scale, y, Rel, "NN " + what);
                }
        }
        finally
        {
            Parallelism.ThreadCount = savedThreads;
            GemmEngine.SharedAFloats = savedShared;
        }
    }

    [Fact]
    public void Sgemm_with_zero_k_scales_c_by_beta()
    {
        float[] c = [1, 2, 3, 4];
        Gemm.Sgemm(false, false, 2, 2, 0, 1, [], 1, [], 2, 0.5f, c, 2);
        Assert.Equal([0.5f, 1, 1.5f, 2], c);
    }

    [Theory]
    [InlineData(1, 300, 129)]
    [InlineData(5, 1000, 64)]
    [InlineData(64, 200, 700)]
    [InlineData(300, 130, 90)]
    public void Results_are_bit_identical_for_one_and_two_threads(int m, int n, int k)
    {
        var w = new NumericsTestData.Weights(n, k, DType.BF16, seed: 9);
        float[] x = NumericsTestData.Random(m * k, seed: 10);
        float[] b = NumericsTestData.Random(k * n, seed: 11);
        int saved = Parallelism.ThreadCount;
        try
        {
            float[] Run(int threads, bool sgemm)
            {
                Parallelism.ThreadCount = threads;
                var y = new float[m * n];
                if (sgemm) Gemm.Sgemm(false, false, m, n, k, 1, x, k, b, n, 0, y, n);
                else Gemm.MultiplyTransposed(x, m, w.Matrix, y);
                return y;
            }
            foreach (bool sgemm in new[] { false, true })
            {
                float[] one = Run(1, sgemm), two = Run(2, sgemm), three = Run(3, sgemm);
                Assert.Equal(one, two);
                Assert.Equal(one, three);
            }
        }
        finally { Parallelism.ThreadCount = saved; }
    }

    [Theory]
    [InlineData(5, 37, 203)]
    [InlineData(13, 64, 256)]
    [InlineData(48, 29, 77)]
    public void Small_m_bf16_products_equal_their_float32_widening_and_single_rows_bit_for_bit(int m, int n, int k)
    {
        // Several groups of x rows: the bf16 rows are widened once and shared; a single row widens them on the fly;
        // float32 weights holding the same (exactly widened) values take neither route. All must agree to the bit.
        var bf16 = new NumericsTestData.Weights(n, k, DType.BF16, seed: 31);
        var f32 = new NumericsTestData.Weights(n, k, bf16.Values);
        float[] x = NumericsTestData.Random(m * k, seed: 32);
        var batched = new float[m * n];
        Gemm.MultiplyTransposed(x, m, bf16.Matrix, batched);
        var viaF32 = new float[m * n];
        Gemm.MultiplyTransposed(x, m, f32.Matrix, viaF32);
        Assert.Equal(viaF32, batched);
        for (int i = 0; i < m; i++)
        {
            var row = new float[n];
            Gemm.MultiplyTransposed(x.AsSpan(i * k, k), 1, bf16.Matrix, row);
            Assert.Equal(row, batched.AsSpan(i * n, n).ToArray());
        }
    }

    /// <summary>
    /// The small-m summation order written out as a scalar loop: eight lanes, lane l accumulating the terms
    /// p = l (mod 8) of the first k - k % 8 with fused multiply-adds, folded as ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)),
    /// then the last k % 8 terms added one at a time. Every small-m tile must reproduce it to the bit.
    /// </summary>
    private static float EightLaneDot(ReadOnlySpan<float> x, ReadOnlySpan<float> w)
    {
        int k = x.Length, k8 = k / 8 * 8;
        Span<float> lanes = stackalloc float[8];
        lanes.Clear();
        for (int p = 0; p < k8; p++) lanes[p % 8] = MathF.FusedMultiplyAdd(x[p], w[p], lanes[p % 8]);
        float s = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
        for (int p = k8; p < k; p++) s += x[p] * w[p];
        return s;
    }

    public static TheoryData<string> SmallMKinds => new() { "Vector512", "Vector256" };

    [Theory]
    [MemberData(nameof(SmallMKinds))]
    public void Small_m_tiles_follow_the_eight_lane_summation_order_bit_for_bit(string kindName)
    {
        var kind = Enum.Parse<GemmEngine.KernelKind>(kindName);
        if (kind == GemmEngine.KernelKind.Vector512 && GemmEngine.Kind != kind) Assert.Skip("no AVX-512 on this machine");
        var saved = GemmEngine.Kind;
        try
        {
            GemmEngine.Kind = kind;
            foreach (var (n, k) in new[] { (37, 203), (13, 256), (4, 7), (29, 77) })
                foreach (DType dtype in new[] { DType.BF16, DType.F32, DType.F16 })
                {
                    var w = new NumericsTestData.Weights(n, k, dtype, seed: n + k);
                    for (int m = 1; m <= 33; m++)
                    {
                        float[] x = NumericsTestData.Random(m * k, seed: m);
                        var y = new float[m * n];
                        Gemm.MultiplyTransposed(x, m, w.Matrix, y);
                        for (int i = 0; i < m; i++)
                            for (int j = 0; j < n; j++)
                            {
                                float expected = EightLaneDot(x.AsSpan(i * k, k), w.Values.AsSpan(j * k, k));
                                if (BitConverter.SingleToInt32Bits(y[i * n + j]) != BitConverter.SingleToInt32Bits(expected))
                                    Assert.Fail($"{kind} {dtype} {m}x{n}x{k}: y[{i},{j}] = {y[i * n + j]:R}, eight-lane order gives {expected:R}");
                            }
                    }
                }
        }
        finally { GemmEngine.Kind = saved; }
    }

    [Fact]
    public void Small_m_wide_and_4x4_tiles_agree_bit_for_bit_with_alpha_beta_and_accumulate()
    {
        if (GemmEngine.Kind != GemmEngine.KernelKind.Vector512) Assert.Skip("the wide tile needs AVX-512, absent on this machine");
        var saved = GemmEngine.Kind;
        int savedThreads = Parallelism.ThreadCount;
        try
        {
            foreach (var (n, k) in new[] { (37, 203), (130, 64), (11, 9) })
            {
                var w = new NumericsTestData.Weights(n, k, DType.BF16, seed: 3 * n + k);
                float[] wf = w.Values;
                for (int m = 1; m <= 33; m++)
                {
                    float[] x = NumericsTestData.Random(m * k, seed: 40 + m);
                    float[] start = NumericsTestData.Random(m * n, seed: 80 + m);
                    float[] Run(GemmEngine.KernelKind kind, int threads, int variant)
                    {
                        GemmEngine.Kind = kind;
                        Parallelism.ThreadCount = threads;
                        var y = (float[])start.Clone();
                        if (variant == 0) Gemm.MultiplyTransposed(x, m, w.Matrix, y, accumulate: true);
                        else Gemm.Sgemm(false, true, m, n, k, 0.75f, x, k, wf, k, variant == 1 ? 1f : -0.5f, y, n);
                        return y;
                    }
                    for (int variant = 0; variant < 3; variant++)
                    {
                        float[] narrow = Run(GemmEngine.KernelKind.Vector256, 1, variant);
                        Assert.Equal(narrow, Run(GemmEngine.KernelKind.Vector512, 1, variant));
                        Assert.Equal(narrow, Run(GemmEngine.KernelKind.Vector512, 2, variant));
                    }
                }
            }
        }
        finally
        {
            GemmEngine.Kind = saved;
            Parallelism.ThreadCount = savedThreads;
        }
    }

    [Fact]
    public void Steady_state_calls_do_not_allocate()
    {
        var w = new NumericsTestData.Weights(200, 300, DType.BF16, seed: 1);
        float[] x = NumericsTestData.Random(100 * 300, seed: 2);
        var y = new float[100 * 200];
        float[] b = NumericsTestData.Random(300 * 200, seed: 3);
        float[] kv = NumericsTestData.Random(100 * 64, seed: 4);
        void Calls()
        {
            Gemm.MultiplyTransposed(x, 100, w.Matrix, y);
            Gemm.MultiplyTransposed(x.AsSpan(0, 2 * 300), 2, w.Matrix, y);
            Gemm.Sgemm(true, false, 100, 200, 300, 1, x, 100, b, 200, 0, y, 200);
            Attention.Forward(kv, 100, kv, kv, 100, 2, 1, 32, y.AsSpan(0, 100 * 64));
        }
        Calls();
        long before = GC.GetAllocatedBytesForCurrentThread();
        Calls();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Rejects_too_small_buffers_naming_the_operand()
    {
        var w = new NumericsTestData.Weights(4, 3, DType.F32, seed: 1);
        var e = Assert.Throws<ArgumentException>(() => Gemm.MultiplyTransposed(new float[5], 2, w.Matrix, new float[8]));
        Assert.Equal("x", e.ParamName);
        var e2 = Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, true, 2, 2, 2, 1, new float[4], 2, new float[3], 2, 0, new float[4], 2));
        Assert.Equal("b", e2.ParamName);
    }
}

/// <summary>Tests that change process-wide numerics settings (thread count, kernel kind) must not run in parallel with each other.</summary>
[CollectionDefinition(nameof(NumericsGlobalState), DisableParallelization = true)]
public class NumericsGlobalState;
