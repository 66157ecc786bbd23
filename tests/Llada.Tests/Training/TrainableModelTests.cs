using Llada.Training;

namespace Llada.Tests.Training;

public class TrainableModelTests
{
    internal static ModelShape TinyShape(bool tied, int kvHeads = 1) => new()
    {
        DModel = 8, NLayers = 2, NHeads = 2, NKvHeads = kvHeads, MlpHiddenSize = 12, VocabSize = 13,
        MaxSequenceLength = 16, MaskTokenId = 12, EosTokenId = 11, RopeTheta = 100, WeightTying = tied,
    };

    /// <summary>Replaces the init (std 0.02, nearly linear) by O(1) weights so every nonlinearity is exercised.</summary>
    internal static void Randomize(TrainableModel model, int seed)
    {
        var rng = new Random(seed);
        foreach (var t in model.Tensors)
        {
            float[] v = t.Kind == ParameterKind.Norm ? Reference.RandomFloats(rng, t.Length, 0.3, 1) : Reference.RandomFloats(rng, t.Length, 0.5);
            v.CopyTo(model.Parameters.AsSpan(t.Offset));
        }
    }

    internal static Func<string, double[]> ParametersOf(TrainableModel model, double[] flat) =>
        name => { var t = model.Tensor(name); return flat.AsSpan(t.Offset, t.Length).ToArray(); };

    [Fact]
    public void Tensors_use_the_Hugging_Face_names_and_layouts()
    {
        var shape = TinyShape(tied: false);
        var model = new TrainableModel(shape, 1, 4, 1);
        Assert.Equal([13, 8], model.Tensor("model.transformer.wte.weight").Shape);
        Assert.Equal([8, 8], model.Tensor("model.transformer.blocks.1.q_proj.weight").Shape);
        Assert.Equal([4, 8], model.Tensor("model.transformer.blocks.0.k_proj.weight").Shape);
        Assert.Equal([4, 8], model.Tensor("model.transformer.blocks.0.v_proj.weight").Shape);
        Assert.Equal([12, 8], model.Tensor("model.transformer.blocks.0.ff_proj.weight").Shape);
        Assert.Equal([12, 8], model.Tensor("model.transformer.blocks.0.up_proj.weight").Shape);
        Assert.Equal([8, 12], model.Tensor("model.transformer.blocks.0.ff_out.weight").Shape);
        Assert.Equal([8], model.Tensor("model.transformer.blocks.0.attn_norm.weight").Shape);
        Assert.Equal([13, 8], model.Tensor("model.transformer.ff_out.weight").Shape);
        Assert.Equal(model.Parameters.Length, model.Tensors.Sum(t => t.Length));
        Assert.Equal(2 + 2 * 9 + 1, model.Tensors.Count);
        var tied = new TrainableModel(TinyShape(tied: true), 1, 4, 1);
        Assert.DoesNotContain(tied.Tensors, t => t.Name == "model.transformer.ff_out.weight");
        Assert.Equal(shape.ToConfig().EmbeddingSize, ModelShape.FromConfig(shape.ToConfig()).VocabSize);
    }

    [Fact]
    public void Initialization_is_deterministic_with_scaled_residual_projections_and_unit_norms()
    {
        var shape = TinyShape(tied: false) with { DModel = 64, NHeads = 4, MlpHiddenSize = 128, VocabSize = 200, MaskTokenId = 199, EosTokenId = 198 };
        var a = new TrainableModel(shape, 1, 4, 42);
        var b = new TrainableModel(shape, 1, 4, 42);
        var c = new TrainableModel(shape, 1, 4, 43);
        Assert.Equal(a.Parameters, b.Parameters);
        Assert.NotEqual(a.Parameters, c.Parameters);
        Assert.All(a.Parameter("model.transformer.ln_f.weight").ToArray(), v => Assert.Equal(1f, v));
        static double Std(Span<float> x) => Math.Sqrt(x.ToArray().Average(v => (double)v * v));
        Assert.Equal(0.02, Std(a.Parameter("model.transformer.wte.weight")), 0.001);
        Assert.Equal(0.02, Std(a.Parameter("model.transformer.blocks.0.ff_proj.weight")), 0.001);
        Assert.Equal(0.02 / 2, Std(a.Parameter("model.transformer.blocks.1.ff_out.weight")), 0.001);
    }

    [Theory]
    [InlineData(false, false, 1)]
    [InlineData(true, false, 2)]
    [InlineData(false, true, 1)]
    public void Forward_logits_equal_an_independent_float64_forward(bool tied, bool causal, int kvHeads)
    {
        var shape = TinyShape(tied, kvHeads);
        var model = new TrainableModel(shape, 2, 6, 7) { Causal = causal };
        Randomize(model, 11);
        int batch = 2, seqLen = 6;
        int[] tokens = [1, 12, 3, 4, 12, 0, 11, 11, 5, 12, 12, 7];
        bool[] keyMask = [true, true, true, true, true, true, false, false, true, true, true, true];
        int[] positions = [0, 2, 5];
        var logits = new float[batch * positions.Length * shape.VocabSize];
        model.Forward(tokens, batch, seqLen, keyMask, positions, logits, TestContext.Current.CancellationToken);

        double[] reference = Reference.Logits(shape, ParametersOf(model, Reference.ToDouble(model.Parameters)), tokens, batch, seqLen, causal, keyMask);
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < positions.Length; j++)
                for (int c = 0; c < shape.VocabSize; c++)
                {
                    double expected = reference[((b * seqLen) + positions[j]) * shape.VocabSize + c];
                    float actual = logits[(b * positions.Length + j) * shape.VocabSize + c];
                    Assert.True(Math.Abs(expected - actual) <= 1e-5 * Math.Max(1, Math.Abs(expected)), $"logit [{b},{positions[j]},{c}]: {actual} vs reference {expected}");
                }
    }

    /// <summary>
    /// Full-model gradient (every parameter of a tiny model) against central differences of the float64 reference
    /// loss. Tolerance 1e-4 of the largest component: the float32 forward (two layers, ~10 chained ops) carries
    /// ~1e-6 relative error into the softmax and the backward another ~1e-6, so a correct gradient sits near 1e-6;
    /// a wrong path is off by O(1).
    /// </summary>
    [Theory]
    [InlineData(false, false, 1, false)]
    [InlineData(true, false, 2, true)]
    [InlineData(false, true, 1, true)]
    [InlineData(true, true, 2, false)]
    public void Whole_model_gradient_matches_finite_differences(bool tied, bool causal, int kvHeads, bool padKeys)
    {
        var shape = TinyShape(tied, kvHeads);
        var model = new TrainableModel(shape, 2, 6, 7);
        Randomize(model, 21);
        int batch = 2, seqLen = 6;
        int[] tokens = [1, 12, 3, 4, 12, 0, 11, 11, 5, 12, 12, 7];
        bool[]? keyMask = padKeys ? [true, true, true, true, true, true, false, false, true, true, true, true] : null;
        int[] positions = [1, 4, 2, 9, 10, 11, 4];
        int[] targets = [2, 6, 3, 5, 9, 0, 6];
        float[] weights = [0.7f, 1.3f, 0.2f, 2f, 0.9f, 0.5f, 0.25f];
        model.ZeroGradients();
        double loss = model.Forward(tokens, batch, seqLen, causal, keyMask, positions, targets, weights);
        model.Backward();

        double[] p = Reference.ToDouble(model.Parameters);
        double RefLoss(double[] x) => Reference.WeightedCrossEntropy(
            Reference.Logits(shape, ParametersOf(model, x), tokens, batch, seqLen, causal, keyMask), shape.VocabSize, positions, targets, weights);
        Assert.Equal(RefLoss(p), loss, 1e-5);
        double[] numeric = Reference.NumericGradient(p, RefLoss);
        foreach (var t in model.Tensors)
            Reference.AssertGradientsClose(t.Name, model.Gradients.AsSpan(t.Offset, t.Length), numeric.AsSpan(t.Offset, t.Length).ToArray(), 1e-4);
    }

    [Fact]
    public void Gradients_accumulate_over_backward_calls()
    {
        var model = new TrainableModel(TinyShape(false), 1, 4, 3);
        int[] tokens = [1, 2, 12, 4];
        model.ZeroGradients();
        model.Forward(tokens, 1, 4, false, default, [2], [3], [1f]);
        model.Backward();
        float[] once = (float[])model.Gradients.Clone();
        model.Forward(tokens, 1, 4, false, default, [2], [3], [1f]);
        model.Backward();
        for (int i = 0; i < once.Length; i++) Assert.Equal(2 * once[i], model.Gradients[i], 1e-6f * Math.Max(1, Math.Abs(once[i])));
    }

    [Fact]
    public void Rejects_batches_larger_than_its_buffers_with_a_specific_error()
    {
        var model = new TrainableModel(TinyShape(false), 1, 4, 3);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(new int[10], 2, 5, default, [0], new float[26], TestContext.Current.CancellationToken));
        Assert.Contains("batch 2", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward([1, 2, 99, 3], 1, 4, false, default, [0], [1], [1f]));
    }
}
