using Llada.Training;

namespace Llada.Tests.Training;

public class OptimizerTests
{
    private static readonly ParameterTensor[] Tensors =
    [
        new("model.transformer.wte.weight", 0, [2, 2], ParameterKind.Embedding),
        new("model.transformer.blocks.0.attn_norm.weight", 4, [2], ParameterKind.Norm),
        new("model.transformer.blocks.0.q_proj.weight", 6, [2, 2], ParameterKind.Matrix),
    ];

    /// <summary>Two AdamW steps against the update written out by hand in float64 (PyTorch's AdamW formula).</summary>
    [Fact]
    public void AdamW_steps_match_a_hand_computed_update_with_decay_on_matrices_only()
    {
        float[] p = [0.5f, -1f, 2f, 0.25f, 1f, 1.5f, -0.5f, 0.75f, 3f, -2f];
        float[][] grads = [[0.1f, -0.2f, 0.3f, 0f, 1f, -1f, 0.5f, 0.05f, -0.3f, 2f], [-0.1f, 0.4f, 0.3f, 1f, 0.5f, -0.5f, -0.5f, 0.05f, 0.6f, -1f]];
        double[] lrs = [1e-2, 5e-3];
        var opt = new AdamW(p.Length, Tensors, new AdamWOptions { Beta1 = 0.9, Beta2 = 0.95, Epsilon = 1e-8, WeightDecay = 0.1 });

        double[] expected = p.Select(v => (double)v).ToArray(), m = new double[p.Length], v = new double[p.Length];
        for (int step = 1; step <= 2; step++)
        {
            opt.Update(p, grads[step - 1], lrs[step - 1]);
            double lr = lrs[step - 1];
            for (int i = 0; i < p.Length; i++)
            {
                double g = grads[step - 1][i];
                bool decays = i >= 6; // only q_proj
                if (decays) expected[i] *= 1 - lr * 0.1;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.95 * v[i] + 0.05 * g * g;
                double mHat = m[i] / (1 - Math.Pow(0.9, step)), vHat = v[i] / (1 - Math.Pow(0.95, step));
                expected[i] -= lr * mHat / (Math.Sqrt(vHat) + 1e-8);
            }
            for (int i = 0; i < p.Length; i++) Assert.Equal(expected[i], p[i], 1e-6);
        }
        Assert.Equal(2, opt.Step);
        // Sanity of the hand formula itself: a constant gradient moves a parameter by ~lr per step (sign-like Adam).
        Assert.Equal(2 - 1e-2 - 5e-3, expected[2], 1e-6);
    }

    [Fact]
    public void AdamW_decays_embeddings_only_when_configured()
    {
        float[] p = Enumerable.Repeat(1f, 10).ToArray(), q = (float[])p.Clone();
        float[] zero = new float[10];
        new AdamW(10, Tensors).Update(p, zero, 0.1);
        new AdamW(10, Tensors, new AdamWOptions { DecayEmbeddings = true }).Update(q, zero, 0.1);
        Assert.Equal([1f, 1f, 1f, 1f, 1f, 1f, 0.99f, 0.99f, 0.99f, 0.99f], p);
        Assert.Equal([0.99f, 0.99f, 0.99f, 0.99f, 1f, 1f, 0.99f, 0.99f, 0.99f, 0.99f], q);
    }

    [Fact]
    public void AdamW_state_round_trips_so_later_updates_are_bit_identical()
    {
        var rng = new Random(1);
        float[] p = Reference.RandomFloats(rng, 10, 1), g1 = Reference.RandomFloats(rng, 10, 1), g2 = Reference.RandomFloats(rng, 10, 1);
        var a = new AdamW(10, Tensors);
        a.Update(p, g1, 1e-2);
        var stream = new MemoryStream();
        a.Save(new BinaryWriter(stream));
        float[] q = (float[])p.Clone();
        a.Update(p, g2, 1e-2);
        var b = new AdamW(10, Tensors);
        stream.Position = 0;
        b.Load(new BinaryReader(stream));
        b.Update(q, g2, 1e-2);
        Assert.Equal(p, q);
        Assert.Equal(2, b.Step);
        stream.Position = 0;
        var e = Assert.Throws<InvalidDataException>(() => new AdamW(6, [Tensors[0], Tensors[1]]).Load(new BinaryReader(stream)));
        Assert.Contains("10 parameters", e.Message);
    }

    [Fact]
    public void Clipping_scales_to_the_maximum_global_norm_and_reports_the_norm_before()
    {
        float[] g = [3f, 4f, 0f, 12f]; // norm 13
        Assert.Equal(13.0, AdamW.ClipGradientNorm(g, 1.0), 12);
        Assert.Equal(1.0, Math.Sqrt(g.Sum(x => (double)x * x)), 5);
        Assert.Equal(3f / 13, g[0], 5);
        float[] small = [0.3f, 0.4f];
        Assert.Equal(0.5, AdamW.ClipGradientNorm(small, 1.0), 6);
        Assert.Equal([0.3f, 0.4f], small);
    }

    [Fact]
    public void Warmup_stable_decay_at_its_boundaries()
    {
        var s = new WarmupStableDecay(peakRate: 1e-3, warmupSteps: 10, totalSteps: 100, decayFraction: 0.1, minRate: 1e-5);
        Assert.Equal(90, s.DecayStart);
        Assert.Equal(1e-4, s.At(0), 15);
        Assert.Equal(5e-4, s.At(4), 15);
        Assert.Equal(1e-3, s.At(9), 15);
        Assert.Equal(1e-3, s.At(10), 15);
        Assert.Equal(1e-3, s.At(89), 15);
        Assert.Equal(1e-3, s.At(90), 15);
        Assert.Equal(1e-5 + (1e-3 - 1e-5) * 0.5, s.At(95), 15);
        Assert.Equal(1e-5 + (1e-3 - 1e-5) * 0.1, s.At(99), 15);
        Assert.Equal(1e-5, s.At(100), 15);
        Assert.Throws<ArgumentException>(() => new WarmupStableDecay(1e-3, 95, 100, 0.1));
    }

    [Fact]
    public void Cosine_at_its_boundaries()
    {
        var s = new CosineSchedule(peakRate: 2e-3, warmupSteps: 4, totalSteps: 104, minRate: 2e-4);
        Assert.Equal(5e-4, s.At(0), 15);
        Assert.Equal(2e-3, s.At(3), 15);
        Assert.Equal(2e-3, s.At(4), 15);
        Assert.Equal(1.1e-3, s.At(54), 15);
        Assert.Equal(2e-4 + 1.8e-3 * 0.5 * (1 + Math.Cos(Math.PI * 0.25)), s.At(29), 15);
        Assert.Equal(2e-4, s.At(104), 15);
    }
}
