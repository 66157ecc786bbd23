using Llada.Diffusion;

namespace Llada.Training;

/// <summary>What one preference micro-batch gave.</summary>
/// <param name="Loss">Sum over pairs of scale * -log sigmoid(score).</param>
/// <param name="Correct">Pairs whose score is positive (the policy prefers the chosen response more than the reference does).</param>
/// <param name="Preferred">Pairs whose chosen response has the higher policy ELBO estimate, B_theta(y_w) &gt; B_theta(y_l).</param>
/// <param name="Tokens">Input tokens run through the policy.</param>
public readonly record struct PreferenceBatchResult(double Loss, int Correct, int Preferred, long Tokens);

/// <summary>
/// VRPO training (LLaDA 1.5): each micro-batch holds preference pairs as consecutive rows (prompt + chosen,
/// prompt + rejected, padded with EOS to a common width). The frozen reference and the policy estimate each
/// response's ELBO from the same masked copies (antithetic) or from independent ones; the DPO loss's derivative with
/// respect to each policy estimate becomes the weight of that response's cross-entropies in the ordinary backward
/// pass, so the gradient is exactly that of the estimated loss.
/// </summary>
public sealed class PreferenceTrainer : ITrainer
{
    private readonly LossBatch _policyBatch, _referenceBatch;
    private readonly double[] _policyElbo, _referenceElbo;
    private readonly float[] _backwardWeights;

    /// <summary>Creates a trainer; both models need room for 2 x pairs x samples rows.</summary>
    public PreferenceTrainer(TrainableModel policy, TrainableModel reference, PreferenceObjective objective, AdamW optimizer,
        LearningRateSchedule schedule, int accumulation = 1, double maxGradNorm = 1.0)
    {
        Model = policy ?? throw new ArgumentNullException(nameof(policy));
        Reference = reference ?? throw new ArgumentNullException(nameof(reference));
        Objective = objective ?? throw new ArgumentNullException(nameof(objective));
        Optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        Schedule = schedule ?? throw new ArgumentNullException(nameof(schedule));
        ArgumentOutOfRangeException.ThrowIfLessThan(accumulation, 1);
        if (reference.MaxBatch < policy.MaxBatch || reference.MaxSeqLen < policy.MaxSeqLen)
            throw new ArgumentException($"the reference model's buffers ({reference.MaxBatch}x{reference.MaxSeqLen}) are smaller than the policy's ({policy.MaxBatch}x{policy.MaxSeqLen})");
        if (policy.MaxBatch < 2 * objective.Options.Samples)
            throw new ArgumentException($"the policy's buffers hold {policy.MaxBatch} rows; one pair needs 2 x {objective.Options.Samples}");
        Accumulation = accumulation;
        MaxGradNorm = maxGradNorm;
        _policyBatch = new LossBatch(policy.MaxBatch, policy.MaxSeqLen);
        _referenceBatch = new LossBatch(policy.MaxBatch, policy.MaxSeqLen);
        int responses = policy.MaxBatch / objective.Options.Samples;
        _policyElbo = new double[responses];
        _referenceElbo = new double[responses];
        _backwardWeights = new float[policy.MaxBatch * policy.MaxSeqLen];
    }

    /// <summary>The policy being trained.</summary>
    public TrainableModel Model { get; }
    /// <summary>The frozen reference model.</summary>
    public TrainableModel Reference { get; }
    /// <summary>The VRPO objective.</summary>
    public PreferenceObjective Objective { get; }
    /// <summary>The optimiser.</summary>
    public AdamW Optimizer { get; }
    /// <summary>The learning-rate schedule.</summary>
    public LearningRateSchedule Schedule { get; }
    /// <summary>Micro-batches per step.</summary>
    public int Accumulation { get; }
    /// <summary>Global-norm clipping threshold (&lt;= 0: off).</summary>
    public double MaxGradNorm { get; }
    /// <summary>Steps taken so far.</summary>
    public long Step { get; private set; }

    /// <summary>
    /// Estimates the DPO loss of the pairs in <paramref name="pairs"/> (rows 2i and 2i + 1 are pair i's chosen and
    /// rejected response) and, when <paramref name="backward"/>, accumulates <paramref name="scale"/> times its
    /// gradient into the policy's gradients. Draws timesteps and masks from the objective's process: the policy's
    /// copies first, then (without antithetic sampling) the reference's own. <paramref name="scores"/>, when not
    /// empty, receives each pair's score beta [(B_theta(y_w) - B_ref(y_w)) - (B_theta(y_l) - B_ref(y_l))].
    /// </summary>
    public PreferenceBatchResult Accumulate(TokenBatch pairs, double scale, bool backward = true, Span<double> scores = default) =>
        Accumulate(Objective, pairs, scale, backward, scores);

    /// <summary>
    /// Held-out preference metrics of the current policy on <paramref name="batches"/> with fixed noise (a fresh
    /// process seeded with <paramref name="seed"/>, so every evaluation sees the same timesteps and masks): the mean
    /// DPO loss and the share of pairs whose chosen response has the higher policy ELBO estimate.
    /// </summary>
    public (double Loss, double Accuracy, int Pairs) Evaluate(IReadOnlyList<TokenBatch> batches, ulong seed, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batches);
        var objective = new PreferenceObjective(Objective.Options, new ForwardProcess(Objective.Process.MaskTokenId, seed));
        double loss = 0;
        int preferred = 0, pairs = 0;
        foreach (var batch in batches)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var result = Accumulate(objective, batch, 1, backward: false, default);
            loss += result.Loss;
            preferred += result.Preferred;
            pairs += batch.Batch / 2;
        }
        return (loss / Math.Max(1, pairs), (double)preferred / Math.Max(1, pairs), pairs);
    }

    private PreferenceBatchResult Accumulate(PreferenceObjective objective, TokenBatch pairs, double scale, bool backward, Span<double> scores)
    {
        if (pairs.Batch % 2 != 0) throw new ArgumentException($"a preference batch holds (chosen, rejected) row pairs; got {pairs.Batch} rows", nameof(pairs));
        int responses = pairs.Batch, count = responses / 2, n = objective.Options.Samples;
        if (!scores.IsEmpty && scores.Length != count) throw new ArgumentException($"expected room for {count} scores, got {scores.Length}", nameof(scores));
        ReadOnlySpan<int> prompts = pairs.PromptLengths.Span;
        for (int i = 0; i < count; i++)
            if (prompts[2 * i] != prompts[2 * i + 1])
                throw new ArgumentException($"pair {i}: the chosen and rejected rows have different prompt lengths ({prompts[2 * i]} and {prompts[2 * i + 1]})", nameof(pairs));

        objective.Sample(pairs.Tokens.Span, responses, pairs.SeqLen, prompts, _policyBatch);
        LossBatch referenceBatch = _policyBatch;
        if (!objective.Options.Antithetic)
        {
            objective.Sample(pairs.Tokens.Span, responses, pairs.SeqLen, prompts, _referenceBatch);
            referenceBatch = _referenceBatch;
        }
        Span<double> policyElbo = _policyElbo.AsSpan(0, responses), referenceElbo = _referenceElbo.AsSpan(0, responses);
        Reference.Forward(referenceBatch.Input, referenceBatch.Batch, referenceBatch.SeqLen, false, default, referenceBatch.Positions, referenceBatch.Targets, referenceBatch.Weights);
        objective.Elbos(referenceBatch, Reference.ScoredLosses, referenceElbo);
        Model.Forward(_policyBatch.Input, _policyBatch.Batch, _policyBatch.SeqLen, false, default, _policyBatch.Positions, _policyBatch.Targets, _policyBatch.Weights);
        objective.Elbos(_policyBatch, Model.ScoredLosses, policyElbo);

        // dLoss/dB_theta(y): +beta dL/ds for the chosen response, -beta dL/ds for the rejected one.
        Span<double> dElbo = responses <= 256 ? stackalloc double[responses] : new double[responses];
        double loss = 0;
        int correct = 0, preferred = 0;
        for (int i = 0; i < count; i++)
        {
            var (score, pairLoss, dScore) = objective.Pair(policyElbo[2 * i], referenceElbo[2 * i], policyElbo[2 * i + 1], referenceElbo[2 * i + 1]);
            loss += scale * pairLoss;
            if (score > 0) correct++;
            if (policyElbo[2 * i] > policyElbo[2 * i + 1]) preferred++;
            if (!scores.IsEmpty) scores[i] = score;
            dElbo[2 * i] = scale * objective.Options.Beta * dScore;
            dElbo[2 * i + 1] = -scale * objective.Options.Beta * dScore;
        }
        if (backward)
        {
            // B(y) = -sum_j w_j CE_j, so dLoss/dCE_j = -dLoss/dB(y_j) w_j.
            ReadOnlySpan<int> positions = _policyBatch.Positions;
            ReadOnlySpan<float> w = _policyBatch.Weights;
            Span<float> weights = _backwardWeights.AsSpan(0, positions.Length);
            for (int j = 0; j < positions.Length; j++)
                weights[j] = (float)(-dElbo[positions[j] / _policyBatch.SeqLen / n] * w[j]);
            Model.BackwardReweighted(weights);
        }
        return new PreferenceBatchResult(loss, correct, preferred, (long)_policyBatch.Batch * _policyBatch.SeqLen);
    }

    /// <summary>Takes one optimiser step on <see cref="Accumulation"/> micro-batches of pairs; the loss is the mean over pairs.</summary>
    public StepMetrics TrainStep(Func<long, TokenBatch> nextBatch)
    {
        ArgumentNullException.ThrowIfNull(nextBatch);
        var metrics = Trainer.OptimizerStep(Model, Optimizer, Schedule, Accumulation, MaxGradNorm, Step, index =>
        {
            TokenBatch data = nextBatch(index);
            var result = Accumulate(data, 1.0 / (data.Batch / 2 * Accumulation));
            return (result.Loss, result.Tokens);
        });
        Step++;
        return metrics;
    }

    /// <summary>Writes the step, the optimiser moments and the random state of timesteps and masks.</summary>
    public void SaveState(Stream stream) => Trainer.WriteState(stream, Step, Objective.Process, Optimizer);

    /// <summary>Restores a state written by <see cref="SaveState"/>.</summary>
    public void LoadState(Stream stream) => Step = Trainer.ReadState(stream, Objective.Process, Optimizer);
}
