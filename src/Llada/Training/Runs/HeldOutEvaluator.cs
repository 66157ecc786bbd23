using Llada.Diffusion;

namespace Llada.Training.Runs;

/// <summary>One held-out evaluation.</summary>
/// <param name="Step">Optimiser steps completed when it was measured.</param>
/// <param name="Loss">Mean loss in nats per token: for diffusion the Eq. 3 (or Eq. 5) loss, an upper bound on the
/// negative log-likelihood (Eq. 4); for the autoregressive baseline the exact next-token NLL.</param>
/// <param name="Tokens">Tokens in the evaluated batches.</param>
/// <param name="IsBound">True when <paramref name="Loss"/> is an ELBO bound rather than an exact NLL.</param>
public sealed record HeldOutResult(long Step, double Loss, long Tokens, bool IsBound)
{
    /// <summary>Preference runs: share of held-out pairs whose chosen response has the higher ELBO estimate
    /// (<see cref="Loss"/> is then the mean DPO loss per pair).</summary>
    public double? Accuracy { get; init; }

    /// <summary>Loss in bits per token.</summary>
    public double BitsPerToken => Loss / Math.Log(2);

    /// <summary>exp(loss per token): the perplexity for AR, an upper bound on it ("ELBO perplexity") for diffusion.</summary>
    public double Perplexity => Math.Exp(Loss);
}

/// <summary>
/// Scores a model on fixed held-out batches with fixed noise: every evaluation re-seeds the forward process, so all
/// evaluations of a run see the same t and the same masks and their differences measure the model only.
/// </summary>
public sealed class HeldOutEvaluator : IHeldOutEvaluator
{
    private readonly IReadOnlyList<TokenBatch> _batches;
    private readonly ObjectiveKind _kind;
    private readonly int _maskTokenId;
    private readonly ulong _seed;
    private readonly LossBatch _loss;

    /// <summary>Creates an evaluator over <paramref name="batches"/> (copied by reference; keep them unchanged).</summary>
    /// <param name="batches">Held-out batches, all within the model's batch and sequence limits.</param>
    /// <param name="kind">The run's objective (pre-training, SFT or autoregressive).</param>
    /// <param name="maskTokenId">The model's mask id.</param>
    /// <param name="seed">Seed of the fixed noise.</param>
    public HeldOutEvaluator(IReadOnlyList<TokenBatch> batches, ObjectiveKind kind, int maskTokenId, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(batches);
        _batches = batches;
        _kind = kind;
        _maskTokenId = maskTokenId;
        _seed = seed;
        int maxBatch = Math.Max(1, batches.Count == 0 ? 1 : batches.Max(b => b.Batch));
        int maxLen = Math.Max(1, batches.Count == 0 ? 1 : batches.Max(b => b.SeqLen));
        _loss = new LossBatch(maxBatch, maxLen);
    }

    /// <summary>Number of held-out batches.</summary>
    public int BatchCount => _batches.Count;

    /// <summary>Mean loss of <paramref name="model"/> over the held-out batches (uncropped, fixed noise).</summary>
    public HeldOutResult Evaluate(TrainableModel model, long step, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (_batches.Count == 0) throw new InvalidOperationException("there are no held-out batches to evaluate");
        var objective = new Objective(_kind, new ForwardProcess(_maskTokenId, _seed)) { CropProbability = 0 };
        double sum = 0;
        long tokens = 0;
        foreach (var batch in _batches)
        {
            cancellationToken.ThrowIfCancellationRequested();
            objective.Prepare(batch.Tokens.Span, batch.Batch, batch.SeqLen, batch.PromptLengths.Span, _loss);
            sum += model.Forward(_loss.Input, _loss.Batch, _loss.SeqLen, _loss.Causal, default, _loss.Positions, _loss.Targets, _loss.Weights);
            tokens += (long)batch.Batch * batch.SeqLen;
        }
        return new HeldOutResult(step, sum / _batches.Count, tokens, _kind != ObjectiveKind.Autoregressive);
    }
}

/// <summary>Scores the model being trained on fixed held-out data.</summary>
public interface IHeldOutEvaluator
{
    /// <summary>Evaluates <paramref name="model"/> after <paramref name="step"/> steps.</summary>
    HeldOutResult Evaluate(TrainableModel model, long step, CancellationToken cancellationToken = default);
}

/// <summary>
/// Held-out preference pairs scored with fixed noise: the mean DPO loss against the frozen reference and the share of
/// pairs whose chosen response the policy's ELBO estimate prefers.
/// </summary>
public sealed class PreferenceHeldOutEvaluator(PreferenceTrainer trainer, IReadOnlyList<TokenBatch> batches, ulong seed) : IHeldOutEvaluator
{
    /// <inheritdoc/>
    public HeldOutResult Evaluate(TrainableModel model, long step, CancellationToken cancellationToken = default)
    {
        if (!ReferenceEquals(model, trainer.Model)) throw new ArgumentException("the evaluator scores its trainer's policy", nameof(model));
        var (loss, accuracy, _) = trainer.Evaluate(batches, seed, cancellationToken);
        return new HeldOutResult(step, loss, batches.Sum(b => (long)b.Batch * b.SeqLen), IsBound: false) { Accuracy = accuracy };
    }
}
