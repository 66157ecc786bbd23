namespace Llada.Training.Data;

/// <summary>
/// The tokenizer as the data pipeline sees it: text in, ids out. Kept this small so the data code does not depend
/// on a particular tokenizer implementation.
/// </summary>
public interface ITextEncoder
{
    /// <summary>
    /// A string that changes whenever encoding could change (e.g. a hash of tokenizer.json). It is part of every
    /// token cache's fingerprint, so a cache built with another tokenizer is rebuilt.
    /// </summary>
    string Identity { get; }

    /// <summary>Number of ids the tokenizer can produce; every id is in [0, VocabSize).</summary>
    int VocabSize { get; }

    /// <summary>Encodes <paramref name="text"/> (special-token strings inside it included) into ids.</summary>
    int[] Encode(string text);
}

/// <summary>An <see cref="ITextEncoder"/> made from a delegate.</summary>
/// <param name="encode">The encoding function.</param>
/// <param name="vocabSize">Vocabulary size of the tokenizer.</param>
/// <param name="identity">See <see cref="ITextEncoder.Identity"/>.</param>
public sealed class DelegateTextEncoder(Func<string, int[]> encode, int vocabSize, string identity) : ITextEncoder
{
    /// <inheritdoc/>
    public string Identity { get; } = identity;

    /// <inheritdoc/>
    public int VocabSize { get; } = vocabSize > 0
        ? vocabSize
        : throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "Vocabulary size must be positive.");

    /// <inheritdoc/>
    public int[] Encode(string text) => encode(text);
}

/// <summary>
/// Renders messages with the chat template into prompt text (BOS and special tokens as their strings). With
/// <paramref name="addGenerationPrompt"/> the text ends with the header that opens the assistant's answer.
/// Earlier answers must be rendered with their end-of-turn marker, as the model saw them.
/// </summary>
public delegate string ChatRenderer(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt);
