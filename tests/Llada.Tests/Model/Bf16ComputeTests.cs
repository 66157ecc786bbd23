using Llada.Model;
using Llada.Numerics;
using Llada.Tests.Golden;
using Llada.Tests.Numerics;

namespace Llada.Tests.Model;

/// <summary><see cref="MaskPredictor.Bf16Arithmetic"/>: the per-model opt-in to bf16 activations for bf16 weights.</summary>
[Collection(nameof(NumericsGlobalState))]
public class Bf16ComputeTests
{
    private static readonly int[] Tokens = [1, 5, 9, 196, 196, 7, 3, 190, 42, 196, 11, 0];

    private static float[] Logits(MaskPredictor model, int[] tokens)
    {
        var logits = new float[tokens.Length * model.VocabSize];
        model.Forward(tokens, 1, tokens.Length, default, Enumerable.Range(0, tokens.Length).ToArray(), logits, TestContext.Current.CancellationToken);
        return logits;
    }

    /// <summary>
    /// The dense forward pass composed again from the numerics primitives, every matrix product under
    /// <paramref name="arithmetic"/>: equal bit for bit to the model only if the model hands its setting to every product.
    /// </summary>
    private static float[] ComposedForward(LladaCheckpoint checkpoint, int[] tokens, Bf16Arithmetic arithmetic)
    {
        var c = checkpoint.Config;
        int t = tokens.Length, d = c.DModel, kvd = c.NKvHeads * c.HeadDim, f = c.MlpHiddenSize;
        float eps = (float)c.RmsNormEps;
        static float[] Norm(WeightMatrix m)
        {
            var values = new float[m.Cols];
            WeightRows.ToSingle(m, 0, values);
            return values;
        }
        var rope = new RopeTable(c.HeadDim, c.MaxSequenceLength, c.RopeTheta);
        int[] positions = Enumerable.Range(0, t).ToArray();
        float[] h = new float[t * d], x = new float[t * d], q = new float[t * d], att = new float[t * d];
        float[] k = new float[t * kvd], v = new float[t * kvd], gate = new float[t * f], up = new float[t * f];
        for (int i = 0; i < t; i++) WeightRows.ToSingle(checkpoint.Embedding, tokens[i], h.AsSpan(i * d, d));
        for (int layer = 0; layer < c.NLayers; layer++)
        {
            var l = checkpoint.Layer(layer);
            RmsNorm.Apply(h, t, d, Norm(l.AttnNorm), eps, x);
            Gemm.MultiplyTransposed(x, t, l.QProj, q, bf16Arithmetic: arithmetic);
            Gemm.MultiplyTransposed(x, t, l.KProj, k, bf16Arithmetic: arithmetic);
            Gemm.MultiplyTransposed(x, t, l.VProj, v, bf16Arithmetic: arithmetic);
            rope.Apply(q, c.NHeads, positions);
            rope.Apply(k, c.NKvHeads, positions);
            Attention.Forward(q, t, k, v, t, c.NHeads, c.NKvHeads, c.HeadDim, att);
            Gemm.MultiplyTransposed(att, t, l.AttnOut, h, accumulate: true, arithmetic);
            RmsNorm.Apply(h, t, d, Norm(l.FfNorm), eps, x);
            Gemm.MultiplyTransposed(x, t, l.FfProj, gate, bf16Arithmetic: arithmetic);
            Gemm.MultiplyTransposed(x, t, l.UpProj, up, bf16Arithmetic: arithmetic);
            Activations.SwiGlu(gate, up, gate);
            Gemm.MultiplyTransposed(gate, t, l.FfOut, h, accumulate: true, arithmetic);
        }
        RmsNorm.Apply(h, t, d, Norm(checkpoint.FinalNorm), eps, x);
        var logits = new float[t * c.EmbeddingSize];
        Gemm.MultiplyTransposed(x, t, checkpoint.LmHead, logits, bf16Arithmetic: arithmetic);
        return logits;
    }

    [Fact]
    public void Bf16_compute_reaches_every_matrix_product_of_the_model()
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir("tiny-gqa-bf16"));
        Assert.True(model.HasBf16Matrices);
        Assert.Equal(Bf16Arithmetic.Float32, model.Bf16Arithmetic); // the default
        Assert.Equal(ComposedForward(model.Checkpoint, Tokens, Bf16Arithmetic.Float32), Logits(model, Tokens));
        // d_model 64 runs the emitted kernel (where the CPU has it), mlp 172 the rounded-activation fallback (ff_out).
        Bf16GemmTests.ForEachKernel(() =>
        {
            model.Bf16Arithmetic = Bf16Arithmetic.Bf16Activations;
            Assert.Equal(ComposedForward(model.Checkpoint, Tokens, Bf16Arithmetic.Bf16Activations), Logits(model, Tokens));
        });
    }

    [Theory]
    [InlineData("tiny-gqa-bf16")]
    [InlineData("tiny-moe-mixed-bf16")]
    public void Bf16_compute_moves_the_logits_by_a_few_bf16_roundings_not_more(string fixture)
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir(fixture));
        int[] tokens = Tokens.Select(id => id % model.VocabSize).ToArray();
        var exact = Logits(model, tokens);
        model.Bf16Arithmetic = Bf16Arithmetic.Bf16Activations;
        var rounded = Logits(model, tokens);
        double maxAbs = exact.Max(Math.Abs), maxDiff = exact.Zip(rounded, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxDiff > 0, "bf16 activations left every logit unchanged");
        // A bf16 activation keeps 8 significant bits (relative error <= 2^-9); through a few blocks of rounded products
        // the logits move by a few bf16 steps of their scale (measured: 2^-7.2 and 2^-6.8 here), far below the order-1
        // change of a wrong weight or a dropped term.
        Assert.True(maxDiff <= Math.Pow(2, -5) * maxAbs, $"max |logit| {maxAbs}, max change {maxDiff}");
    }

    [Theory]
    [InlineData("tiny-mha-f32")]
    [InlineData("tiny-moe-f32")]
    public void Bf16_compute_changes_nothing_without_bf16_weights(string fixture)
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir(fixture));
        Assert.False(model.HasBf16Matrices);
        int[] tokens = Tokens.Select(id => id % model.VocabSize).ToArray();
        var exact = Logits(model, tokens);
        model.Bf16Arithmetic = Bf16Arithmetic.Bf16Activations;
        Assert.Equal(exact, Logits(model, tokens));
    }

    [Fact]
    public async Task Two_models_with_different_settings_run_side_by_side_without_interfering()
    {
        string dir = GoldenFixtures.Dir("tiny-gqa-bf16");
        using var exactModel = MaskPredictor.Load(dir);
        using var bf16Model = MaskPredictor.Load(dir);
        bf16Model.Bf16Arithmetic = Bf16Arithmetic.Bf16Activations;
        var exact = Logits(exactModel, Tokens);
        var rounded = Logits(bf16Model, Tokens);
        Assert.NotEqual(exact, rounded);

        // Concurrent passes of both models: each keeps its own arithmetic.
        var ct = TestContext.Current.CancellationToken;
        async Task Repeat(MaskPredictor model, float[] expected) =>
            await Task.Run(() =>
            {
                for (int i = 0; i < 20; i++) Assert.Equal(expected, Logits(model, Tokens));
            }, ct);
        await Task.WhenAll(Repeat(exactModel, exact), Repeat(bf16Model, rounded));
        using var fresh = MaskPredictor.Load(dir);
        Assert.Equal(exact, Logits(fresh, Tokens)); // a newly loaded model is float32, whatever others chose
    }
}
