using Llada.Numerics;

namespace Llada.Tests.Numerics;

[Collection(nameof(NumericsGlobalState))]
public class AttentionTests
{
    /// <summary>Materialises scores in double: softmax over visible keys, zeros when none is visible.</summary>
    private static double[] Naive(float[] q, int tq, float[] k, float[] v, int tk, int heads, int kvHeads, int d,
        bool[]? mask, bool causal, int[]? positions)
    {
        var o = new double[tq * heads * d];
        int group = heads / kvHeads;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < tq; i++)
            {
                int pos = positions?[i] ?? tk - tq + i;
                var s = new double[tk];
                double max = double.NegativeInfinity;
                for (int j = 0; j < tk; j++)
                {
                    bool visible = (mask is null || mask[j]) && (!causal || j <= pos);
                    if (!visible) { s[j] = double.NegativeInfinity; continue; }
                    double dot = 0;
                    for (int x = 0; x < d; x++) dot += (double)q[i * heads * d + h * d + x] * k[j * kvHeads * d + h / group * d + x];
                    s[j] = dot / Math.Sqrt(d);
                    max = Math.Max(max, s[j]);
                }
                if (double.IsNegativeInfinity(max)) continue;
                double sum = 0;
                for (int j = 0; j < tk; j++) { s[j] = Math.Exp(s[j] - max); sum += s[j]; }
                for (int j = 0; j < tk; j++)
                    for (int x = 0; x < d; x++)
                        o[i * heads * d + h * d + x] += s[j] / sum * v[j * kvHeads * d + h / group * d + x];
            }
        return o;
    }

    public static TheoryData<int, int, int, int, int, string> Cases => new()
    {
        // tq, tk, heads, kvHeads, d, mode
        { 1, 1, 1, 1, 8, "plain" },
        { 7, 7, 2, 2, 16, "plain" },
        { 33, 33, 4, 1, 12, "plain" },      // GQA, head dim not a multiple of 8
        { 100, 100, 4, 2, 64, "mask" },     // crosses key/query tiles
        { 70, 130, 2, 1, 32, "mask" },
        { 65, 65, 2, 2, 24, "causal" },
        { 5, 100, 4, 2, 16, "causal-suffix" },
        { 9, 80, 2, 1, 8, "causal-subset" },
        { 20, 90, 2, 2, 16, "all-masked" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Attention_matches_naive_softmax_attention(int tq, int tk, int heads, int kvHeads, int d, string mode)
    {
        float[] q = NumericsTestData.Random(tq * heads * d, seed: 1, scale: 2);
        float[] k = NumericsTestData.Random(tk * kvHeads * d, seed: 2, scale: 2);
        float[] v = NumericsTestData.Random(tk * kvHeads * d, seed: 3);
        bool[]? mask = null;
        int[]? positions = null;
        bool causal = mode.StartsWith("causal");
        if (mode is "mask" or "all-masked")
        {
            var rng = new Random(4);
            mask = new bool[tk];
            for (int j = 0; j < tk; j++) mask[j] = mode == "mask" && (j < 3 || rng.NextDouble() < 0.7); // leading pad keys hidden in some runs
            if (mode == "mask") mask[0] = false;
        }
        if (mode == "causal-subset")
        {
            positions = new int[tq];
            for (int i = 0; i < tq; i++) positions[i] = (i * 37 + 5) % tk; // arbitrary order and subset
        }
        double[] expected = Naive(q, tq, k, v, tk, heads, kvHeads, d, mask, causal, positions);
        var output = new float[tq * heads * d];
        output.AsSpan().Fill(float.NaN); // every element must be written
        Attention.Forward(q, tq, k, v, tk, heads, kvHeads, d, output, mask, causal, positions);
        // Outputs are convex combinations of values in [-1, 1]: absolute tolerance relative to that range.
        for (int i = 0; i < output.Length; i++)
            Assert.True(Math.Abs(output[i] - expected[i]) <= 1e-5, $"{mode}: element {i} is {output[i]}, expected {expected[i]}");
        if (mode == "all-masked") Assert.All(output, x => Assert.Equal(0f, x));
    }

    public static TheoryData<string, int, int, int, int, int, string> KernelCases => new()
    {
        // kernel family, tq, tk, heads, kvHeads, d, mode: head dims hitting the 4x64, 16-wide, 8-wide and scalar
        // P*V paths; key counts crossing several 128-key tiles and not a multiple of the 32-key score block.
        { "Vector512", 70, 300, 2, 1, 64, "causal" },
        { "Vector512", 33, 261, 2, 2, 80, "mask" },
        { "Vector512", 40, 129, 2, 1, 128, "plain" },
        { "Vector512", 9, 47, 1, 1, 93, "plain" },
        { "Vector256", 70, 300, 2, 1, 64, "causal" },
        { "Vector256", 33, 261, 2, 2, 80, "mask" },
        { "Vector256", 9, 47, 1, 1, 93, "plain" },
    };

    /// <summary>The Vector512 and the narrower Vector256 kernels against the naive reference on awkward shapes.</summary>
    [Theory]
    [MemberData(nameof(KernelCases))]
    public void Attention_kernels_match_naive_attention(string kindName, int tq, int tk, int heads, int kvHeads, int d, string mode)
    {
        var kind = Enum.Parse<GemmEngine.KernelKind>(kindName);
        if (kind == GemmEngine.KernelKind.Vector512 && GemmEngine.Kind != kind) return; // hardware lacks it
        var saved = GemmEngine.Kind;
        try
        {
            GemmEngine.Kind = kind;
            Attention_matches_naive_softmax_attention(tq, tk, heads, kvHeads, d, mode);
        }
        finally { GemmEngine.Kind = saved; }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public unsafe void Softmax_exponential_is_accurate_for_non_positive_arguments(bool wide)
    {
        var xs = new List<float> { 0f, -1e-30f, -1e-7f, -0.3465f, -0.3466f, -0.6931472f, -1f, -10f, -50f, -87f, -87.29f, float.NegativeInfinity };
        var rng = new Random(5);
        for (int i = 0; i < 20000; i++) xs.Add((float)(-rng.NextDouble() * 90));
        float[] values = xs.ToArray();
        float[] shifted = (float[])values.Clone();
        float sum;
        fixed (float* p = shifted) sum = Attention.ExpShiftedSum(p, shifted.Length, 0f, wide);
        double expectedSum = 0;
        for (int i = 0; i < values.Length; i++)
        {
            double e = Math.Exp(values[i]);
            expectedSum += e;
            // Relative 3e-7 in the normal range; arguments whose result would be subnormal are flushed to zero.
            if (values[i] < -87.3f) Assert.Equal(0f, shifted[i]);
            else Assert.True(Math.Abs(shifted[i] - e) <= 3e-7 * e, $"exp({values[i]}) = {shifted[i]}, expected {e}");
        }
        Assert.True(Math.Abs(sum - expectedSum) <= 1e-6 * expectedSum, $"sum {sum} vs {expectedSum}");
        // Shift by a row max: exp(s - max) with the tail (length not a multiple of 8) padded internally.
        float[] row = [3f, 1f, 2.5f, -4f, 3f];
        fixed (float* p = row) sum = Attention.ExpShiftedSum(p, row.Length, 3f, wide);
        Assert.Equal(1f, row[0]);
        Assert.True(Math.Abs(row[3] - Math.Exp(-7)) <= 3e-7 * Math.Exp(-7));
        Assert.True(Math.Abs(sum - (2 + Math.Exp(-2) + Math.Exp(-0.5) + Math.Exp(-7))) <= 1e-6 * 3);
    }

    [Fact]
    public void Attention_is_bit_identical_for_one_and_two_threads()
    {
        int tq = 50, tk = 150, heads = 4, kv = 2, d = 32;
        float[] q = NumericsTestData.Random(tq * heads * d, seed: 1), k = NumericsTestData.Random(tk * kv * d, seed: 2), v = NumericsTestData.Random(tk * kv * d, seed: 3);
        int saved = Parallelism.ThreadCount;
        try
        {
            var one = new float[tq * heads * d];
            var two = new float[tq * heads * d];
            Parallelism.ThreadCount = 1;
            Attention.Forward(q, tq, k, v, tk, heads, kv, d, one, causal: true);
            Parallelism.ThreadCount = 2;
            Attention.Forward(q, tq, k, v, tk, heads, kv, d, two, causal: true);
            Assert.Equal(one, two);
        }
        finally { Parallelism.ThreadCount = saved; }
    }

    [Fact]
    public void Attention_rejects_head_counts_that_do_not_group()
    {
        var e = Assert.Throws<ArgumentException>(() => Attention.Forward(new float[6], 1, new float[4], new float[4], 1, 3, 2, 2, new float[6]));
        Assert.Equal("kvHeads", e.ParamName);
    }
}
