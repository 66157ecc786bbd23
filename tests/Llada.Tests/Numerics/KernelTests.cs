using Llada.Numerics;

namespace Llada.Tests.Numerics;

[Collection(nameof(NumericsGlobalState))]
public class KernelTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 33)]
    [InlineData(3, 1000)]
    public void RmsNorm_matches_naive_loop_with_every_weight_dtype(int rows, int dim)
    {
        float[] x = NumericsTestData.Random(rows * dim, seed: dim, scale: 3);
        foreach (DType dtype in new[] { DType.F32, DType.BF16, DType.F16 })
        {
            var w = new NumericsTestData.Weights(1, dim, dtype, seed: rows);
            var expected = new double[rows * dim];
            var scale = new double[rows * dim];
            for (int r = 0; r < rows; r++)
            {
                double ss = 0;
                for (int c = 0; c < dim; c++) ss += (double)x[r * dim + c] * x[r * dim + c];
                double inv = 1 / Math.Sqrt(ss / dim + 1e-5);
                for (int c = 0; c < dim; c++)
                {
                    expected[r * dim + c] = x[r * dim + c] * inv * w.Values[c];
                    scale[r * dim + c] = Math.Abs(expected[r * dim + c]);
                }
            }
            var y = new float[rows * dim];
            RmsNorm.Apply(x, rows, dim, w.Matrix, 1e-5f, y);
            NumericsTestData.AssertClose(expected, scale, y, 1e-5, $"rmsnorm {dtype}");
            // In place over the input, float weights.
            float[] inPlace = (float[])x.Clone();
            RmsNorm.Apply(inPlace, rows, dim, w.Values, 1e-5f, inPlace);
            NumericsTestData.AssertClose(expected, scale, inPlace, 1e-5, $"rmsnorm in place {dtype}");
        }
    }

    [Theory]
    [InlineData(2, 8, 100)]
    [InlineData(3, 128, 4096)]
    [InlineData(1, 6, 10)]
    public void Rope_rotates_each_head_half_by_position_angle(int heads, int headDim, int maxPos)
    {
        var table = new RopeTable(headDim, maxPos, 500000);
        int[] positions = [0, 1, maxPos - 1, maxPos / 2, 3 % maxPos];
        int width = heads * headDim, half = headDim / 2;
        float[] x = NumericsTestData.Random(positions.Length * width, seed: 4);
        float[] y = (float[])x.Clone();
        table.Apply(y, heads, positions);
        for (int t = 0; t < positions.Length; t++)
            for (int h = 0; h < heads; h++)
                for (int j = 0; j < half; j++)
                {
                    // Reference angle in double from the definition theta^(-2j/D).
                    double angle = positions[t] * Math.Pow(500000, -2.0 * j / headDim);
                    double c = Math.Cos(angle), s = Math.Sin(angle);
                    int i1 = t * width + h * headDim + j, i2 = i1 + half;
                    double e1 = x[i1] * c - x[i2] * s, e2 = x[i2] * c + x[i1] * s;
                    // The table rounds inv_freq and pos*inv_freq to float32 like the PyTorch reference: the angle
                    // error is up to ~pos * 6e-8 rad (2.5e-4 at pos 4095), which bounds the output error here.
                    double tol = 2e-6 + positions[t] * 1.2e-7 * (Math.Abs(x[i1]) + Math.Abs(x[i2]));
                    Assert.True(Math.Abs(y[i1] - e1) <= tol, $"first half t={t} h={h} j={j}: {y[i1]} vs {e1}");
                    Assert.True(Math.Abs(y[i2] - e2) <= tol, $"second half t={t} h={h} j={j}: {y[i2]} vs {e2}");
                }
    }

    [Fact]
    public void Rope_table_matches_float32_reference_formula_exactly()
    {
        var table = new RopeTable(128, 64, 500000);
        for (int pos = 0; pos < 64; pos += 7)
            for (int j = 0; j < 64; j += 5)
            {
                float invFreq = 1f / (float)Math.Pow(500000, (float)(2 * j) / 128);
                float angle = pos * invFreq;
                Assert.Equal((float)Math.Cos(angle), table.Cos(pos, j));
                Assert.Equal((float)Math.Sin(angle), table.Sin(pos, j));
            }
    }

    [Fact]
    public void Rope_rejects_positions_outside_the_table()
    {
        var table = new RopeTable(4, 10, 10000);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => table.Apply(new float[4], 1, [10]));
        Assert.Contains("0..9", e.Message);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 33)]
    [InlineData(2, 1000)]
    public void Softmax_rows_match_naive_loop_and_masked_rows_become_zero(int rows, int cols)
    {
        float[] x = NumericsTestData.Random(rows * cols, seed: 8, scale: 30);
        x[0] = 80; // large values must not overflow
        var y = new float[rows * cols];
        Activations.SoftmaxRows(x, rows, cols, y);
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int c = 0; c < cols; c++) max = Math.Max(max, x[r * cols + c]);
            for (int c = 0; c < cols; c++) sum += Math.Exp(x[r * cols + c] - max);
            for (int c = 0; c < cols; c++)
            {
                double e = Math.Exp(x[r * cols + c] - max) / sum;
                Assert.True(Math.Abs(y[r * cols + c] - e) <= 1e-5 * e + 1e-12, $"row {r} col {c}: {y[r * cols + c]} vs {e}");
            }
        }
        float[] masked = [float.NegativeInfinity, float.NegativeInfinity, 1, float.NegativeInfinity];
        Activations.SoftmaxRows(masked, 2, 2, masked);
        Assert.Equal([0f, 0f, 1f, 0f], masked);
    }

    [Fact]
    public void Silu_and_SwiGlu_match_definition()
    {
        float[] gate = NumericsTestData.Random(101, seed: 1, scale: 12);
        float[] up = NumericsTestData.Random(101, seed: 2, scale: 3);
        gate[0] = -100; gate[1] = 100; gate[2] = 0;
        var silu = new float[101];
        var swiglu = new float[101];
        Activations.Silu(gate, silu);
        Activations.SwiGlu(gate, up, swiglu);
        float[] aliased = (float[])up.Clone();
        Activations.SwiGlu(gate, aliased, aliased); // output over up
        float[] overGate = (float[])gate.Clone();
        Activations.SwiGlu(overGate, up, overGate); // output over gate
        float[] siluInPlace = (float[])gate.Clone();
        Activations.Silu(siluInPlace, siluInPlace);
        Assert.Equal(silu, siluInPlace);
        Assert.Equal(swiglu, overGate);
        for (int i = 0; i < 101; i++)
        {
            double s = gate[i] / (1 + Math.Exp(-(double)gate[i]));
            Assert.True(Math.Abs(silu[i] - s) <= 1e-6 * Math.Abs(s) + 1e-30, $"silu {gate[i]}: {silu[i]} vs {s}");
            double sw = s * up[i];
            Assert.True(Math.Abs(swiglu[i] - sw) <= 2e-6 * Math.Abs(sw) + 1e-30, $"swiglu {i}: {swiglu[i]} vs {sw}");
            Assert.Equal(swiglu[i], aliased[i]);
        }
    }

    /// <summary>Output over gate (how the model calls it), over up, Silu in place, several work chunks, tails.</summary>
    [Theory]
    [InlineData(40000)] // three chunks of 16384 with a short last one, 1 and 2 threads
    [InlineData(7)]
    public void SwiGlu_handles_aliasing_and_long_inputs(int n)
    {
        float[] gate = NumericsTestData.Random(n, seed: 3, scale: 30);
        float[] up = NumericsTestData.Random(n, seed: 4, scale: 2);
        int saved = Parallelism.ThreadCount;
        try
        {
            foreach (int threads in new[] { 1, 2 })
            {
                Parallelism.ThreadCount = threads;
                float[] overGate = (float[])gate.Clone();
                Activations.SwiGlu(overGate, up, overGate);
                float[] overUp = (float[])up.Clone();
                Activations.SwiGlu(gate, overUp, overUp);
                float[] silu = (float[])gate.Clone();
                Activations.Silu(silu, silu);
                for (int i = 0; i < n; i++)
                {
                    double s = gate[i] / (1 + Math.Exp(-(double)gate[i]));
                    Assert.True(Math.Abs(silu[i] - s) <= 1e-6 * Math.Abs(s) + 1e-30, $"silu {gate[i]}: {silu[i]} vs {s}");
                    double sw = s * up[i];
                    Assert.True(Math.Abs(overGate[i] - sw) <= 2e-6 * Math.Abs(sw) + 1e-30, $"swiglu {i}: {overGate[i]} vs {sw}");
                    Assert.Equal(overGate[i], overUp[i]);
                }
            }
        }
        finally { Parallelism.ThreadCount = saved; }
    }

    [Fact]
    public void SwiGlu_rejects_partially_overlapping_output()
    {
        var buffer = new float[20];
        var e = Assert.Throws<ArgumentException>(() => Activations.SwiGlu(buffer.AsSpan(0, 10), new float[10], buffer.AsSpan(5, 10)));
        Assert.Equal("output", e.ParamName);
    }
}
