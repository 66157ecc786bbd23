using Llada.Model;

namespace Llada.Diffusion;

/// <summary>How the mask of one Monte Carlo sample of the likelihood bound is drawn.</summary>
public enum LikelihoodEstimator
{
    /// <summary>Eq. 6: l ~ U{1..L}, exactly l masked response tokens, weight L / l (the reference's choice).</summary>
    MaskCount,

    /// <summary>
    /// The Eq. 3/5 form: t ~ U(0, 1), each response token masked independently with probability t, weight 1 / t.
    /// Same expectation as Eq. 6 (given k masked tokens, E[1/t] weighs each k-subset by 1 / (k C(L, k)), as Eq. 6
    /// does), but the rare small t make its variance large (unbounded as t -> 0); kept to measure that.
    /// </summary>
    MaskRate,
}

/// <summary>Settings of the Monte Carlo likelihood bound.</summary>
public sealed record LikelihoodOptions
{
    /// <summary>mc_num: Monte Carlo samples (the reference default is 128).</summary>
    public int Samples { get; init; } = 128;

    /// <summary>Samples per forward pass (the last batch may be smaller).</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Classifier-free guidance strength; 0 disables it.</summary>
    public double CfgScale { get; init; }

    /// <summary>Seed of the mask draws.</summary>
    public int Seed { get; init; }

    /// <summary>How each sample's mask is drawn (default: Eq. 6).</summary>
    public LikelihoodEstimator Estimator { get; init; } = LikelihoodEstimator.MaskCount;

    /// <summary>
    /// <see cref="LikelihoodEstimator.MaskCount"/> only: spread the l's of a batch evenly (with a random offset)
    /// instead of drawing each independently. Both are unbiased; stratification lowers the variance.
    /// </summary>
    public bool Stratified { get; init; } = true;
}

/// <summary>A Monte Carlo estimate of the lower bound on log p(response | prompt).</summary>
/// <param name="LogLikelihood">Mean of the per-sample bound terms (nats).</param>
/// <param name="StandardError">Sample standard deviation of the terms (n - 1 denominator) divided by sqrt(n);
/// NaN for a single sample. Treating the stratified terms of a batch as independent makes this slightly
/// conservative: stratification only lowers the true variance of the mean.</param>
/// <param name="Samples">Number of Monte Carlo samples n.</param>
public readonly record struct LikelihoodEstimate(double LogLikelihood, double StandardError, int Samples);

/// <summary>One candidate answer of a multiple-choice question with its estimate.</summary>
/// <param name="Index">Position of the choice in the list given.</param>
/// <param name="Estimate">Its likelihood bound.</param>
public sealed record RankedChoice(int Index, LikelihoodEstimate Estimate);

/// <summary>
/// The conditional likelihood bound of Eq. 6: log p(r | p) &gt;= E_{l ~ U{1..L}} E_{mask of exactly l response
/// tokens} [(L / l) sum over masked i of log p(r_i | p, r_masked)], L the response length; the prompt is never
/// masked. Estimated by Monte Carlo; within a batch the l's are stratified (evenly spaced with a random offset,
/// each still uniform on 1..L) to lower the variance. <see cref="LikelihoodOptions.Estimator"/> selects the
/// independent-masking form instead (t ~ U(0, 1), weight 1 / t), which has the same expectation.
/// </summary>
public sealed class ElboLikelihood
{
    private readonly IMaskPredictor _predictor;

    /// <summary>Creates an estimator over <paramref name="predictor"/>.</summary>
    public ElboLikelihood(IMaskPredictor predictor) =>
        _predictor = predictor ?? throw new ArgumentNullException(nameof(predictor));

    /// <summary>Estimates the Eq. 6 bound on log p(<paramref name="response"/> | <paramref name="prompt"/>).</summary>
    public LikelihoodEstimate Estimate(ReadOnlySpan<int> prompt, ReadOnlySpan<int> response,
        LikelihoodOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new LikelihoodOptions();
        Validate(prompt, response, options);
        int p = prompt.Length, len = response.Length, seqLen = p + len, vocab = _predictor.VocabSize, mask = _predictor.MaskTokenId;
        bool cfg = options.CfgScale > 0;
        int branches = cfg ? 2 : 1, batchSize = Math.Min(options.BatchSize, options.Samples);

        var tokens = new int[branches * batchSize * seqLen];
        var logits = new float[(long)branches * batchSize * len * vocab];
        var logitPositions = new int[len];
        for (int i = 0; i < len; i++) logitPositions[i] = p + i;
        var order = new int[len];
        var levels = new int[batchSize];
        var weights = new double[batchSize];
        var terms = new double[options.Samples];
        var combined = new double[vocab];

        for (int first = 0, batchIndex = 0; first < options.Samples; first += batchSize, batchIndex++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int rows = Math.Min(batchSize, options.Samples - first);
            var random = CounterRandom.For(options.Seed, batchIndex);

            bool maskCount = options.Estimator == LikelihoodEstimator.MaskCount;
            if (maskCount && options.Stratified)
            {
                // Stratified l: offset k ~ U{1..L}, l_j = ((k - 1 + floor(j L / rows)) mod L) + 1, each uniform on 1..L.
                int offset = random.NextInt(len);
                for (int j = 0; j < rows; j++) levels[j] = (int)((offset + (long)j * len / rows) % len) + 1;
            }
            else if (maskCount)
                for (int j = 0; j < rows; j++) levels[j] = random.NextInt(len) + 1;

            for (int j = 0; j < rows; j++)
            {
                Span<int> row = tokens.AsSpan(j * seqLen, seqLen);
                prompt.CopyTo(row);
                response.CopyTo(row[p..]);
                if (maskCount)
                {
                    // Exactly l response positions, uniformly without replacement: the first l of a partial shuffle.
                    for (int i = 0; i < len; i++) order[i] = i;
                    for (int i = 0; i < levels[j]; i++)
                    {
                        int pick = i + random.NextInt(len - i);
                        (order[i], order[pick]) = (order[pick], order[i]);
                        row[p + order[i]] = mask;
                    }
                    weights[j] = (double)len / levels[j]; // Eq. 6
                }
                else
                {
                    // Eq. 3/5 form: t ~ U(0, 1), each response token masked with probability t; no mask scores 0.
                    double t = random.NextOpenUnit();
                    for (int i = 0; i < len; i++)
                        if (random.NextOpenUnit() < t) row[p + i] = mask;
                    weights[j] = 1 / t;
                }
                if (cfg)
                {
                    Span<int> unconditional = tokens.AsSpan((rows + j) * seqLen, seqLen);
                    row.CopyTo(unconditional);
                    unconditional[..p].Fill(mask);
                }
            }

            int forwardRows = branches * rows;
            _predictor.Forward(tokens.AsSpan(0, forwardRows * seqLen), forwardRows, seqLen, [], logitPositions,
                logits.AsSpan(0, forwardRows * len * vocab), cancellationToken);

            for (int j = 0; j < rows; j++)
            {
                double sum = 0;
                for (int i = 0; i < len; i++)
                {
                    if (tokens[j * seqLen + p + i] != mask) continue;
                    ReadOnlySpan<float> c = logits.AsSpan((j * len + i) * vocab, vocab);
                    if (cfg)
                    {
                        ReadOnlySpan<float> u = logits.AsSpan(((rows + j) * len + i) * vocab, vocab);
                        for (int v = 0; v < vocab; v++) combined[v] = u[v] + (options.CfgScale + 1) * ((double)c[v] - u[v]);
                    }
                    else for (int v = 0; v < vocab; v++) combined[v] = c[v];
                    sum += LogSoftmaxAt(combined, response[i]);
                }
                terms[first + j] = weights[j] * sum;
            }
        }
        return Summarize(terms);
    }

    /// <summary>
    /// Scores each of <paramref name="choices"/> as a response to <paramref name="prompt"/> and returns them best
    /// first. Every choice uses the same seed (common random numbers), which makes their differences less noisy.
    /// </summary>
    public IReadOnlyList<RankedChoice> RankChoices(ReadOnlySpan<int> prompt, IReadOnlyList<int[]> choices,
        LikelihoodOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(choices);
        var ranked = new RankedChoice[choices.Count];
        for (int i = 0; i < choices.Count; i++)
            ranked[i] = new RankedChoice(i, Estimate(prompt, choices[i], options, cancellationToken));
        return ranked.OrderByDescending(c => c.Estimate.LogLikelihood).ThenBy(c => c.Index).ToArray();
    }

    private static double LogSoftmaxAt(ReadOnlySpan<double> logits, int target)
    {
        double max = double.NegativeInfinity;
        foreach (double l in logits) if (l > max) max = l;
        double sum = 0;
        foreach (double l in logits) sum += Math.Exp(l - max);
        return logits[target] - max - Math.Log(sum);
    }

    private static LikelihoodEstimate Summarize(double[] terms)
    {
        int n = terms.Length;
        double mean = 0;
        foreach (double t in terms) mean += t;
        mean /= n;
        double squares = 0;
        foreach (double t in terms) squares += (t - mean) * (t - mean);
        double standardError = n > 1 ? Math.Sqrt(squares / (n - 1) / n) : double.NaN;
        return new LikelihoodEstimate(mean, standardError, n);
    }

    private void Validate(ReadOnlySpan<int> prompt, ReadOnlySpan<int> response, LikelihoodOptions options)
    {
        if (options.Samples < 1) throw new ArgumentException($"mc_num must be at least 1 (got {options.Samples})");
        if (options.BatchSize < 1) throw new ArgumentException($"batch_size must be at least 1 (got {options.BatchSize})");
        if (!double.IsFinite(options.CfgScale) || options.CfgScale < 0)
            throw new ArgumentException($"cfg_scale must be finite and >= 0 (got {options.CfgScale})");
        if (response.IsEmpty) throw new ArgumentException("the response is empty; Eq. 6 needs at least one token");
        if ((long)prompt.Length + response.Length > _predictor.MaxSequenceLength)
            throw new ArgumentException($"prompt ({prompt.Length}) + response ({response.Length}) tokens exceed the model's max_sequence_length {_predictor.MaxSequenceLength}");
        CheckIds("prompt", prompt);
        CheckIds("response", response);
    }

    private void CheckIds(string what, ReadOnlySpan<int> ids)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)_predictor.VocabSize)
                throw new ArgumentException($"{what} token {i} is {ids[i]}, outside the vocabulary [0, {_predictor.VocabSize})");
            if (ids[i] == _predictor.MaskTokenId)
                throw new ArgumentException($"{what} token {i} is the mask token {ids[i]}");
        }
    }
}
