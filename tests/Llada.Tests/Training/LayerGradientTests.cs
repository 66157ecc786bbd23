using Llada.Training;

namespace Llada.Tests.Training;

/// <summary>
/// Every layer's float32 backward against central differences of an independent float64 reference of its
/// forward (<see cref="Reference"/>). The scalar checked is L = sum(g * layer(x)) for a fixed random g.
/// Tolerance: 1e-5 of the largest gradient component. The float32 backward's rounding error is a few ulps
/// (6e-8 each) times the length of its longest sum (at most ~60 terms here), i.e. a few 1e-6 of the gradient
/// scale in the worst case; the float64 differences are exact to ~1e-9. A wrong term (a missing factor, a
/// dropped path) shows up as O(1) relative error, five orders above this bound.
/// </summary>
public class LayerGradientTests
{
    private const double Tol = 1e-5;

    [Fact]
    public void RmsNorm_backward_matches_finite_differences()
    {
        var rng = new Random(1);
        int n = 3, d = 8;
        const float eps = 1e-5f;
        float[] x = Reference.RandomFloats(rng, n * d, 1), w = Reference.RandomFloats(rng, d, 0.3, 1), g = Reference.RandomFloats(rng, n * d, 1);
        var y = new float[n * d]; var rstd = new float[n];
        Layers.RmsNormForward(y, rstd, x, w, n, d, eps);
        var dx = new float[n * d]; var dw = new float[d];
        Layers.RmsNormBackward(dx, dw, g, x, w, rstd, n, d, new float[d]);

        double[] xd = Reference.ToDouble(x), wd = Reference.ToDouble(w);
        Reference.AssertGradientsClose("dx", dx, Reference.NumericGradient(xd, v => Reference.Dot(Reference.RmsNorm(v, wd, n, d, eps), g)), Tol);
        Reference.AssertGradientsClose("dw", dw, Reference.NumericGradient(wd, v => Reference.Dot(Reference.RmsNorm(xd, v, n, d, eps), g)), Tol);
        Assert.Equal(Reference.RmsNorm(xd, wd, n, d, eps), Reference.ToDouble(y), (a, b) => Math.Abs(a - b) < 1e-6);
    }

    [Fact]
    public void RmsNorm_backward_accumulates_into_its_outputs()
    {
        var rng = new Random(2);
        int n = 2, d = 4;
        float[] x = Reference.RandomFloats(rng, n * d, 1), w = Reference.RandomFloats(rng, d, 0.3, 1), g = Reference.RandomFloats(rng, n * d, 1);
        var rstd = new float[n];
        Layers.RmsNormForward(new float[n * d], rstd, x, w, n, d, 1e-5f);
        float[] dx1 = new float[n * d], dw1 = new float[d];
        Layers.RmsNormBackward(dx1, dw1, g, x, w, rstd, n, d, new float[d]);
        float[] dx2 = Enumerable.Repeat(1f, n * d).ToArray(), dw2 = Enumerable.Repeat(2f, d).ToArray();
        Layers.RmsNormBackward(dx2, dw2, g, x, w, rstd, n, d, new float[d]);
        for (int i = 0; i < n * d; i++) Assert.Equal(dx1[i] + 1f, dx2[i], 6);
        for (int i = 0; i < d; i++) Assert.Equal(dw1[i] + 2f, dw2[i], 6);
    }

    [Fact]
    public void Rope_backward_matches_finite_differences()
    {
        var rng = new Random(3);
        int batch = 2, seqLen = 5, heads = 2, hd = 6, n = batch * seqLen;
        const double theta = 100;
        float[] x = Reference.RandomFloats(rng, n * heads * hd, 1), g = Reference.RandomFloats(rng, n * heads * hd, 1);
        float[] cos = new float[seqLen * hd / 2], sin = new float[seqLen * hd / 2];
        Layers.RopeTables(cos, sin, seqLen, hd, theta);
        float[] y = (float[])x.Clone();
        Layers.RopeForward(y, n, seqLen, heads, hd, cos, sin);
        float[] dx = (float[])g.Clone();
        Layers.RopeBackward(dx, n, seqLen, heads, hd, cos, sin);

        double[] xd = Reference.ToDouble(x);
        double[] yRef = Reference.Rope(xd, n, seqLen, heads, hd, theta);
        for (int i = 0; i < y.Length; i++) Assert.Equal(yRef[i], y[i], 1e-6);
        Reference.AssertGradientsClose("dx", dx, Reference.NumericGradient(xd, v => Reference.Dot(Reference.Rope(v, n, seqLen, heads, hd, theta), g)), Tol);
    }

    [Theory]
    [InlineData(false, 4, false)]  // bidirectional mask predictor
    [InlineData(true, 4, false)]   // causal (autoregressive baseline)
    [InlineData(false, 2, false)]  // grouped-query: 4 query heads share 2 kv heads
    [InlineData(false, 1, true)]   // multi-query with key padding
    [InlineData(true, 2, true)]    // causal + GQA + key padding (includes queries that see no key)
    public void Attention_backward_matches_finite_differences(bool causal, int kvHeads, bool padKeys)
    {
        var rng = new Random(4 + kvHeads);
        int batch = 2, seqLen = 5, heads = 4, hd = 4, n = batch * seqLen;
        float[] q = Reference.RandomFloats(rng, n * heads * hd, 1), k = Reference.RandomFloats(rng, n * kvHeads * hd, 1),
            v = Reference.RandomFloats(rng, n * kvHeads * hd, 1), g = Reference.RandomFloats(rng, n * heads * hd, 1);
        // Left padding: row 0 has two pad keys, row 1 none.
        bool[] keyMask = [false, false, true, true, true, true, true, true, true, true];
        var outp = new float[n * heads * hd];
        var att = new float[batch * heads * seqLen * seqLen];
        Layers.AttentionForward(outp, att, q, k, v, keyMask, padKeys, batch, seqLen, heads, kvHeads, hd, causal);
        float[] dq = new float[q.Length], dk = new float[k.Length], dv = new float[v.Length];
        Layers.AttentionBackward(dq, dk, dv, g, att, q, k, v, new float[batch * kvHeads * seqLen * seqLen], batch, seqLen, heads, kvHeads, hd);

        bool[]? mask = padKeys ? keyMask : null;
        double[] qd = Reference.ToDouble(q), kd = Reference.ToDouble(k), vd = Reference.ToDouble(v);
        double[] yRef = Reference.Attention(qd, kd, vd, batch, seqLen, heads, kvHeads, hd, causal, mask);
        for (int i = 0; i < outp.Length; i++) Assert.Equal(yRef[i], outp[i], 1e-6);
        Reference.AssertGradientsClose("dq", dq, Reference.NumericGradient(qd, x => Reference.Dot(Reference.Attention(x, kd, vd, batch, seqLen, heads, kvHeads, hd, causal, mask), g)), Tol);
        Reference.AssertGradientsClose("dk", dk, Reference.NumericGradient(kd, x => Reference.Dot(Reference.Attention(qd, x, vd, batch, seqLen, heads, kvHeads, hd, causal, mask), g)), Tol);
        Reference.AssertGradientsClose("dv", dv, Reference.NumericGradient(vd, x => Reference.Dot(Reference.Attention(qd, kd, x, batch, seqLen, heads, kvHeads, hd, causal, mask), g)), Tol);
        if (padKeys)
            for (int s = 0; s < 2; s++) // pad keys get no gradient
                for (int j = 0; j < kvHeads * hd; j++) { Assert.Equal(0f, dk[s * kvHeads * hd + j]); Assert.Equal(0f, dv[s * kvHeads * hd + j]); }
    }

    [Fact]
    public void SwiGlu_backward_matches_finite_differences()
    {
        var rng = new Random(5);
        int m = 40;
        float[] gate = Reference.RandomFloats(rng, m, 2), up = Reference.RandomFloats(rng, m, 2), g = Reference.RandomFloats(rng, m, 1);
        var act = new float[m];
        Layers.SwiGluForward(act, gate, up);
        float[] dgate = new float[m], dup = new float[m];
        Layers.SwiGluBackward(dgate, dup, g, gate, up);

        double[] gd = Reference.ToDouble(gate), ud = Reference.ToDouble(up);
        double[] yRef = Reference.SwiGlu(gd, ud);
        for (int i = 0; i < m; i++) Assert.Equal(yRef[i], act[i], 1e-5);
        Reference.AssertGradientsClose("dgate", dgate, Reference.NumericGradient(gd, x => Reference.Dot(Reference.SwiGlu(x, ud), g)), Tol);
        Reference.AssertGradientsClose("dup", dup, Reference.NumericGradient(ud, x => Reference.Dot(Reference.SwiGlu(gd, x), g)), Tol);
    }

    [Fact]
    public void Linear_backward_matches_finite_differences()
    {
        var rng = new Random(6);
        int n = 4, inDim = 6, outDim = 5;
        float[] x = Reference.RandomFloats(rng, n * inDim, 1), w = Reference.RandomFloats(rng, outDim * inDim, 1), g = Reference.RandomFloats(rng, n * outDim, 1);
        var y = new float[n * outDim];
        Layers.MatmulForward(y, x, w, n, inDim, outDim);
        float[] dx = new float[n * inDim], dw = new float[outDim * inDim];
        Layers.MatmulBackward(dx, dw, g, x, w, n, inDim, outDim, false);

        double[] xd = Reference.ToDouble(x), wd = Reference.ToDouble(w);
        Reference.AssertGradientsClose("dx", dx, Reference.NumericGradient(xd, v => Reference.Dot(Reference.Linear(v, wd, n, inDim, outDim), g)), Tol);
        Reference.AssertGradientsClose("dw", dw, Reference.NumericGradient(wd, v => Reference.Dot(Reference.Linear(xd, v, n, inDim, outDim), g)), Tol);
    }

    [Fact]
    public void Embedding_backward_sums_the_gradient_of_repeated_tokens()
    {
        var rng = new Random(7);
        int vocab = 6, d = 3;
        int[] tokens = [4, 1, 4, 0, 4];
        float[] wte = Reference.RandomFloats(rng, vocab * d, 1), g = Reference.RandomFloats(rng, tokens.Length * d, 1);
        var outp = new float[tokens.Length * d];
        Layers.EmbeddingForward(outp, tokens, wte, d);
        var dwte = new float[vocab * d];
        Layers.EmbeddingBackward(dwte, g, tokens, d);

        double[] wd = Reference.ToDouble(wte);
        double Loss(double[] w)
        {
            double s = 0;
            for (int r = 0; r < tokens.Length; r++)
                for (int j = 0; j < d; j++) s += w[tokens[r] * d + j] * g[r * d + j];
            return s;
        }
        Reference.AssertGradientsClose("dwte", dwte, Reference.NumericGradient(wd, Loss), Tol);
        Assert.Equal(wte.AsSpan(4 * d, d).ToArray(), outp.AsSpan(0, d).ToArray());
        Assert.All(dwte.AsSpan(2 * d, d).ToArray(), v => Assert.Equal(0f, v)); // token 2 unused
    }

    [Fact]
    public void LmHead_and_weighted_cross_entropy_backward_match_finite_differences()
    {
        var rng = new Random(8);
        int m = 5, d = 6, vocab = 11;
        float[] x = Reference.RandomFloats(rng, m * d, 1), w = Reference.RandomFloats(rng, vocab * d, 1);
        int[] targets = [3, 0, 10, 3, 7];
        float[] weights = [0.5f, 2f, 1.25f, 0.1f, 3f];
        int[] rows = [0, 1, 2, 3, 4];
        var logits = new float[m * vocab];
        Layers.MatmulForward(logits, x, w, m, d, vocab);
        float[] lse = new float[m], rowLoss = new float[m];
        double loss = Layers.CrossEntropyForward(rowLoss, lse, logits, targets, weights, m, vocab);
        Layers.CrossEntropyBackward(logits, targets, weights, m, vocab);
        float[] dx = new float[m * d], dw = new float[vocab * d];
        Layers.MatmulBackward(dx, dw, logits, x, w, m, d, vocab, false);

        double[] xd = Reference.ToDouble(x), wd = Reference.ToDouble(w);
        double RefLoss(double[] xv, double[] wv) => Reference.WeightedCrossEntropy(Reference.Linear(xv, wv, m, d, vocab), vocab, rows, targets, weights);
        Assert.Equal(RefLoss(xd, wd), loss, 1e-5);
        Reference.AssertGradientsClose("dx", dx, Reference.NumericGradient(xd, v => RefLoss(v, wd)), Tol);
        Reference.AssertGradientsClose("dw", dw, Reference.NumericGradient(wd, v => RefLoss(xd, v)), Tol);
    }
}
