using Llada.Diffusion;

namespace Llada.Tests.Training;

public class ObjectiveTests
{
    private const int Mask = 99;

    private static int[] Tokens(int batch, int seqLen, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, batch * seqLen).Select(_ => rng.Next(0, 50)).ToArray();
    }

    [Fact]
    public void Mask_probability_is_linear_in_t_with_floor_eps()
    {
        Assert.Equal(1e-3, ForwardProcess.MaskProbability(0), 15);
        Assert.Equal(1.0, ForwardProcess.MaskProbability(1), 15);
        Assert.Equal(0.5 * 0.999 + 1e-3, ForwardProcess.MaskProbability(0.5), 15);
    }

    [Fact]
    public void Forward_process_masks_each_token_with_probability_p_mask()
    {
        var process = new ForwardProcess(Mask, 5);
        var x0 = Enumerable.Range(0, 20000).Select(i => i % 50).ToArray();
        var xt = new int[x0.Length];
        int masked = process.Mask(x0, xt, 0.3);
        Assert.Equal(xt.Count(v => v == Mask), masked);
        for (int i = 0; i < x0.Length; i++) Assert.True(xt[i] == Mask || xt[i] == x0[i]);
        // Binomial(20000, 0.3): sd = 64.8; allow 5 sd.
        Assert.InRange(masked, 6000 - 324, 6000 + 324);
    }

    [Fact]
    public void Pretraining_weights_are_one_over_p_mask_times_batch_times_length_at_masked_positions()
    {
        int batch = 3, seqLen = 10;
        int[] x0 = Tokens(batch, seqLen, 1);
        var objective = new Objective(ObjectiveKind.Pretraining, new ForwardProcess(Mask, 7)) { CropProbability = 0 };
        var output = new LossBatch(batch, seqLen);
        objective.Prepare(x0, batch, seqLen, default, output);

        // Replay the documented draw order: crop decision, then per row t and one uniform per token.
        var replay = new ForwardProcess(Mask, 7);
        replay.NextDouble();
        var expected = new List<(int Position, int Target, float Weight)>();
        for (int b = 0; b < batch; b++)
        {
            double p = (1 - 1e-3) * replay.NextDouble() + 1e-3;
            for (int i = 0; i < seqLen; i++)
            {
                bool masked = replay.NextDouble() < p;
                Assert.Equal(masked ? Mask : x0[b * seqLen + i], output.Input[b * seqLen + i]);
                if (masked) expected.Add((b * seqLen + i, x0[b * seqLen + i], (float)(1 / (p * batch * seqLen))));
            }
        }
        Assert.False(output.Causal);
        Assert.Equal(seqLen, output.SeqLen);
        Assert.Equal(expected.Select(e => e.Position), output.Positions.ToArray());
        Assert.Equal(expected.Select(e => e.Target), output.Targets.ToArray());
        Assert.Equal(expected.Select(e => e.Weight), output.Weights.ToArray());
    }

    /// <summary>
    /// With a predictor that is uniform over V tokens, Eq. 3 is log V * sum(weights) and E[sum(weights)] =
    /// E[#masked / (p_mask B L)] = 1 exactly, so the loss is an unbiased log V. 4000 batches of 4x32: the
    /// per-batch sd is ~0.23 (E[1/p_mask] = ln(1000)/0.999), so the mean's sd is ~0.004; we allow 0.02.
    /// </summary>
    [Fact]
    public void Pretraining_loss_of_a_uniform_predictor_is_unbiased_log_vocab()
    {
        int batch = 4, seqLen = 32;
        int[] x0 = Tokens(batch, seqLen, 2);
        var objective = new Objective(ObjectiveKind.Pretraining, new ForwardProcess(Mask, 11));
        var output = new LossBatch(batch, seqLen);
        double total = 0;
        int crops = 0, batches = 4000;
        for (int k = 0; k < batches; k++)
        {
            objective.Prepare(x0, batch, seqLen, default, output);
            foreach (float w in output.Weights) total += w;
            if (output.SeqLen != seqLen) { crops++; Assert.InRange(output.SeqLen, 1, seqLen); }
        }
        Assert.Equal(1.0, total / batches, 0.02);
        // 1% crops: Binomial(4000, 0.01) has mean 40, sd 6.3.
        Assert.InRange(crops, 40 - 20, 40 + 25);
    }

    [Fact]
    public void Cropped_batches_keep_each_rows_prefix_and_normalise_by_the_cropped_length()
    {
        int batch = 2, seqLen = 12;
        int[] x0 = Tokens(batch, seqLen, 3);
        var objective = new Objective(ObjectiveKind.Pretraining, new ForwardProcess(Mask, 5)) { CropProbability = 1 };
        var output = new LossBatch(batch, seqLen);
        var lengths = new HashSet<int>();
        for (int k = 0; k < 300; k++)
        {
            objective.Prepare(x0, batch, seqLen, default, output);
            int len = output.SeqLen;
            lengths.Add(len);
            for (int b = 0; b < batch; b++)
                for (int i = 0; i < len; i++)
                    Assert.True(output.Input[b * len + i] == Mask || output.Input[b * len + i] == x0[b * seqLen + i]);
            for (int j = 0; j < output.Count; j++)
                Assert.Equal(x0[output.Positions[j] / len * seqLen + output.Positions[j] % len], output.Targets[j]);
        }
        Assert.Equal(Enumerable.Range(1, seqLen), lengths.Order()); // every length in [1, L] occurs
    }

    /// <summary>Eq. 5: prompt untouched; per row E[sum of weights] = E[#masked response / (p_mask L_b B)] = 1/B.</summary>
    [Fact]
    public void Sft_never_masks_the_prompt_and_normalises_each_row_by_its_response_length()
    {
        int batch = 2, seqLen = 16;
        int[] x0 = Tokens(batch, seqLen, 4);
        int[] prompts = [3, 12];
        var objective = new Objective(ObjectiveKind.Sft, new ForwardProcess(Mask, 9));
        var output = new LossBatch(batch, seqLen);
        double[] rowSums = new double[batch];
        int batches = 4000;
        for (int k = 0; k < batches; k++)
        {
            objective.Prepare(x0, batch, seqLen, prompts, output);
            Assert.Equal(seqLen, output.SeqLen);
            for (int b = 0; b < batch; b++)
                for (int i = 0; i < prompts[b]; i++) Assert.Equal(x0[b * seqLen + i], output.Input[b * seqLen + i]);
            var weightOfRow = new Dictionary<int, float>();
            for (int j = 0; j < output.Count; j++)
            {
                int b = output.Positions[j] / seqLen, i = output.Positions[j] % seqLen;
                Assert.True(i >= prompts[b]);
                Assert.Equal(Mask, output.Input[output.Positions[j]]);
                Assert.Equal(x0[output.Positions[j]], output.Targets[j]);
                if (weightOfRow.TryGetValue(b, out float w)) Assert.Equal(w, output.Weights[j]); // one p_mask per row
                weightOfRow[b] = output.Weights[j];
                rowSums[b] += output.Weights[j];
            }
        }
        // Row 1 has only 4 response tokens, so its sum is noisier: sd per batch ~ sqrt(6.9/4)/2 = 0.66 -> 0.01 over 4000.
        Assert.Equal(0.5, rowSums[0] / batches, 0.03);
        Assert.Equal(0.5, rowSums[1] / batches, 0.05);
    }

    [Fact]
    public void Autoregressive_scores_every_next_token_causally_with_uniform_weights()
    {
        int batch = 2, seqLen = 5;
        int[] x0 = Tokens(batch, seqLen, 5);
        var objective = new Objective(ObjectiveKind.Autoregressive, new ForwardProcess(Mask, 1));
        var output = new LossBatch(batch, seqLen);
        objective.Prepare(x0, batch, seqLen, default, output);
        Assert.True(output.Causal);
        Assert.Equal(x0, output.Input.ToArray());
        Assert.Equal([0, 1, 2, 3, 5, 6, 7, 8], output.Positions.ToArray());
        Assert.Equal([x0[1], x0[2], x0[3], x0[4], x0[6], x0[7], x0[8], x0[9]], output.Targets.ToArray());
        Assert.All(output.Weights.ToArray(), w => Assert.Equal(1f / 8, w));

        objective.Prepare(x0, batch, seqLen, [3, 1], output); // response-only targets, per-row normalisation
        Assert.Equal([2, 3, 5, 6, 7, 8], output.Positions.ToArray());
        Assert.Equal([0.25f, 0.25f, 0.125f, 0.125f, 0.125f, 0.125f], output.Weights.ToArray());
    }

    [Fact]
    public void Same_seed_and_restored_state_reproduce_the_same_masks()
    {
        int batch = 2, seqLen = 8;
        int[] x0 = Tokens(batch, seqLen, 6);
        var a = new Objective(ObjectiveKind.Pretraining, new ForwardProcess(Mask, 3));
        var b = new Objective(ObjectiveKind.Pretraining, new ForwardProcess(Mask, 3));
        LossBatch oa = new(batch, seqLen), ob = new(batch, seqLen);
        a.Prepare(x0, batch, seqLen, default, oa);
        b.Prepare(x0, batch, seqLen, default, ob);
        Assert.Equal(oa.Input.ToArray(), ob.Input.ToArray());
        ulong[] state = a.Process.GetState();
        a.Prepare(x0, batch, seqLen, default, oa);
        int[] next = oa.Input.ToArray();
        float[] nextWeights = oa.Weights.ToArray();
        var c = new Objective(ObjectiveKind.Pretraining, new ForwardProcess(Mask, 12345));
        c.Process.SetState(state);
        c.Prepare(x0, batch, seqLen, default, ob);
        Assert.Equal(next, ob.Input.ToArray());
        Assert.Equal(nextWeights, ob.Weights.ToArray());
    }

    [Fact]
    public void Sft_without_prompt_lengths_or_with_an_empty_response_is_rejected()
    {
        var objective = new Objective(ObjectiveKind.Sft, new ForwardProcess(Mask, 1));
        var output = new LossBatch(1, 4);
        Assert.Throws<ArgumentException>(() => objective.Prepare([1, 2, 3, 4], 1, 4, default, output));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => objective.Prepare([1, 2, 3, 4], 1, 4, [4], output));
        Assert.Contains("row 0", e.Message);
    }
}
