namespace Llada.Tokenization;

/// <summary>Settings of <see cref="BpeTrainer"/>.</summary>
public sealed record BpeTrainerOptions
{
    /// <summary>
    /// The GPT-4 (cl100k) / Llama-3 pre-tokenisation pattern: case-insensitive English contractions, letter runs with
    /// one optional leading non-letter, numbers in groups of 1-3 digits, punctuation runs (with trailing line breaks),
    /// line-break runs, and whitespace where a run before a word keeps its last space for that word (<c>\s+(?!\S)</c>).
    /// </summary>
    public const string Llama3Regex =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>LLaDA's beginning-of-sequence token.</summary>
    public const string LladaBos = "<|startoftext|>";
    /// <summary>LLaDA's end-of-sequence token (also used for padding).</summary>
    public const string LladaEos = "<|endoftext|>";
    /// <summary>LLaDA's mask token.</summary>
    public const string LladaMask = "<|mdm_mask|>";

    /// <summary>LLaDA's special tokens in the order they get ids after the learned vocabulary.</summary>
    public static IReadOnlyList<string> LladaSpecialTokens { get; } =
        [LladaBos, LladaEos, LladaMask, "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"];

    /// <summary>
    /// Total vocabulary size: 256 byte symbols + learned merges + <see cref="SpecialTokens"/>. Training stops earlier
    /// when no pair reaches <see cref="MinFrequency"/>, so the written vocabulary can be smaller.
    /// </summary>
    public int VocabSize { get; init; } = 8192;

    /// <summary>A pair is merged only when it occurs at least this often (weighted by word counts).</summary>
    public int MinFrequency { get; init; } = 2;

    /// <summary>Special (added) tokens, given the ids right after the learned vocabulary, in this order.</summary>
    public IReadOnlyList<string> SpecialTokens { get; init; } = LladaSpecialTokens;

    /// <summary>The Split pre-tokenisation regex (Hugging Face / Rust regex syntax), applied before ByteLevel.</summary>
    public string Regex { get; init; } = Llama3Regex;

    /// <summary>tokenizer_config.json bos_token (must be one of <see cref="SpecialTokens"/>, or null for none).</summary>
    public string? BosToken { get; init; } = LladaBos;
    /// <summary>tokenizer_config.json eos_token.</summary>
    public string? EosToken { get; init; } = LladaEos;
    /// <summary>tokenizer_config.json pad_token (LLaDA pads with EOS).</summary>
    public string? PadToken { get; init; } = LladaEos;
    /// <summary>tokenizer_config.json mask_token (the diffusion mask).</summary>
    public string? MaskToken { get; init; } = LladaMask;

    /// <summary>tokenizer_config.json model_max_length.</summary>
    public int ModelMaxLength { get; init; } = 4096;

    /// <summary>tokenizer_config.json chat_template; by default <see cref="ChatTemplate.LladaDefault"/>.</summary>
    public string ChatTemplate { get; init; } = Tokenization.ChatTemplate.LladaDefault.Source;

    /// <summary>The smallest <see cref="VocabSize"/> allowed: the 256 byte symbols plus <see cref="SpecialTokens"/>.</summary>
    public int MinimumVocabSize => ByteLevelAlphabetSize + SpecialTokens.Count;

    internal void Validate()
    {
        if (MinFrequency < 1) throw new ArgumentOutOfRangeException(nameof(MinFrequency), MinFrequency, "MinFrequency must be at least 1.");
        int minimum = MinimumVocabSize;
        if (VocabSize < minimum)
            throw new ArgumentOutOfRangeException(nameof(VocabSize), VocabSize,
                $"VocabSize must be at least {minimum} (256 byte symbols + {SpecialTokens.Count} special tokens).");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in SpecialTokens)
        {
            if (string.IsNullOrEmpty(t)) throw new ArgumentException("A special token is empty.", nameof(SpecialTokens));
            if (!seen.Add(t)) throw new ArgumentException($"Special token '{t}' is listed twice.", nameof(SpecialTokens));
        }
        foreach (var (name, token) in new[] { ("BosToken", BosToken), ("EosToken", EosToken), ("PadToken", PadToken), ("MaskToken", MaskToken) })
            if (token is not null && !seen.Contains(token))
                throw new ArgumentException($"{name} '{token}' is not one of SpecialTokens.", name);
        if (ModelMaxLength < 1) throw new ArgumentOutOfRangeException(nameof(ModelMaxLength), ModelMaxLength, "ModelMaxLength must be positive.");
    }

    internal const int ByteLevelAlphabetSize = 256;
}

/// <summary>Progress of <see cref="BpeTrainer"/>: <paramref name="Stage"/> is "count" (bytes read) or "merge" (merges done).</summary>
public readonly record struct BpeTrainingProgress(string Stage, long Completed, long Total);
