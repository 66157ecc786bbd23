using Llada.Diffusion;
using Llada.Tokenization;

namespace Llada.Serving;

/// <summary>One finished exchange of a <see cref="ChatSession"/>.</summary>
/// <param name="User">The user's message.</param>
/// <param name="Assistant">The answer text.</param>
/// <param name="Tokens">The exchange's ids in the prompt: the user turn with the assistant header, then the
/// generated answer tokens up to and including its end-of-turn token.</param>
public sealed record ChatExchange(string User, string Assistant, int[] Tokens);

/// <summary>The prompt of the next turn.</summary>
/// <param name="Tokens">Prompt ids: BOS, system turn, kept exchanges, the new user turn and the assistant header.</param>
/// <param name="DroppedExchanges">How many of the oldest exchanges had to go to fit prompt + gen_length into the
/// model's max_sequence_length.</param>
/// <param name="Notice">A sentence for the user when exchanges were dropped, else null.</param>
public sealed record ChatPrompt(int[] Tokens, int DroppedExchanges, string? Notice);

/// <summary>The answer of one turn.</summary>
public sealed record ChatReply(string Text, ChatPrompt Prompt, TextCompletion Completion);

/// <summary>
/// A multi-turn conversation in the tokenizer's chat template. As in LLaDA's chat.py, the history is kept as ids:
/// each generated answer stays exactly as generated, up to and including its end-of-turn token, instead of being
/// re-tokenised. When prompt + gen_length would exceed max_sequence_length the oldest exchanges are dropped (the
/// system prompt stays) and the reply says so.
/// </summary>
public sealed class ChatSession
{
    private readonly TextGenerator _generator;
    private readonly List<ChatExchange> _history = [];
    private readonly int[] _prefix;
    private int[] _system = [];

    /// <summary>Starts an empty conversation, optionally with a system prompt.</summary>
    public ChatSession(TextGenerator generator, string? systemPrompt = null)
    {
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        // The BOS (if any) the template puts in front of a whole conversation, once.
        int[] probe = generator.Tokenizer.EncodeChat([new ChatMessage("user", "")], addGenerationPrompt: true);
        _prefix = PrefixOf(probe);
        Reset(systemPrompt);
    }

    /// <summary>The system prompt, or null.</summary>
    public string? SystemPrompt { get; private set; }

    /// <summary>The exchanges still in the prompt, oldest first.</summary>
    public IReadOnlyList<ChatExchange> History => _history;

    /// <summary>Forgets the history; a non-null <paramref name="systemPrompt"/> replaces the system prompt.</summary>
    public void Reset(string? systemPrompt = null)
    {
        _history.Clear();
        if (systemPrompt is not null) SystemPrompt = systemPrompt.Length == 0 ? null : systemPrompt;
        _system = SystemPrompt is null ? [] : Turn(new ChatMessage("system", SystemPrompt), addGenerationPrompt: false);
    }

    /// <summary>
    /// The prompt for <paramref name="userMessage"/> with room for <paramref name="genLength"/> answer tokens, dropping
    /// the oldest exchanges if needed. Does not change the session. Throws <see cref="ArgumentException"/> when even
    /// the system prompt and this message alone leave no room.
    /// </summary>
    public ChatPrompt Prepare(string userMessage, int genLength)
    {
        ArgumentNullException.ThrowIfNull(userMessage);
        int[] user = Turn(new ChatMessage("user", userMessage), addGenerationPrompt: true);
        int fixedLength = _prefix.Length + _system.Length + user.Length;
        int max = _generator.MaxSequenceLength;
        if (fixedLength + genLength > max)
            throw new ArgumentException(
                $"the message ({fixedLength} prompt tokens with the system prompt) + gen_length {genLength} exceeds the model's max_sequence_length {max}");
        int keepFrom = _history.Count, total = fixedLength;
        while (keepFrom > 0 && total + _history[keepFrom - 1].Tokens.Length + genLength <= max)
            total += _history[--keepFrom].Tokens.Length;
        var tokens = new List<int>(total);
        tokens.AddRange(_prefix);
        tokens.AddRange(_system);
        for (int i = keepFrom; i < _history.Count; i++) tokens.AddRange(_history[i].Tokens);
        tokens.AddRange(user);
        string? notice = keepFrom == 0 ? null :
            $"history trimmed: dropped the {(keepFrom == 1 ? "oldest exchange" : $"{keepFrom} oldest exchanges")} so that the prompt ({total} tokens) + gen_length {genLength} fits max_sequence_length {max}";
        return new ChatPrompt(tokens.ToArray(), keepFrom, notice);
    }

    /// <summary>
    /// Sends <paramref name="userMessage"/>, generates the answer with <paramref name="options"/> and keeps both in the
    /// history. On cancellation or error the session is unchanged.
    /// </summary>
    public async Task<ChatReply> SendAsync(string userMessage, GenerationOptions options,
        IProgress<ReverseProcessStep>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var prompt = Prepare(userMessage, options.GenLength);
        var completion = await _generator.CompleteAsync(new TextRequest { Prompts = [prompt.Tokens], Options = options },
            null, progress, cancellationToken).ConfigureAwait(false);
        Record(userMessage, prompt, completion.Choices[0]);
        return new ChatReply(completion.Choices[0].Text, prompt, completion);
    }

    /// <summary>Adds a finished turn: drops what <paramref name="prompt"/> dropped and appends the exchange.</summary>
    public void Record(string userMessage, ChatPrompt prompt, TextChoice answer)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(answer);
        _history.RemoveRange(0, Math.Min(prompt.DroppedExchanges, _history.Count));
        int[] user = Turn(new ChatMessage("user", userMessage), addGenerationPrompt: true);
        // The answer ends its turn with end-of-turn whether the model wrote it, wrote EOS or ran out of canvas.
        int[] end = _generator.EndOfTurnTokenId is { } eot ? [eot] : [_generator.EosTokenId];
        _history.Add(new ChatExchange(userMessage, answer.Text, [.. user, .. answer.Tokens, .. end]));
    }

    /// <summary>One message rendered alone, without the BOS the template puts in front of a conversation.</summary>
    private int[] Turn(ChatMessage message, bool addGenerationPrompt)
    {
        int[] ids = _generator.Tokenizer.EncodeChat([message], addGenerationPrompt);
        int bos = PrefixOf(ids).Length;
        return ids[bos..];
    }

    private int[] PrefixOf(int[] ids) =>
        _generator.Tokenizer.BosTokenId is { } bos && ids.Length > 0 && ids[0] == bos ? [bos] : [];
}
