using Llada.Diffusion;

namespace Llada.Serving;

/// <summary>Why an answer ended.</summary>
public enum CompletionFinish
{
    /// <summary>The model wrote EOS or end-of-turn.</summary>
    EndOfText,
    /// <summary>The text reached one of the request's stop sequences (cut before it).</summary>
    StopSequence,
    /// <summary>The canvas (gen_length) was full without an end token.</summary>
    Length,
}

/// <summary>One generation: prompts (one per choice), reverse-process options and stop sequences.</summary>
public sealed record TextRequest
{
    /// <summary>Prompt token ids, one per choice; identical prompts give n samples of one prompt.</summary>
    public required IReadOnlyList<int[]> Prompts { get; init; }

    /// <summary>Reverse-process settings (gen_length, steps, block_length, ...).</summary>
    public required GenerationOptions Options { get; init; }

    /// <summary>Texts that end an answer; the answer is cut before the first one found.</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = [];
}

/// <summary>One finished answer.</summary>
/// <param name="Index">Choice index (the prompt's row).</param>
/// <param name="Text">Answer text: cut at EOS / end-of-turn / the first stop sequence, special tokens dropped.</param>
/// <param name="Tokens">The answer tokens the text came from (before the end token; covering the text when a stop
/// sequence cut it).</param>
/// <param name="Finish">Why it ended.</param>
public sealed record TextChoice(int Index, string Text, int[] Tokens, CompletionFinish Finish);

/// <summary>The result of <see cref="TextGenerator.CompleteAsync"/>.</summary>
/// <param name="Choices">One answer per prompt.</param>
/// <param name="PromptTokens">Prompt tokens summed over distinct prompts (n samples of one prompt count it once).</param>
/// <param name="Steps">Reverse-process steps that ran.</param>
/// <param name="Elapsed">Wall time of the generation (excluding the wait for the model).</param>
public sealed record TextCompletion(IReadOnlyList<TextChoice> Choices, int PromptTokens, int Steps, TimeSpan Elapsed)
{
    /// <summary>Answer tokens summed over the choices.</summary>
    public int CompletionTokens => Choices.Sum(c => c.Tokens.Length);
}

/// <summary>Text of choice <paramref name="Choice"/> that just became final.</summary>
public readonly record struct TextDelta(int Choice, string Text);

/// <summary>An item of <see cref="TextGenerator.StreamAsync"/>: a text delta, or (last) the whole completion.</summary>
public sealed record TextUpdate(TextDelta? Delta, TextCompletion? Completion);
