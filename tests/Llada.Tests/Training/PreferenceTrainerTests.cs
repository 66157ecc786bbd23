using Llada.Diffusion;
using Llada.Training;

namespace Llada.Tests.Training;

public class PreferenceTrainerTests
{
    private const int Mask = 12;

    // Two pairs of prompt + response rows, width 7: pair 0 has a 2-token prompt, pair 1 a 3-token prompt.
    private static readonly int[] PairTokens =
    [
        1, 2, 3, 4, 5, 11, 11,
        1, 2, 6, 7, 11, 11, 11,
        4, 0, 9, 8, 7, 6, 11,
        4, 0, 9, 5, 5, 11, 11,
    ];
    private static readonly int[] PairPrompts = [2, 2, 3, 3];
    private static TokenBatch Pairs => new(PairTokens, 4, 7, PairPrompts);

    private static (TrainableModel Policy, TrainableModel Reference) Models(int samples, bool sameWeights = false)
    {
        var shape = TrainableModelTests.TinyShape(tied: false, kvHeads: 1);
        var policy = new TrainableModel(shape, 4 * samples, 7, 1);
        var reference = new TrainableModel(shape, 4 * samples, 7, 2);
        TrainableModelTests.Randomize(policy, 31);
        if (sameWeights) policy.Parameters.CopyTo(reference.Parameters, 0);
        else TrainableModelTests.Randomize(reference, 32);
        return (policy, reference);
    }

    private static PreferenceTrainer Trainer(TrainableModel policy, TrainableModel reference, VrpoOptions options, ulong seed) =>
        new(policy, reference, new PreferenceObjective(options, new ForwardProcess(Mask, seed)), new AdamW(policy), new ConstantSchedule(0));

    /// <summary>sum_j w_j * -log softmax(logits_j)[target_j] per response, in float64 from the reference implementation.</summary>
    private static double[] ReferenceElbos(TrainableModel model, double[] parameters, LossBatch batch, int samples)
    {
        double[] logits = Reference.Logits(model.Shape, TrainableModelTests.ParametersOf(model, parameters), batch.Input.ToArray(),
            batch.Batch, batch.SeqLen, false, null);
        var elbo = new double[batch.Batch / samples];
        var positions = batch.Positions.ToArray();
        var targets = batch.Targets.ToArray();
        var weights = batch.Weights.ToArray();
        for (int j = 0; j < positions.Length; j++)
            elbo[positions[j] / batch.SeqLen / samples] -= Reference.WeightedCrossEntropy(logits, model.Shape.VocabSize, [positions[j]], [targets[j]], [weights[j]]);
        return elbo;
    }

    /// <summary>
    /// The whole VRPO loss (ELBO estimates of policy and frozen reference, DPO, mean over pairs) differentiated by
    /// central differences of an independent float64 evaluation on the same timesteps and masks (replayed from the
    /// seed in the documented order: the policy's copies, then the reference's own when not antithetic).
    /// </summary>
    [Theory]
    [InlineData(ElboAllocation.Optimal, 1, true)]
    [InlineData(ElboAllocation.Optimal, 1, false)]
    [InlineData(ElboAllocation.Naive, 1, false)]
    public void Preference_loss_gradient_matches_finite_differences(ElboAllocation allocation, int timesteps, bool antithetic)
    {
        var options = new VrpoOptions { Beta = 0.05, Samples = 3, Allocation = allocation, Timesteps = timesteps, Antithetic = antithetic };
        var (policy, reference) = Models(options.Samples);
        var trainer = Trainer(policy, reference, options, seed: 17);
        policy.ZeroGradients();
        double loss = trainer.Accumulate(Pairs, scale: 0.5).Loss;

        var replay = new PreferenceObjective(options, new ForwardProcess(Mask, 17));
        var policyBatch = new LossBatch(4 * options.Samples, 7);
        replay.Sample(PairTokens, 4, 7, PairPrompts, policyBatch);
        var referenceBatch = policyBatch;
        if (!antithetic)
        {
            referenceBatch = new LossBatch(4 * options.Samples, 7);
            replay.Sample(PairTokens, 4, 7, PairPrompts, referenceBatch);
        }
        double[] referenceElbo = ReferenceElbos(reference, Reference.ToDouble(reference.Parameters), referenceBatch, options.Samples);
        double RefLoss(double[] p)
        {
            double[] elbo = ReferenceElbos(policy, p, policyBatch, options.Samples);
            double total = 0;
            for (int i = 0; i < 2; i++)
            {
                double s = options.Beta * ((elbo[2 * i] - referenceElbo[2 * i]) - (elbo[2 * i + 1] - referenceElbo[2 * i + 1]));
                total += 0.5 * Math.Log(1 + Math.Exp(-s));
            }
            return total;
        }
        double[] parameters = Reference.ToDouble(policy.Parameters);
        Assert.Equal(RefLoss(parameters), loss, 1e-4);
        double[] numeric = Reference.NumericGradient(parameters, RefLoss);
        foreach (var t in policy.Tensors)
            Reference.AssertGradientsClose(t.Name, policy.Gradients.AsSpan(t.Offset, t.Length), numeric.AsSpan(t.Offset, t.Length).ToArray(), 1e-4);
        Assert.All(reference.Gradients, g => Assert.Equal(0f, g)); // the reference stays frozen
    }

    [Fact]
    public void Antithetic_sampling_makes_the_score_exactly_zero_when_policy_equals_reference()
    {
        var options = new VrpoOptions { Samples = 2 };
        var (policy, reference) = Models(options.Samples, sameWeights: true);
        var scores = new double[2];
        var shared = Trainer(policy, reference, options, 5).Accumulate(Pairs, 1, backward: false, scores);
        Assert.Equal([0.0, 0.0], scores);
        Assert.Equal(2 * Math.Log(2), shared.Loss, 12); // -log sigmoid(0) per pair
        Trainer(policy, reference, options with { Antithetic = false }, 5).Accumulate(Pairs, 1, backward: false, scores);
        Assert.All(scores, s => Assert.NotEqual(0.0, s));
    }

    /// <summary>Replays the documented draws: per response, per copy, a new t when the copy starts a timestep group,
    /// then one uniform per response token; scored weight 1 / (p_mask n).</summary>
    [Theory]
    [InlineData(ElboAllocation.Optimal, 1)]
    [InlineData(ElboAllocation.Naive, 1)]
    [InlineData(ElboAllocation.Naive, 2)]
    public void Sample_draws_timesteps_per_allocation_and_masks_only_responses(ElboAllocation allocation, int timesteps)
    {
        var options = new VrpoOptions { Samples = 4, Allocation = allocation, Timesteps = timesteps };
        var objective = new PreferenceObjective(options, new ForwardProcess(Mask, 9));
        var batch = new LossBatch(16, 7);
        objective.Sample(PairTokens, 4, 7, PairPrompts, batch);

        var replay = new ForwardProcess(Mask, 9);
        int perTimestep = allocation == ElboAllocation.Optimal ? 1 : 4 / timesteps;
        var expected = new List<(int Position, int Target, float Weight)>();
        var distinctP = new HashSet<double>();
        for (int r = 0; r < 4; r++)
        {
            double p = 0;
            for (int k = 0; k < 4; k++)
            {
                if (k % perTimestep == 0) distinctP.Add(p = (1 - 1e-3) * replay.NextDouble() + 1e-3);
                int row = r * 4 + k;
                for (int i = 0; i < 7; i++)
                {
                    int token = PairTokens[r * 7 + i];
                    bool masked = i >= PairPrompts[r] && replay.NextDouble() < p;
                    Assert.Equal(masked ? Mask : token, batch.Input[row * 7 + i]);
                    if (masked) expected.Add((row * 7 + i, token, (float)(1 / (p * 4))));
                }
            }
        }
        Assert.Equal(4 * 4 / perTimestep, distinctP.Count);
        Assert.Equal(expected.Select(e => e.Position), batch.Positions.ToArray());
        Assert.Equal(expected.Select(e => e.Target), batch.Targets.ToArray());
        Assert.Equal(expected.Select(e => e.Weight), batch.Weights.ToArray());
    }

    [Fact]
    public void Pair_loss_is_softplus_of_minus_the_score_without_overflow()
    {
        var objective = new PreferenceObjective(new VrpoOptions { Beta = 0.5 }, new ForwardProcess(Mask, 1));
        var (s, loss, d) = objective.Pair(-3, -5, -4, -4);
        Assert.Equal(1.0, s, 15);
        Assert.Equal(Math.Log(1 + Math.Exp(-1)), loss, 15);
        Assert.Equal(-1 / (1 + Math.E), d, 15);
        var (_, big, dBig) = objective.Pair(0, 0, 4000, 0);
        Assert.Equal(2000, big, 9);
        Assert.Equal(-1, dBig, 15);
        Assert.Throws<ArgumentException>(() => new VrpoOptions { Samples = 6, Allocation = ElboAllocation.Naive, Timesteps = 4 }.Validate());
    }
}
