namespace Llada.Evaluation;

/// <summary>What an evaluation task measures.</summary>
public enum EvalTaskType
{
    /// <summary>Held-out text: ELBO bound on the NLL (diffusion) or exact NLL (autoregressive), per token.</summary>
    Perplexity,
    /// <summary>Multiple choice ranked by likelihood (Eq. 6 for diffusion, exact for autoregressive): accuracy.</summary>
    Choice,
    /// <summary>Generate an answer and compare it with the accepted answers: accuracy.</summary>
    Generate,
}

/// <summary>How a generated answer is compared with the accepted ones (both trimmed first).</summary>
public enum MatchRule
{
    /// <summary>The trimmed answer equals an accepted answer (ordinal comparison).</summary>
    Exact,
    /// <summary>The answer contains an accepted answer.</summary>
    Contains,
    /// <summary>A .NET regular expression finds a match in the answer.</summary>
    Regex,
}

/// <summary>One line of a task file.</summary>
/// <param name="Line">1-based line number in <see cref="Source"/>.</param>
/// <param name="Source">The file the item came from.</param>
/// <param name="Id">The item's "id" field, or null.</param>
public abstract record EvalItem(int Line, string Source, string? Id)
{
    /// <summary>"file:line", for messages and reports.</summary>
    public string Where => $"{Source}:{Line}";
}

/// <summary>A text whose likelihood is measured.</summary>
public sealed record PerplexityItem(int Line, string Source, string? Id, string Text) : EvalItem(Line, Source, Id);

/// <summary>A question with candidate answers; <paramref name="Answer"/> indexes the correct one.</summary>
public sealed record ChoiceItem(int Line, string Source, string? Id, string Prompt, IReadOnlyList<string> Choices, int Answer)
    : EvalItem(Line, Source, Id);

/// <summary>A prompt whose generated answer must match one of <paramref name="Accept"/> (or <paramref name="Pattern"/>).</summary>
public sealed record GenerateItem(int Line, string Source, string? Id, string Prompt, IReadOnlyList<string> Accept,
    string? Pattern, MatchRule Match) : EvalItem(Line, Source, Id);

/// <summary>A parsed task file.</summary>
/// <param name="Name">Task name: the header's "eval_task", else the file name without extension.</param>
/// <param name="Type">Task type; every item has it.</param>
/// <param name="Path">The task file given.</param>
/// <param name="Items">Items in file order.</param>
/// <param name="GenLength">The header's "gen_length" (answer canvas for generate tasks), if any.</param>
/// <param name="Description">The header's "description", if any.</param>
public sealed record EvalTask(string Name, EvalTaskType Type, string Path, IReadOnlyList<EvalItem> Items,
    int? GenLength = null, string? Description = null)
{
    /// <summary>The first <paramref name="limit"/> items (all when null).</summary>
    public EvalTask Take(int? limit) => limit is { } n && n < Items.Count ? this with { Items = Items.Take(n).ToArray() } : this;

    /// <summary>Lower-case name of a type as written in task files.</summary>
    public static string TypeName(EvalTaskType type) => type switch
    {
        EvalTaskType.Perplexity => "perplexity",
        EvalTaskType.Choice => "choice",
        _ => "generate",
    };
}

/// <summary>A task file that cannot be used; the message starts with "file:line:".</summary>
public sealed class TaskFormatException(string path, int line, string message)
    : Exception(line > 0 ? $"{path}:{line}: {message}" : $"{path}: {message}")
{
    /// <summary>The file.</summary>
    public string Path { get; } = path;
    /// <summary>1-based line, or 0 for the file as a whole.</summary>
    public int Line { get; } = line;
}
