using Llada.Training;

namespace Llada.Tests.Training;

/// <summary>
/// An independent float64 implementation of the dense LLaDA math in plain loops, written from the spec (section 4),
/// used as the function that finite differences differentiate and as the forward-pass oracle.
/// </summary>
internal static class Reference
{
    public static double[] RmsNorm(double[] x, double[] w, int n, int d, double eps)
    {
        var y = new double[n * d];
        for (int r = 0; r < n; r++)
        {
            double ms = 0;
            for (int j = 0; j < d; j++) ms += x[r * d + j] * x[r * d + j];
            double s = 1 / Math.Sqrt(ms / d + eps);
            for (int j = 0; j < d; j++) y[r * d + j] = x[r * d + j] * s * w[j];
        }
        return y;
    }

    /// <summary>Y[n, o] = X[n, i] W[o, i]^T.</summary>
    public static double[] Linear(double[] x, double[] w, int n, int inDim, int outDim)
    {
        var y = new double[n * outDim];
        for (int r = 0; r < n; r++)
            for (int o = 0; o < outDim; o++)
            {
                double s = 0;
                for (int i = 0; i < inDim; i++) s += x[r * inDim + i] * w[o * inDim + i];
                y[r * outDim + o] = s;
            }
        return y;
    }

    /// <summary>Rotate-half RoPE; row r has position r % seqLen.</summary>
    public static double[] Rope(double[] x, int n, int seqLen, int heads, int headDim, double theta)
    {
        var y = (double[])x.Clone();
        int half = headDim / 2;
        for (int r = 0; r < n; r++)
            for (int h = 0; h < heads; h++)
                for (int j = 0; j < half; j++)
                {
                    double angle = (r % seqLen) * Math.Pow(theta, -2.0 * j / headDim);
                    int i1 = (r * heads + h) * headDim + j, i2 = i1 + half;
                    y[i1] = x[i1] * Math.Cos(angle) - x[i2] * Math.Sin(angle);
                    y[i2] = x[i2] * Math.Cos(angle) + x[i1] * Math.Sin(angle);
                }
        return y;
    }

    public static double[] Attention(double[] q, double[] k, double[] v, int batch, int seqLen, int heads, int kvHeads, int headDim,
        bool causal, bool[]? keyMask)
    {
        var o = new double[batch * seqLen * heads * headDim];
        var score = new double[seqLen];
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
            {
                int kvh = h / (heads / kvHeads);
                for (int t = 0; t < seqLen; t++)
                {
                    double max = double.NegativeInfinity;
                    for (int s = 0; s < seqLen; s++)
                    {
                        bool visible = (!causal || s <= t) && (keyMask == null || keyMask[b * seqLen + s]);
                        if (!visible) { score[s] = double.NegativeInfinity; continue; }
                        double dot = 0;
                        for (int j = 0; j < headDim; j++)
                            dot += q[((b * seqLen + t) * heads + h) * headDim + j] * k[((b * seqLen + s) * kvHeads + kvh) * headDim + j];
                        score[s] = dot / Math.Sqrt(headDim);
                        max = Math.Max(max, score[s]);
                    }
                    if (double.IsNegativeInfinity(max)) continue; // no visible key: zero output
                    double sum = 0;
                    for (int s = 0; s < seqLen; s++) sum += score[s] = Math.Exp(score[s] - max);
                    for (int s = 0; s < seqLen; s++)
                        for (int j = 0; j < headDim; j++)
                            o[((b * seqLen + t) * heads + h) * headDim + j] += score[s] / sum * v[((b * seqLen + s) * kvHeads + kvh) * headDim + j];
                }
            }
        return o;
    }

    public static double[] SwiGlu(double[] gate, double[] up)
    {
        var y = new double[gate.Length];
        for (int i = 0; i < y.Length; i++) y[i] = gate[i] / (1 + Math.Exp(-gate[i])) * up[i];
        return y;
    }

    /// <summary>sum_j w_j * -log softmax(z_row(j))[target_j] over rows selected by positions.</summary>
    public static double WeightedCrossEntropy(double[] logits, int vocab, int[] positions, int[] targets, float[] weights)
    {
        double loss = 0;
        for (int j = 0; j < positions.Length; j++)
        {
            int r = positions[j];
            double max = double.NegativeInfinity;
            for (int c = 0; c < vocab; c++) max = Math.Max(max, logits[r * vocab + c]);
            double sum = 0;
            for (int c = 0; c < vocab; c++) sum += Math.Exp(logits[r * vocab + c] - max);
            loss += weights[j] * (max + Math.Log(sum) - logits[r * vocab + targets[j]]);
        }
        return loss;
    }

    /// <summary>Logits [batch*seqLen, vocab] of the whole model, parameters read by tensor name from <paramref name="p"/>.</summary>
    public static double[] Logits(ModelShape shape, Func<string, double[]> p, int[] tokens, int batch, int seqLen, bool causal, bool[]? keyMask)
    {
        int n = batch * seqLen, d = shape.DModel, hd = shape.HeadDim, kvd = shape.NKvHeads * hd, ff = shape.MlpHiddenSize, vocab = shape.VocabSize;
        const string P = "model.transformer.";
        double[] wte = p(P + "wte.weight");
        var h = new double[n * d];
        for (int r = 0; r < n; r++)
            for (int j = 0; j < d; j++) h[r * d + j] = wte[tokens[r] * d + j];
        for (int l = 0; l < shape.NLayers; l++)
        {
            string b = $"{P}blocks.{l}.";
            double[] x = RmsNorm(h, p(b + "attn_norm.weight"), n, d, shape.RmsNormEps);
            double[] q = Rope(Linear(x, p(b + "q_proj.weight"), n, d, d), n, seqLen, shape.NHeads, hd, shape.RopeTheta);
            double[] k = Rope(Linear(x, p(b + "k_proj.weight"), n, d, kvd), n, seqLen, shape.NKvHeads, hd, shape.RopeTheta);
            double[] v = Linear(x, p(b + "v_proj.weight"), n, d, kvd);
            double[] a = Linear(Attention(q, k, v, batch, seqLen, shape.NHeads, shape.NKvHeads, hd, causal, keyMask), p(b + "attn_out.weight"), n, d, d);
            for (int i = 0; i < h.Length; i++) h[i] += a[i];
            x = RmsNorm(h, p(b + "ff_norm.weight"), n, d, shape.RmsNormEps);
            double[] m = SwiGlu(Linear(x, p(b + "ff_proj.weight"), n, d, ff), Linear(x, p(b + "up_proj.weight"), n, d, ff));
            double[] f = Linear(m, p(b + "ff_out.weight"), n, ff, d);
            for (int i = 0; i < h.Length; i++) h[i] += f[i];
        }
        double[] final = RmsNorm(h, p(P + "ln_f.weight"), n, d, shape.RmsNormEps);
        return Linear(final, p(shape.WeightTying ? P + "wte.weight" : P + "ff_out.weight"), n, d, vocab);
    }

    public static double[] ToDouble(ReadOnlySpan<float> x)
    {
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = x[i];
        return y;
    }

    public static float[] RandomFloats(Random rng, int count, double std, double mean = 0)
    {
        var x = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = (float)(mean + std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return x;
    }

    /// <summary>
    /// Central difference (f(x+h) - f(x-h)) / 2h of a float64 function at every element of <paramref name="x"/>.
    /// With h = 1e-6 on O(1) inputs the truncation error (~h^2 f''') and the rounding error (~1e-16 / h) are both
    /// below 1e-9, far under the float32 error of the analytic gradients being checked.
    /// </summary>
    public static double[] NumericGradient(double[] x, Func<double[], double> f, IReadOnlyList<int>? indices = null, double h = 1e-6)
    {
        var grad = new double[x.Length];
        foreach (int i in indices ?? Enumerable.Range(0, x.Length).ToArray())
        {
            double saved = x[i];
            x[i] = saved + h; double plus = f(x);
            x[i] = saved - h; double minus = f(x);
            x[i] = saved;
            grad[i] = (plus - minus) / (2 * h);
        }
        return grad;
    }

    public static double Dot(double[] a, float[] g)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += a[i] * g[i];
        return s;
    }

    /// <summary>
    /// Asserts |analytic - numeric| &lt;= tol * max_i |numeric_i| for every checked element, and that the gradient
    /// is not trivially zero. Scaling by the largest component makes the check insensitive to tiny components
    /// whose float32 values are dominated by cancellation.
    /// </summary>
    public static void AssertGradientsClose(string what, ReadOnlySpan<float> analytic, double[] numeric, double tol, IReadOnlyList<int>? indices = null)
    {
        IReadOnlyList<int> idx = indices ?? Enumerable.Range(0, numeric.Length).ToArray();
        double scale = 0;
        foreach (int i in idx) scale = Math.Max(scale, Math.Abs(numeric[i]));
        Assert.True(scale > 1e-6, $"{what}: numeric gradient is ~0 (max {scale}); the check would be vacuous");
        foreach (int i in idx)
        {
            double err = Math.Abs(analytic[i] - numeric[i]);
            Assert.True(err <= tol * scale, $"{what}[{i}]: analytic {analytic[i]:G9} vs numeric {numeric[i]:G9} (|err| {err:E2} > {tol:E1} x max {scale:G4})");
        }
    }
}
