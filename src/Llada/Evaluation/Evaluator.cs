using System.Diagnostics;
using System.Text.RegularExpressions;
using Llada.Diffusion;

namespace Llada.Evaluation;

/// <summary>Settings of an evaluation run.</summary>
public sealed record EvaluationOptions
{
    /// <summary>Monte Carlo samples per likelihood estimate (diffusion models).</summary>
    public int McNum { get; init; } = 128;
    /// <summary>Rows per forward pass: Monte Carlo samples (likelihoods) or prompts (diffusion generation).</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>Classifier-free guidance of the choice likelihoods (diffusion models only); 0 is off.</summary>
    public double CfgScale { get; init; }
    /// <summary>Seed of every random draw (masks, sampling).</summary>
    public int Seed { get; init; }
    /// <summary>Wrap prompts of choice and generate tasks in the chat template (one user turn).</summary>
    public bool ChatTemplate { get; init; } = true;
    /// <summary>Reverse-process settings of a generate task (also gives gen_length and temperature for AR decoding).</summary>
    public Func<EvalTask, GenerationOptions>? Generation { get; init; }
    /// <summary>Longest sequence a perplexity window may use; null: the model's limit.</summary>
    public int? MaxContext { get; init; }
    /// <summary>Mask draws of the likelihood bounds (diffusion models): Eq. 6 by default.</summary>
    public LikelihoodEstimator Estimator { get; init; } = LikelihoodEstimator.MaskCount;
    /// <summary>Stratify the Eq. 6 mask counts within a batch (the default).</summary>
    public bool Stratified { get; init; } = true;
}

/// <summary>
/// Runs evaluation tasks on an <see cref="EvaluatedModel"/>. Perplexity: the text is cut into windows that fit the
/// model (the first conditioned on BOS, later ones on the preceding tokens, see <see cref="Windows"/>) and each
/// window's continuation is scored by the Eq. 6 bound (diffusion, which in expectation equals the Eq. 3 bound) or
/// exactly (AR). Choice: each choice is scored as the answer to the prompt and the best one wins. Generate: the
/// answer is sampled and matched. Cancellation stops between items and returns the finished ones marked incomplete.
/// </summary>
public sealed class Evaluator
{
    private readonly EvaluatedModel _model;
    private readonly EvaluationOptions _options;
    private readonly ElboLikelihood? _elbo;
    private readonly AutoregressiveLikelihood? _exact;

    /// <summary>Creates an evaluator; checks the options.</summary>
    public Evaluator(EvaluatedModel model, EvaluationOptions options)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if (options.McNum < 1) throw new ArgumentException($"mc_num must be at least 1 (got {options.McNum})");
        if (options.BatchSize < 1) throw new ArgumentException($"batch_size must be at least 1 (got {options.BatchSize})");
        if (!double.IsFinite(options.CfgScale) || options.CfgScale < 0) throw new ArgumentException($"cfg_scale must be finite and >= 0 (got {options.CfgScale})");
        if (options.CfgScale > 0 && model.Kind == ModelKind.Autoregressive)
            throw new ArgumentException("cfg_scale applies to diffusion models; an autoregressive model's likelihood is exact");
        if (options.MaxContext is < 2) throw new ArgumentException($"max_context must be at least 2 tokens (got {options.MaxContext})");
        if (model.Kind == ModelKind.Diffusion) _elbo = new ElboLikelihood(model.Predictor);
        else _exact = new AutoregressiveLikelihood(model.Predictor);
    }

    /// <summary>Evaluates every item of <paramref name="task"/>.</summary>
    public TaskResult Run(EvalTask task, IProgress<EvalProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(task);
        var watch = Stopwatch.StartNew();
        var results = new List<ItemResult>(task.Items.Count);
        int correct = 0;
        void Done(ItemResult r)
        {
            results.Add(r);
            if (r.Correct == true) correct++;
            progress?.Report(new EvalProgress(task.Name, results.Count, task.Items.Count,
                task.Type == EvalTaskType.Perplexity ? null : correct, r));
        }
        bool complete = true;
        try
        {
            switch (task.Type)
            {
                case EvalTaskType.Perplexity:
                    for (int i = 0; i < task.Items.Count; i++) Done(Perplexity(i, (PerplexityItem)task.Items[i], cancellationToken));
                    break;
                case EvalTaskType.Choice:
                    for (int i = 0; i < task.Items.Count; i++) Done(Choice(i, (ChoiceItem)task.Items[i], cancellationToken));
                    break;
                default:
                    Generate(task, Done, cancellationToken);
                    break;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            complete = false;
        }
        return new TaskResult(task.Name, task.Type, task.Path, task.Items.Count, results, complete && results.Count == task.Items.Count,
            _model.Kind == ModelKind.Diffusion, watch.Elapsed.TotalSeconds);
    }

    private LikelihoodOptions Likelihood(int seed) => new()
    {
        Samples = _options.McNum, BatchSize = _options.BatchSize, CfgScale = _options.CfgScale, Seed = seed,
        Estimator = _options.Estimator, Stratified = _options.Stratified,
    };

    // Distinct, reproducible seeds per item and window, so Monte Carlo errors of different windows are independent.
    // A keyed SplitMix64 hash, not HashCode.Combine: that one is randomised per process, so the same --seed gave
    // different reports in different runs.
    private int SeedFor(int item, int window) => unchecked((int)CounterRandom.For(_options.Seed, item, window, 0x5EED).NextUInt64());

    private ItemResult Perplexity(int index, PerplexityItem item, CancellationToken ct)
    {
        int[] text = _model.Tokenizer.Encode(item.Text);
        int? bos = _model.Tokenizer.BosTokenId;
        int maxLen = Math.Min(_model.Predictor.MaxSequenceLength, _options.MaxContext ?? int.MaxValue);
        double logLikelihood = 0, variance = 0;
        int tokens = 0, window = 0;
        foreach (var (context, target) in Windows(text, bos, maxLen))
        {
            ct.ThrowIfCancellationRequested();
            if (_elbo is not null)
            {
                var estimate = _elbo.Estimate(context.Span, target.Span, Likelihood(SeedFor(index, window)) with { CfgScale = 0 }, ct);
                logLikelihood += estimate.LogLikelihood;
                if (estimate.Samples > 1) variance += estimate.StandardError * estimate.StandardError;
            }
            else logLikelihood += _exact!.LogLikelihood(context.Span, target.Span, ct);
            tokens += target.Length;
            window++;
        }
        if (tokens == 0) throw new ArgumentException($"{item.Where}: the text has no token to score (it needs at least {(bos is null ? 2 : 1)})");
        return new ItemResult(index, item.Line, item.Id) { Tokens = tokens, Nll = -logLikelihood, StandardError = Math.Sqrt(variance) };
    }

    /// <summary>
    /// Cuts <paramref name="text"/> into (context, continuation) windows of at most <paramref name="maxLen"/> tokens that
    /// score every token once: the first window is [BOS] + the first maxLen - 1 tokens (without a BOS the first token
    /// is context and unscored); later windows score the next maxLen / 2 tokens conditioned on the maxLen - that
    /// many tokens before them (a sliding window, so no scored token lacks context).
    /// </summary>
    public static IEnumerable<(ReadOnlyMemory<int> Context, ReadOnlyMemory<int> Continuation)> Windows(int[] text, int? bos, int maxLen)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLen, 2);
        int pos;
        if (bos is { } b)
        {
            if (text.Length == 0) yield break;
            pos = Math.Min(text.Length, maxLen - 1);
            yield return (new[] { b }, text.AsMemory(0, pos));
        }
        else
        {
            if (text.Length < 2) yield break;
            pos = Math.Min(text.Length, maxLen);
            yield return (text.AsMemory(0, 1), text.AsMemory(1, pos - 1));
        }
        int stride = maxLen / 2;
        while (pos < text.Length)
        {
            int len = Math.Min(stride, text.Length - pos), contextLength = maxLen - len;
            yield return (text.AsMemory(pos - contextLength, contextLength), text.AsMemory(pos, len));
            pos += len;
        }
    }

    private int[] EncodeAnswer(string text)
    {
        int[] ids = _model.Tokenizer.Encode(text.Trim());
        // The SFT response format: answer then end-of-turn, which also tells "67" from "672".
        if (_options.ChatTemplate && _model.EndOfTurnTokenId is { } eot) ids = [.. ids, eot];
        return ids;
    }

    private ItemResult Choice(int index, ChoiceItem item, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        int[] prompt = _model.EncodePrompt(item.Prompt, _options.ChatTemplate);
        int[][] choices = item.Choices.Select(EncodeAnswer).ToArray();
        for (int c = 0; c < choices.Length; c++)
            if (choices[c].Length == 0) throw new ArgumentException($"{item.Where}: choice {c} is empty after tokenisation");
        var scores = new double[choices.Length];
        var errors = new double[choices.Length];
        int best;
        if (_elbo is not null)
        {
            var ranked = _elbo.RankChoices(prompt, choices, Likelihood(SeedFor(index, 0)), ct);
            foreach (var r in ranked) { scores[r.Index] = r.Estimate.LogLikelihood; errors[r.Index] = r.Estimate.Samples > 1 ? r.Estimate.StandardError : 0; }
            best = ranked[0].Index;
        }
        else
        {
            best = 0;
            for (int c = 0; c < choices.Length; c++)
            {
                scores[c] = _exact!.LogLikelihood(prompt, choices[c], ct);
                if (scores[c] > scores[best]) best = c; // ties keep the lower index, as RankChoices does
            }
        }
        return new ItemResult(index, item.Line, item.Id)
        {
            Correct = best == item.Answer, Predicted = best, Answer = item.Answer, Scores = scores, ScoreErrors = errors,
        };
    }

    private void Generate(EvalTask task, Action<ItemResult> done, CancellationToken ct)
    {
        var options = (_options.Generation ?? throw new InvalidOperationException("generate tasks need EvaluationOptions.Generation"))(task);
        var items = task.Items.Cast<GenerateItem>().ToArray();
        var regexes = items.Select(i => i.Pattern is null ? null : new Regex(i.Pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1))).ToArray();
        ItemResult Score(int i, ReadOnlySpan<int> answer)
        {
            string output = _model.Tokenizer.Decode(answer, skipSpecialTokens: true);
            return new ItemResult(i, items[i].Line, items[i].Id) { Output = output, Correct = Matches(items[i], regexes[i], output) };
        }

        if (_model.Kind == ModelKind.Autoregressive)
        {
            var decoder = new AutoregressiveDecoder(_model.Predictor);
            for (int i = 0; i < items.Length; i++)
            {
                ct.ThrowIfCancellationRequested();
                int[] prompt = _model.EncodePrompt(items[i].Prompt, _options.ChatTemplate);
                int[] answer = decoder.Generate(prompt, options.GenLength, options.Temperature, options.Seed, _model.EosTokenId,
                    _model.EndOfTurnTokenId, i, ct);
                done(Score(i, answer));
            }
            return;
        }
        var sampler = new ReverseProcess(_model.Predictor);
        for (int first = 0; first < items.Length; first += _options.BatchSize)
        {
            ct.ThrowIfCancellationRequested();
            int rows = Math.Min(_options.BatchSize, items.Length - first);
            var prompts = new int[rows][];
            for (int r = 0; r < rows; r++) prompts[r] = _model.EncodePrompt(items[first + r].Prompt, _options.ChatTemplate);
            // Each batch gets its own seed so rows of different batches do not share random streams.
            var result = sampler.Generate(prompts, options with { Seed = options.Seed + first }, null, ct);
            for (int r = 0; r < rows; r++) done(Score(first + r, result.Answer(r)));
        }
    }

    /// <summary>Whether <paramref name="output"/> answers <paramref name="item"/> under its match rule (both sides trimmed).</summary>
    public static bool Matches(GenerateItem item, string output)
    {
        ArgumentNullException.ThrowIfNull(item);
        return Matches(item, item.Pattern is null ? null : new Regex(item.Pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)), output);
    }

    private static bool Matches(GenerateItem item, Regex? regex, string output)
    {
        string answer = output.Trim();
        return item.Match switch
        {
            MatchRule.Exact => item.Accept.Any(a => string.Equals(a.Trim(), answer, StringComparison.Ordinal)),
            MatchRule.Contains => item.Accept.Any(a => answer.Contains(a.Trim(), StringComparison.Ordinal)),
            _ => regex!.IsMatch(answer),
        };
    }
}
