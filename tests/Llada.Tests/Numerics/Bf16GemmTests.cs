using Llada.Numerics;
using Llada.Numerics.Native;

namespace Llada.Tests.Numerics;

[Collection(nameof(NumericsGlobalState))]
public class Bf16GemmTests
{
    [Fact]
    public unsafe void Activations_round_to_bf16_exactly_as_the_scalar_conversion()
    {
        var x = new List<float>(NumericsTestData.Random(200, seed: 1, scale: 5f))
        {
            0f, -0f, 1f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, float.Epsilon, -1e-40f, float.MaxValue,
            BitConverter.UInt32BitsToSingle(0x3F808000), // a tie, even below: stays 0x3F80
            BitConverter.UInt32BitsToSingle(0x3F818000), // a tie, odd below: rounds up to 0x3F82
            BitConverter.UInt32BitsToSingle(0x3F817FFF),
        };
        float[] input = [.. x, .. x]; // long enough for vector and scalar tails
        var bits = new ushort[input.Length];
        var values = new float[input.Length];
        fixed (float* xp = input)
        fixed (ushort* bp = bits)
        fixed (float* vp = values)
            Bf16Gemm.RoundToBf16(xp, input.Length, bp, vp);
        for (int i = 0; i < input.Length; i++)
        {
            ushort expected = DTypes.SingleToBF16(input[i]);
            Assert.Equal(expected, bits[i]);
            Assert.Equal(BitConverter.SingleToUInt32Bits(DTypes.BF16ToSingle(expected)), BitConverter.SingleToUInt32Bits(values[i]));
        }
        Assert.Equal(0x3F80, DTypes.SingleToBF16(BitConverter.UInt32BitsToSingle(0x3F808000)));
        Assert.Equal(0x3F82, DTypes.SingleToBF16(BitConverter.UInt32BitsToSingle(0x3F818000)));
    }

    public static TheoryData<int, int, int> Shapes => new()
    {
        { 1, 1, 16 }, { 3, 33, 48 }, { 6, 32, 64 }, { 7, 77, 320 }, { 13, 50, 1024 }, { 23, 17, 96 },
        { 5, 40, 40 }, // k not a multiple of 16: rounded activations through the float32 engine
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Bf16_activations_product_is_within_the_rounding_bounds_of_the_float64_reference(int m, int n, int k)
    {
        var w = new NumericsTestData.Weights(n, k, DType.BF16, seed: n + k);
        float[] x = NumericsTestData.Random(m * k, seed: m + 3, scale: 2f);
        float[] start = NumericsTestData.Random(m * n, seed: 9);
        ForEachKernel(() =>
        {
            var y = new float[m * n];
            Gemm.MultiplyTransposed(x, m, w.Matrix, y, bf16Arithmetic: Bf16Arithmetic.Bf16Activations);
            var acc = (float[])start.Clone();
            Gemm.MultiplyTransposed(x, m, w.Matrix, acc, accumulate: true, Bf16Arithmetic.Bf16Activations);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double rounded = 0, exact = 0, sumAbs = 0;
                    for (int p = 0; p < k; p++)
                    {
                        double wv = w.Values[j * k + p], xb = DTypes.BF16ToSingle(DTypes.SingleToBF16(x[i * k + p]));
                        rounded += xb * wv;
                        exact += x[i * k + p] * wv;
                        sumAbs += Math.Abs(xb * wv);
                    }
                    // Products of two bf16 are exact in float32; summing k of them rounds at most k times (u = 2^-24).
                    double summing = k * Math.Pow(2, -24) * sumAbs;
                    // Rounding an activation to bf16 moves it by at most 2^-9 of itself.
                    double activations = Math.Pow(2, -9) * sumAbs * (1 + Math.Pow(2, -8));
                    double got = y[i * n + j];
                    Assert.True(Math.Abs(got - rounded) <= summing, $"({i},{j}) k={k}: {got} vs bf16-activation reference {rounded}, allowed {summing}");
                    Assert.True(Math.Abs(got - exact) <= summing + activations, $"({i},{j}): {got} vs float reference {exact}");
                    double accExpected = start[i * n + j] + rounded;
                    double accAllowed = summing + Math.Pow(2, -24) * (Math.Abs(start[i * n + j]) + sumAbs);
                    Assert.True(Math.Abs(acc[i * n + j] - accExpected) <= accAllowed, $"accumulate ({i},{j}): {acc[i * n + j]} vs {accExpected}");
                }
        });
    }

    [Fact]
    public void Bf16_activations_are_opt_in_and_do_not_depend_on_the_thread_count()
    {
        int m = 37, n = 130, k = 512;
        var w = new NumericsTestData.Weights(n, k, DType.BF16, seed: 4);
        float[] x = NumericsTestData.Random(m * k, seed: 5);
        var defaultMode = new float[m * n];
        Gemm.MultiplyTransposed(x, m, w.Matrix, defaultMode); // Float32 arithmetic unless opted in
        var widened = new float[m * n];
        Gemm.Sgemm(false, true, m, n, k, 1f, x, k, w.Values, k, 0f, widened, n);
        Assert.Equal(widened, defaultMode);

        int saved = Parallelism.ThreadCount;
        try
        {
            var all = new float[m * n];
            Gemm.MultiplyTransposed(x, m, w.Matrix, all, bf16Arithmetic: Bf16Arithmetic.Bf16Activations);
            Parallelism.ThreadCount = 1;
            var one = new float[m * n];
            Gemm.MultiplyTransposed(x, m, w.Matrix, one, bf16Arithmetic: Bf16Arithmetic.Bf16Activations);
            Assert.Equal(all, one);
            Assert.NotEqual(defaultMode, all); // activation rounding does show
        }
        finally { Parallelism.ThreadCount = saved; }
    }

    /// <summary>Runs <paramref name="check"/> with the emitted kernel (where it exists) and with the fallback.</summary>
    internal static void ForEachKernel(Action check)
    {
        bool savedNative = Bf16Gemm.UseNative;
        try
        {
            foreach (bool native in Bf16DotKernel.EntryPoints is not null ? new[] { true, false } : new[] { false })
            {
                Bf16Gemm.UseNative = native;
                check();
            }
        }
        finally
        {
            Bf16Gemm.UseNative = savedNative;
        }
    }
}
