using System.Runtime.InteropServices;
using Llada.Numerics;
using Llada.Numerics.Native;

namespace Llada.Tests.Numerics;

[Collection(nameof(NumericsGlobalState))]
public class QuantizedGemmTests
{
    /// <summary>A pinned Q8_0 matrix quantised from random floats, with the values it stands for.</summary>
    private sealed unsafe class Q8Weights
    {
        public readonly sbyte[] Quants;
        public readonly Half[] Scales;
        public readonly float[] Source;
        public readonly WeightMatrix Matrix;

        public Q8Weights(int rows, int cols, int seed, float scale = 1f)
        {
            Source = NumericsTestData.Random(rows * cols, seed, scale);
            Quants = GC.AllocateArray<sbyte>(rows * cols, pinned: true);
            Scales = GC.AllocateArray<Half>(rows * cols / Q8Blocks.BlockSize, pinned: true);
            Q8Blocks.Quantize(Source, Quants, Scales);
            Matrix = WeightMatrix.Q8((sbyte*)Marshal.UnsafeAddrOfPinnedArrayElement(Quants, 0),
                (Half*)Marshal.UnsafeAddrOfPinnedArrayElement(Scales, 0), rows, cols);
        }
    }

    [Fact]
    public void Quantize_then_dequantize_is_within_half_a_step_of_each_block()
    {
        // Blocks of very different magnitudes, a zero block and exact extremes.
        float[] x = NumericsTestData.Random(32 * 64, seed: 7);
        for (int b = 0; b < 64; b++)
            for (int i = 0; i < 32; i++) x[b * 32 + i] *= MathF.Pow(10, b % 7 - 4);
        for (int i = 0; i < 32; i++) x[5 * 32 + i] = 0;
        x[9 * 32 + 3] = -2.5f;
        var q = new sbyte[x.Length];
        var d = new Half[x.Length / 32];
        var back = new float[x.Length];
        Q8Blocks.Quantize(x, q, d);
        Q8Blocks.Dequantize(q, d, back);
        for (int b = 0; b < 64; b++)
        {
            float max = 0;
            for (int i = 0; i < 32; i++) max = MathF.Max(max, MathF.Abs(x[b * 32 + i]));
            float step = (float)d[b];
            // The scale is max/127 rounded to binary16 (relative error <= 2^-11, or half a subnormal step 2^-25).
            Assert.InRange(step, max / 127 * (1 - 1.0 / 2048) - 3e-8, max / 127 * (1 + 1.0 / 2048) + 3e-8);
            for (int i = 0; i < 32; i++)
            {
                int idx = b * 32 + i;
                Assert.InRange((int)q[idx], -127, 127);
                Assert.Equal(q[idx] * step, back[idx]);
                // Half a step; beyond 127 steps (the rounded scale came out small) the clamp costs |x| - 127 * step.
                double allowed = Math.Max(step / 2.0, Math.Abs(x[idx]) - 127.0 * step) + 1e-12;
                Assert.True(Math.Abs(x[idx] - back[idx]) <= allowed, $"block {b} element {i}: {x[idx]} -> {back[idx]}, allowed {allowed}");
            }
        }
        Assert.All(q.AsSpan(5 * 32, 32).ToArray(), v => Assert.Equal(0, v));
        Assert.Equal(-127, q[9 * 32 + 3]);
    }

    [Fact]
    public void Quantize_rejects_blocks_binary16_cannot_scale()
    {
        var x = new float[32];
        x[0] = 1e7f;
        var e = Assert.Throws<ArgumentException>(() => Q8Blocks.Quantize(x, new sbyte[32], new Half[1]));
        Assert.Contains("block 0", e.Message);
        Assert.Throws<ArgumentException>(() => Q8Blocks.Quantize(new float[33], new sbyte[33], new Half[2]));
    }

    /// <summary>The product written out from its definition: quantise each activation block, exact integer dot per block, one fma per block.</summary>
    private static float[] NaiveIntegerProduct(float[] x, int m, Q8Weights w, int n, int k)
    {
        int blocks = k / 32;
        var y = new float[m * n];
        var xq = new int[k];
        var xs = new float[blocks];
        for (int i = 0; i < m; i++)
        {
            for (int b = 0; b < blocks; b++)
            {
                float max = 0;
                for (int p = 0; p < 32; p++) max = MathF.Max(max, MathF.Abs(x[i * k + b * 32 + p]));
                xs[b] = max / 127f;
                float inverse = max == 0 ? 0 : 127f / max;
                for (int p = 0; p < 32; p++) xq[b * 32 + p] = (int)Math.Round(x[i * k + b * 32 + p] * inverse, MidpointRounding.ToEven);
            }
            for (int j = 0; j < n; j++)
            {
                float f = 0;
                for (int b = 0; b < blocks; b++)
                {
                    long s = 0;
                    for (int p = b * 32; p < b * 32 + 32; p++) s += (long)xq[p] * w.Quants[j * k + p];
                    f = MathF.FusedMultiplyAdd(s, (float)w.Scales[j * blocks + b] * xs[b], f);
                }
                y[i * n + j] = f;
            }
        }
        return y;
    }

    /// <summary>Runs <paramref name="check"/> with each kernel this machine has: emitted VNNI, managed AVX-512BW, scalar.</summary>
    private static void ForEachKernel(Action check)
    {
        bool savedVector = QuantizedGemm.UseVector, savedNative = QuantizedGemm.UseNative;
        try
        {
            var kernels = new List<(bool Vector, bool Native)>();
            if (savedVector && VnniQ8Kernel.EntryPoints is not null) kernels.Add((true, true));
            if (savedVector) kernels.Add((true, false));
            kernels.Add((false, false));
            foreach (var (vector, native) in kernels)
            {
                QuantizedGemm.UseVector = vector;
                QuantizedGemm.UseNative = native;
                check();
            }
        }
        finally
        {
            QuantizedGemm.UseVector = savedVector;
            QuantizedGemm.UseNative = savedNative;
        }
    }

    public static TheoryData<int, int, int> Shapes => new()
    {
        { 1, 1, 32 }, { 1, 33, 64 }, { 3, 32, 96 }, { 4, 64, 256 }, { 7, 45, 32 }, { 17, 100, 288 }, { 64, 70, 1024 },
        // Tile edges: 2- and 1-row tails after 4-row tiles, 16/17/31/47 columns (half and partial panels), k = 2816.
        { 2, 17, 64 }, { 6, 31, 160 }, { 5, 16, 32 }, { 9, 47, 2816 },
        // 6-row VNNI tiles with every tail height (1..5 rows) and more than one panel.
        { 8, 33, 64 }, { 11, 65, 96 }, { 13, 3, 32 }, { 23, 50, 128 },
    };

    [Fact]
    public void Emitted_vnni_kernel_equals_the_managed_kernel_bit_for_bit_for_every_tile_height()
    {
        if (VnniQ8Kernel.EntryPoints is null || !QuantizedGemm.UseVector)
            Assert.Skip($"no emitted VNNI kernel here: {NativeKernels.Q8Kernel}");
        int n = 77, k = 320;
        var w = new Q8Weights(n, k, seed: 21, scale: 0.1f);
        bool saved = QuantizedGemm.UseNative;
        try
        {
            for (int m = 1; m <= 14; m++)
            {
                float[] x = NumericsTestData.Random(m * k, seed: 100 + m, scale: 2f);
                for (int i = 0; i < k; i += 97) x[i] = 0; // blocks mixing zeros, and all-zero rows below
                if (m == 4) Array.Clear(x, 3 * k, k);
                var managed = new float[m * n];
                var emitted = new float[m * n];
                QuantizedGemm.UseNative = false;
                Gemm.MultiplyTransposed(x, m, w.Matrix, managed);
                QuantizedGemm.UseNative = true;
                Gemm.MultiplyTransposed(x, m, w.Matrix, emitted);
                Assert.Equal(managed, emitted);
                Assert.Contains(managed, v => v != 0);
            }
        }
        finally { QuantizedGemm.UseNative = saved; }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Vector_and_scalar_kernels_equal_the_integer_definition_exactly(int m, int n, int k)
    {
        var w = new Q8Weights(n, k, seed: m + n + k);
        float[] x = NumericsTestData.Random(m * k, seed: k, scale: 3f);
        float[] expected = NaiveIntegerProduct(x, m, w, n, k);
        ForEachKernel(() =>
        {
            var y = new float[m * n];
            Gemm.MultiplyTransposed(x, m, w.Matrix, y);
            Assert.Equal(expected, y);

            float[] start = NumericsTestData.Random(m * n, seed: 5);
            start.CopyTo(y, 0);
            Gemm.MultiplyTransposed(x, m, w.Matrix, y, accumulate: true);
            for (int i = 0; i < y.Length; i++) Assert.Equal(start[i] + expected[i], y[i]);
        });
    }

    /// <summary>
    /// The matrix packed once under each vector kernel's layout (w + 128 for the emitted kernel, w for the managed
    /// one); empty when this machine has no vector kernel.
    /// </summary>
    private static List<WeightMatrix> PackedUnderEveryLayout(Q8Weights w, PackedWeights store)
    {
        bool savedVector = QuantizedGemm.UseVector, savedNative = QuantizedGemm.UseNative;
        var packed = new List<WeightMatrix>();
        try
        {
            if (!savedVector) return packed;
            foreach (bool native in savedNative ? new[] { true, false } : [false])
            {
                QuantizedGemm.UseNative = native;
                packed.Add(store.Pack(w.Matrix));
            }
        }
        finally
        {
            QuantizedGemm.UseVector = savedVector;
            QuantizedGemm.UseNative = savedNative;
        }
        return packed;
    }

    private static unsafe void IsPacked(WeightMatrix w) => Assert.True(w.Panels != null);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Prepacked_matrices_equal_the_integer_definition_under_every_kernel_and_layout(int m, int n, int k)
    {
        if (!QuantizedGemm.UseVector) Assert.Skip("no AVX-512BW: nothing is packed");
        var w = new Q8Weights(n, k, seed: m * n + k);
        float[] x = NumericsTestData.Random(m * k, seed: n, scale: 3f);
        float[] expected = NaiveIntegerProduct(x, m, w, n, k);
        using var store = new PackedWeights();
        var packed = PackedUnderEveryLayout(w, store);
        Assert.All(packed, IsPacked);
        // One panel per 32 rows (the last one padded): k * 32 quants and k float32 scales each.
        Assert.Equal(packed.Count * ((n + 31) / 32) * (32L * k + 4L * k), store.ByteLength);
        // Each kernel reads the panels packed for it and packs per call from the rows for the other layout.
        ForEachKernel(() =>
        {
            foreach (var p in packed)
            {
                var y = new float[m * n];
                Gemm.MultiplyTransposed(x, m, p, y);
                Assert.Equal(expected, y);

                float[] start = NumericsTestData.Random(m * n, seed: 6);
                start.CopyTo(y, 0);
                Gemm.MultiplyTransposed(x, m, p, y, accumulate: true);
                for (int i = 0; i < y.Length; i++) Assert.Equal(start[i] + expected[i], y[i]);
            }
        });
    }

    [Fact]
    public void The_running_vector_kernel_reads_only_the_panels_and_packing_reports_every_source_byte_once()
    {
        if (!QuantizedGemm.UseVector) Assert.Skip("no AVX-512BW: nothing is packed");
        // More rows than one packing chunk (2048) and a partial last panel.
        int m = 7, n = 2048 + 45, k = 64;
        var w = new Q8Weights(n, k, seed: 31);
        float[] x = NumericsTestData.Random(m * k, seed: 32);
        float[] expected = NaiveIntegerProduct(x, m, w, n, k);
        using var store = new PackedWeights();
        var released = new List<(nint Start, long Bytes)>();
        var packed = store.Pack(w.Matrix, (start, bytes) => released.Add((start, bytes)));

        // Quants and scales, chunk by chunk, covering each array exactly once and in order.
        unsafe
        {
            var quants = released.Where((_, i) => i % 2 == 0).ToList();
            var scales = released.Where((_, i) => i % 2 == 1).ToList();
            Assert.Equal(2, quants.Count);
            Assert.Equal([((nint)w.Matrix.Data, 2048L * k), ((nint)w.Matrix.Data + 2048 * k, 45L * k)], quants);
            Assert.Equal([((nint)w.Matrix.Scales, 2048L * 2 * 2), ((nint)(w.Matrix.Scales + 2048 * 2), 45L * 2 * 2)], scales);
        }

        // Wiping the rows afterwards changes nothing for the kernel the panels were packed for.
        Array.Clear(w.Quants);
        Array.Clear(w.Scales);
        var y = new float[m * n];
        Gemm.MultiplyTransposed(x, m, packed, y);
        Assert.Equal(expected, y);
    }

    [Fact]
    public void Extreme_quants_including_a_stored_minus_128_are_multiplied_exactly()
    {
        // Q8Blocks never writes -128, but a file may hold it; |w| = 128 still fits vpmaddubsw without saturating.
        int m = 5, n = 40, k = 128;
        var w = new Q8Weights(n, k, seed: 11);
        for (int i = 0; i < w.Quants.Length; i++) w.Quants[i] = (sbyte)(i % 3 == 0 ? -128 : i % 3 == 1 ? 127 : -127);
        float[] x = NumericsTestData.Random(m * k, seed: 12);
        for (int i = 0; i < x.Length; i++) x[i] = (i % 5 == 0 ? -1f : 1f) * (i % 2 == 0 ? 4f : 4f - 1e-6f * i);
        float[] expected = NaiveIntegerProduct(x, m, w, n, k);
        ForEachKernel(() =>
        {
            var y = new float[m * n];
            Gemm.MultiplyTransposed(x, m, w.Matrix, y);
            Assert.Equal(expected, y);
        });
    }

    [Fact]
    public void Result_is_within_the_activation_rounding_bound_of_the_float_product_and_independent_of_threads()
    {
        int m = 37, n = 130, k = 512;
        var w = new Q8Weights(n, k, seed: 3, scale: 0.05f);
        float[] x = NumericsTestData.Random(m * k, seed: 4, scale: 2f);
        float[] wHat = new float[n * k];
        Q8Blocks.Dequantize(w.Quants, w.Scales, wHat);
        var y = new float[m * n];
        Gemm.MultiplyTransposed(x, m, w.Matrix, y);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                // Each activation moves by at most half its block's step (max/254); the weights are used exactly.
                double exact = 0, bound = 0, sumAbs = 0;
                for (int b = 0; b < k / 32; b++)
                {
                    double max = 0, wAbs = 0;
                    for (int p = b * 32; p < b * 32 + 32; p++)
                    {
                        max = Math.Max(max, Math.Abs(x[i * k + p]));
                        wAbs += Math.Abs(wHat[j * k + p]);
                        exact += (double)x[i * k + p] * wHat[j * k + p];
                        sumAbs += Math.Abs((double)x[i * k + p] * wHat[j * k + p]);
                    }
                    bound += max / 254 * wAbs;
                }
                double err = Math.Abs(y[i * n + j] - exact);
                Assert.True(err <= bound + 1e-5 * sumAbs, $"({i},{j}): {y[i * n + j]} vs {exact}, error {err}, bound {bound}");
            }

        int savedThreads = Parallelism.ThreadCount;
        try
        {
            Parallelism.ThreadCount = 1;
            var single = new float[m * n];
            Gemm.MultiplyTransposed(x, m, w.Matrix, single);
            Assert.Equal(y, single);
        }
        finally { Parallelism.ThreadCount = savedThreads; }
    }

    [Fact]
    public void Rows_and_elements_of_a_q8_matrix_read_back_as_quant_times_scale()
    {
        var w = new Q8Weights(3, 64, seed: 9);
        var row = new float[64];
        WeightRows.ToSingle(w.Matrix, 2, row);
        for (int c = 0; c < 64; c++)
        {
            float expected = w.Quants[2 * 64 + c] * (float)w.Scales[2 * 2 + c / 32];
            Assert.Equal(expected, row[c]);
            Assert.Equal(expected, w.Matrix[2, c]);
        }
        Assert.Equal(3 * 64 + 3 * 2 * 2, w.Matrix.ByteLength);
    }
}
