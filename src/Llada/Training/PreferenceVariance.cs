using Llada.Diffusion;

namespace Llada.Training;

/// <summary>Spread of the VRPO estimators under one setting, over repeated draws of timesteps and masks.</summary>
/// <param name="Options">The setting measured.</param>
/// <param name="ScoreVariance">Variance of a pair's score beta [(B_theta(y_w) - B_ref(y_w)) - (B_theta(y_l) - B_ref(y_l))],
/// unbiased over the repeats, averaged over the pairs.</param>
/// <param name="GradientVariance">E ||g - mean g||^2 of the gradient of the mean DPO loss over the pairs (unbiased over repeats).</param>
/// <param name="MeanScore">Mean score over pairs and repeats.</param>
/// <param name="MeanGradientNormSquared">||mean g||^2, the signal the variance is noise around.</param>
public sealed record PreferenceVarianceResult(VrpoOptions Options, double ScoreVariance, double GradientVariance, double MeanScore, double MeanGradientNormSquared);

/// <summary>
/// Measures the variance the VRPO paper analyses: the same pairs, policy and reference, estimated
/// <c>repeats</c> times with fresh timesteps and masks under a given allocation and with or without antithetic sampling.
/// </summary>
public static class PreferenceVariance
{
    /// <summary>
    /// Runs the estimator <paramref name="repeats"/> times on <paramref name="pairs"/> (each batch one or more pairs as
    /// chosen/rejected rows). The models need room for the batches times <see cref="VrpoOptions.Samples"/>; the
    /// policy's gradients are overwritten.
    /// </summary>
    public static PreferenceVarianceResult Measure(TrainableModel policy, TrainableModel reference, VrpoOptions options,
        IReadOnlyList<TokenBatch> pairs, int repeats, ulong seed, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(pairs);
        if (repeats < 2) throw new ArgumentException($"a variance needs at least 2 repeats (got {repeats})");
        int pairCount = pairs.Sum(b => b.Batch / 2);
        var trainer = new PreferenceTrainer(policy, reference, new PreferenceObjective(options, new ForwardProcess(policy.MaskTokenId, seed)),
            new AdamW(policy), new ConstantSchedule(0));
        var gradientSum = new double[policy.Gradients.Length];
        double squaredNorms = 0;
        var scoreSum = new double[pairCount];
        var scoreSquares = new double[pairCount];
        for (int r = 0; r < repeats; r++)
        {
            policy.ZeroGradients();
            int first = 0;
            foreach (var batch in pairs)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var scores = new double[batch.Batch / 2];
                trainer.Accumulate(batch, 1.0 / pairCount, backward: true, scores);
                for (int i = 0; i < scores.Length; i++)
                {
                    scoreSum[first + i] += scores[i];
                    scoreSquares[first + i] += scores[i] * scores[i];
                }
                first += scores.Length;
            }
            float[] g = policy.Gradients;
            for (int i = 0; i < g.Length; i++)
            {
                gradientSum[i] += g[i];
                squaredNorms += (double)g[i] * g[i];
            }
        }
        double meanNorm = 0;
        foreach (double s in gradientSum) meanNorm += (s / repeats) * (s / repeats);
        double gradientVariance = (squaredNorms - repeats * meanNorm) / (repeats - 1);
        double scoreVariance = 0, meanScore = 0;
        for (int i = 0; i < pairCount; i++)
        {
            double mean = scoreSum[i] / repeats;
            scoreVariance += (scoreSquares[i] - repeats * mean * mean) / (repeats - 1);
            meanScore += mean;
        }
        return new PreferenceVarianceResult(options, Math.Max(0, scoreVariance / pairCount), Math.Max(0, gradientVariance), meanScore / pairCount, meanNorm);
    }
}
