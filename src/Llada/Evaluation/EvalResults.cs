namespace Llada.Evaluation;

/// <summary>A task-level number with its standard error (null when it has none, e.g. an exact NLL).</summary>
/// <param name="Name">accuracy, nats_per_token, bits_per_token or perplexity.</param>
/// <param name="Value">The estimate.</param>
/// <param name="StandardError">Its standard error, or null.</param>
public sealed record Metric(string Name, double Value, double? StandardError);

/// <summary>
/// The result of one item. Fields not relevant to the task type are null: perplexity sets <see cref="Tokens"/>,
/// <see cref="Nll"/> (nats) and <see cref="StandardError"/>; choice sets <see cref="Predicted"/>, <see cref="Answer"/>,
/// <see cref="Scores"/> and <see cref="ScoreErrors"/>; generate sets <see cref="Output"/>. Choice and generate set
/// <see cref="Correct"/>.
/// </summary>
public sealed record ItemResult(int Index, int Line, string? Id)
{
    /// <summary>Whether the answer was right (choice, generate).</summary>
    public bool? Correct { get; init; }
    /// <summary>Scored tokens (perplexity).</summary>
    public int? Tokens { get; init; }
    /// <summary>Negative log-likelihood in nats: an upper bound for diffusion models, exact for AR (perplexity).</summary>
    public double? Nll { get; init; }
    /// <summary>Monte Carlo standard error of <see cref="Nll"/> (0 when exact).</summary>
    public double? StandardError { get; init; }
    /// <summary>Index of the best-scoring choice.</summary>
    public int? Predicted { get; init; }
    /// <summary>Index of the correct choice.</summary>
    public int? Answer { get; init; }
    /// <summary>log p(choice | prompt) per choice, in nats (a lower bound for diffusion models).</summary>
    public IReadOnlyList<double>? Scores { get; init; }
    /// <summary>Monte Carlo standard error of each score (0 when exact).</summary>
    public IReadOnlyList<double>? ScoreErrors { get; init; }
    /// <summary>The generated answer text.</summary>
    public string? Output { get; init; }
}

/// <summary>The result of one task.</summary>
/// <param name="Name">Task name.</param>
/// <param name="Type">Task type.</param>
/// <param name="Path">Task file.</param>
/// <param name="Total">Items to evaluate (after --limit).</param>
/// <param name="Items">Items finished, in order.</param>
/// <param name="Complete">False when the run was cancelled before every item was done.</param>
/// <param name="Bound">Perplexity tasks: true when the numbers are ELBO upper bounds (diffusion), false when exact.</param>
/// <param name="ElapsedSeconds">Wall time.</param>
public sealed record TaskResult(string Name, EvalTaskType Type, string Path, int Total, IReadOnlyList<ItemResult> Items,
    bool Complete, bool Bound, double ElapsedSeconds)
{
    /// <summary>Items finished.</summary>
    public int Count => Items.Count;

    /// <summary>Correct answers (choice, generate).</summary>
    public int CorrectCount => Items.Count(i => i.Correct == true);

    /// <summary>Scored tokens (perplexity).</summary>
    public long TokenCount => Items.Sum(i => (long)(i.Tokens ?? 0));

    /// <summary>
    /// Task metrics over the finished items. Choice and generate: accuracy with the binomial standard error
    /// sqrt(p (1 - p) / n). Perplexity: nats_per_token = sum NLL / sum tokens with the Monte Carlo standard error
    /// sqrt(sum se_i^2) / tokens, bits_per_token = nats / ln 2, perplexity = exp(nats_per_token) with the delta-method
    /// error perplexity * se (null errors for an exact NLL).
    /// </summary>
    public IReadOnlyList<Metric> Metrics()
    {
        if (Items.Count == 0) return [];
        if (Type != EvalTaskType.Perplexity)
        {
            double p = (double)CorrectCount / Count;
            return [new Metric("accuracy", p, Math.Sqrt(p * (1 - p) / Count))];
        }
        double tokens = TokenCount, nll = Items.Sum(i => i.Nll ?? 0);
        double variance = Items.Sum(i => (i.StandardError ?? 0) * (i.StandardError ?? 0));
        double nats = nll / tokens;
        double? se = Bound ? Math.Sqrt(variance) / tokens : null;
        return
        [
            new Metric("nats_per_token", nats, se),
            new Metric("bits_per_token", nats / Math.Log(2), se / Math.Log(2)),
            new Metric("perplexity", Math.Exp(nats), se * Math.Exp(nats)),
        ];
    }
}

/// <summary>Progress of an evaluation: <paramref name="Done"/> of <paramref name="Total"/> items of a task.</summary>
public sealed record EvalProgress(string Task, int Done, int Total, int? Correct, ItemResult? Last);
