using Llada.Model;
using Llada.Tests.Golden;
using Llada.Training;
using Llada.Training.Runs;

namespace Llada.Tests.Training;

public class TrainableMoeModelTests
{
    private static ModelShape Shape(bool firstDense, bool normTopK, bool tied) => new()
    {
        DModel = 8, NLayers = 2, NHeads = 2, NKvHeads = 1, MlpHiddenSize = 12, VocabSize = 13, MaxSequenceLength = 16,
        MaskTokenId = 12, EosTokenId = 11, RopeTheta = 100, WeightTying = tied,
        Moe = new MoeConfig
        {
            NumExperts = 4, ExpertsPerToken = 2, ExpertIntermediateSize = 6, NormTopKProb = normTopK,
            RoutedScalingFactor = normTopK ? 1.5 : 1, RouterAuxLossCoef = 0.05, RouterZLossCoef = 0.01,
            MoeLayers = [!firstDense, true],
        },
    };

    private static Func<string, double[]> ParametersOf(TrainableModel model, double[] flat) =>
        name => { var t = model.Tensor(name); return flat.AsSpan(t.Offset, t.Length).ToArray(); };

    [Theory]
    [InlineData("tiny-moe-f32")]
    [InlineData("tiny-moe-mixed-bf16")]
    public void Training_forward_on_the_golden_weights_reproduces_the_reference_logits(string fixture)
    {
        var config = LladaConfigFile.Load(Path.Combine(GoldenFixtures.Dir(fixture), "config.json"));
        if (config.Moe!.SharedExpertIntermediateSize > 0)
        {
            // Shared experts are inference-only: the trainable shape refuses them by name.
            Assert.Contains("shared", Assert.Throws<ArgumentException>(() => new TrainableModel(ModelShape.FromConfig(config), 1, 8, 1)).Message);
            return;
        }
        var model = new TrainableModel(ModelShape.FromConfig(config), 1, 8, 1);
        ModelWeights.Load(model, GoldenFixtures.Dir(fixture));
        var c = GoldenFixtures.Load(fixture, "expected_logits.json").GetProperty("cases")[0];
        int[] tokens = GoldenFixtures.Ints(c.GetProperty("input_ids")[0]);
        int v = model.VocabSize;
        var logits = new float[tokens.Length * v];
        model.Forward(tokens, 1, tokens.Length, default, Enumerable.Range(0, tokens.Length).ToArray(), logits, TestContext.Current.CancellationToken);
        double maxAbs = 0, maxErr = 0;
        for (int i = 0; i < tokens.Length; i++)
            for (int j = 0; j < v; j++)
            {
                double want = c.GetProperty("logits")[0][i][j].GetDouble();
                maxAbs = Math.Max(maxAbs, Math.Abs(want));
                maxErr = Math.Max(maxErr, Math.Abs(want - logits[i * v + j]));
            }
        Assert.True(maxErr <= 1e-4 * maxAbs, $"max error {maxErr:g3} vs 1e-4 x {maxAbs:g3}");
    }

    /// <summary>
    /// Every parameter's gradient, router losses included, against central differences of a float64 reference of the
    /// whole LLaDA-MoE forward. Same tolerance argument as the dense test; the inputs are checked to route every token
    /// with a margin far above the finite-difference step.
    /// </summary>
    [Theory]
    [InlineData(false, false, false)]
    [InlineData(true, true, true)]
    public void Whole_model_gradient_matches_finite_differences(bool firstDense, bool normTopK, bool tied)
    {
        var shape = Shape(firstDense, normTopK, tied);
        var model = new TrainableModel(shape, 2, 6, 7) { RouterLossScale = 0.8 };
        var rng = new Random(31);
        foreach (var t in model.Tensors)
        {
            float[] v = t.Kind == ParameterKind.Norm ? Reference.RandomFloats(rng, t.Length, 0.3, 1) : Reference.RandomFloats(rng, t.Length, 0.5);
            v.CopyTo(model.Parameters.AsSpan(t.Offset));
        }
        int batch = 2, seqLen = 6;
        int[] tokens = [1, 12, 3, 4, 12, 0, 11, 11, 5, 12, 12, 7];
        bool[] keyMask = [true, true, true, true, true, true, false, false, true, true, true, true];
        int[] positions = [1, 4, 2, 9, 10, 11, 4];
        int[] targets = [2, 6, 3, 5, 9, 0, 6];
        float[] weights = [0.7f, 1.3f, 0.2f, 2f, 0.9f, 0.5f, 0.25f];
        model.ZeroGradients();
        double loss = model.Forward(tokens, batch, seqLen, false, keyMask, positions, targets, weights);
        Assert.True(model.LastRouterLoss > 0);
        model.Backward();

        double[] p = Reference.ToDouble(model.Parameters);
        double minGap = double.MaxValue;
        double RefLoss(double[] x)
        {
            double[] logits = ReferenceMoe.Logits(shape, ParametersOf(model, x), tokens, batch, seqLen, keyMask, 0.8, out double router, out double gap);
            minGap = Math.Min(minGap, gap);
            return Reference.WeightedCrossEntropy(logits, shape.VocabSize, positions, targets, weights) + router;
        }
        Assert.Equal(RefLoss(p), loss, 1e-5);
        Assert.True(minGap > 1e-3, $"a token routes within {minGap:g3} of a tie; pick other weights");
        double[] numeric = Reference.NumericGradient(p, RefLoss);
        foreach (var t in model.Tensors)
            Reference.AssertGradientsClose(t.Name, model.Gradients.AsSpan(t.Offset, t.Length), numeric.AsSpan(t.Offset, t.Length).ToArray(), 1e-4);
    }

    [Fact]
    public void A_trained_MoE_model_saves_in_the_LLaDA_MoE_layout_and_the_inference_loader_reads_it_back()
    {
        using var dir = new Llada.Tests.Model.TempDir();
        var shape = Shape(firstDense: true, normTopK: false, tied: false);
        var model = new TrainableModel(shape, 1, 6, 5);
        string path = Path.Combine(dir.Path, "moe");
        CheckpointWriter.Write(path, shape.ToConfig(), ModelWeights.ToTensors(model), cancellationToken: TestContext.Current.CancellationToken);
        using var predictor = MaskPredictor.Load(path);
        Assert.Equal(LladaConfigFile.MoeModelType, predictor.Config.ModelType);
        Assert.True(predictor.Checkpoint.Contains("model.layers.1.mlp.experts.3.down_proj.weight"));
        int[] tokens = [1, 2, 12, 12, 5, 11];
        int[] all = Enumerable.Range(0, tokens.Length).ToArray();
        var fromTraining = new float[tokens.Length * shape.VocabSize];
        var fromFile = new float[fromTraining.Length];
        model.Forward(tokens, 1, tokens.Length, default, all, fromTraining, TestContext.Current.CancellationToken);
        predictor.Forward(tokens, 1, tokens.Length, default, all, fromFile, TestContext.Current.CancellationToken);
        for (int i = 0; i < fromFile.Length; i++) Assert.Equal(fromTraining[i], fromFile[i], 1e-5f);
        var reloaded = new TrainableModel(ModelShape.FromConfig(predictor.Config), 1, 6, 9);
        ModelWeights.Load(reloaded, path);
        Assert.Equal(model.Parameters, reloaded.Parameters);
    }
}

/// <summary>Float64 forward of a LLaDA-MoE model (QK-norm, dense or MoE layers, router losses) by tensor name.</summary>
internal static class ReferenceMoe
{
    public static double[] Logits(ModelShape shape, Func<string, double[]> p, int[] tokens, int batch, int seqLen, bool[]? keyMask,
        double routerLossScale, out double routerLoss, out double minRoutingGap)
    {
        var moe = shape.Moe!;
        int n = batch * seqLen, d = shape.DModel, hd = shape.HeadDim, kvd = shape.NKvHeads * hd, vocab = shape.VocabSize;
        double[] wte = p(MoeTensorNames.Embedding);
        var h = new double[n * d];
        for (int r = 0; r < n; r++)
            for (int j = 0; j < d; j++) h[r * d + j] = wte[tokens[r] * d + j];
        routerLoss = 0;
        minRoutingGap = double.MaxValue;
        for (int l = 0; l < shape.NLayers; l++)
        {
            string L(string part) => MoeTensorNames.Layer(l, part);
            double[] x = Reference.RmsNorm(h, p(L("input_layernorm")), n, d, shape.RmsNormEps);
            double[] q = Reference.Linear(x, p(L("self_attn.q_proj")), n, d, d);
            double[] k = Reference.Linear(x, p(L("self_attn.k_proj")), n, d, kvd);
            if (moe.QkNorm)
            {
                q = Reference.RmsNorm(q, p(L("self_attn.q_norm")), n * shape.NHeads, hd, shape.RmsNormEps);
                k = Reference.RmsNorm(k, p(L("self_attn.k_norm")), n * shape.NKvHeads, hd, shape.RmsNormEps);
            }
            q = Reference.Rope(q, n, seqLen, shape.NHeads, hd, shape.RopeTheta);
            k = Reference.Rope(k, n, seqLen, shape.NKvHeads, hd, shape.RopeTheta);
            double[] v = Reference.Linear(x, p(L("self_attn.v_proj")), n, d, kvd);
            double[] a = Reference.Linear(Reference.Attention(q, k, v, batch, seqLen, shape.NHeads, shape.NKvHeads, hd, false, keyMask),
                p(L("self_attn.o_proj")), n, d, d);
            for (int i = 0; i < h.Length; i++) h[i] += a[i];
            x = Reference.RmsNorm(h, p(L("post_attention_layernorm")), n, d, shape.RmsNormEps);
            double[] f;
            if (!moe.MoeLayers[l])
            {
                int ff = shape.MlpHiddenSize;
                f = Reference.Linear(Reference.SwiGlu(Reference.Linear(x, p(L("mlp.gate_proj")), n, d, ff), Reference.Linear(x, p(L("mlp.up_proj")), n, d, ff)),
                    p(L("mlp.down_proj")), n, ff, d);
            }
            else
            {
                f = SparseMlp(moe, p, l, x, n, d, out double aux, out double z, out double gap);
                routerLoss += routerLossScale * (moe.RouterAuxLossCoef * aux + moe.RouterZLossCoef * z);
                minRoutingGap = Math.Min(minRoutingGap, gap);
            }
            for (int i = 0; i < h.Length; i++) h[i] += f[i];
        }
        double[] final = Reference.RmsNorm(h, p(MoeTensorNames.FinalNorm), n, d, shape.RmsNormEps);
        return Reference.Linear(final, p(shape.WeightTying ? MoeTensorNames.Embedding : MoeTensorNames.LmHead), n, d, vocab);
    }

    private static double[] SparseMlp(MoeConfig c, Func<string, double[]> p, int l, double[] x, int n, int d,
        out double aux, out double z, out double gap)
    {
        int nE = c.NumExperts, ff = c.ExpertIntermediateSize;
        double[] logits = Reference.Linear(x, p(MoeTensorNames.Layer(l, "mlp.gate")), n, d, nE);
        var output = new double[n * d];
        var counts = new double[nE];
        var meanP = new double[nE];
        z = 0;
        gap = double.MaxValue;
        for (int t = 0; t < n; t++)
        {
            double[] row = logits.AsSpan(t * nE, nE).ToArray();
            double max = row.Max(), sum = row.Sum(v => Math.Exp(v - max)), lse = max + Math.Log(sum);
            double[] prob = row.Select(v => Math.Exp(v - lse)).ToArray();
            z += lse * lse / n;
            for (int e = 0; e < nE; e++) meanP[e] += prob[e] / n;
            int[] order = Enumerable.Range(0, nE).OrderByDescending(e => prob[e]).ThenBy(e => e).ToArray();
            gap = Math.Min(gap, prob[order[c.ExpertsPerToken - 1]] - prob[order[c.ExpertsPerToken]]);
            int[] top = order[..c.ExpertsPerToken];
            double norm = c.NormTopKProb ? top.Sum(e => prob[e]) : 1;
            double[] xt = x.AsSpan(t * d, d).ToArray();
            foreach (int e in top)
            {
                counts[e]++;
                string E(string proj) => MoeTensorNames.Expert(l, e, proj);
                double[] y = Reference.Linear(Reference.SwiGlu(Reference.Linear(xt, p(E("gate_proj")), 1, d, ff), Reference.Linear(xt, p(E("up_proj")), 1, d, ff)),
                    p(E("down_proj")), 1, ff, d);
                double weight = prob[e] / norm * c.RoutedScalingFactor;
                for (int j = 0; j < d; j++) output[t * d + j] += weight * y[j];
            }
        }
        aux = nE * Enumerable.Range(0, nE).Sum(e => counts[e] / n * meanP[e]);
        return output;
    }
}
