using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Llada.Diffusion;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using TemplateMessage = Llada.Tokenization.ChatMessage;

namespace Llada.Serving;

/// <summary>
/// LLaDA as a Microsoft.Extensions.AI <see cref="IChatClient"/>. Messages go through the tokenizer's chat template;
/// <see cref="ChatOptions"/> map to the reverse process: MaxOutputTokens → gen_length (rounded up to a multiple of
/// the block length), Temperature, Seed, StopSequences, and through AdditionalProperties the LLaDA knobs
/// <c>steps</c>, <c>block_length</c>, <c>remasking</c>, <c>cfg_scale</c>, <c>threshold</c>, <c>cache</c>. Streaming yields each
/// block's text once every position of the block is committed. Text is cut at EOS / end-of-turn.
/// </summary>
public sealed class LladaChatClient : IChatClient
{
    private readonly TextGenerator _generator;
    private readonly bool _ownsGenerator;

    /// <summary>A client over <paramref name="generator"/>; <paramref name="defaults"/> are the options a request
    /// does not override (default: <see cref="TextGenerator.DefaultOptions"/>).</summary>
    public LladaChatClient(TextGenerator generator, GenerationOptions? defaults = null, bool ownsGenerator = false)
    {
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        Defaults = defaults ?? generator.DefaultOptions();
        _ownsGenerator = ownsGenerator;
        Metadata = new ChatClientMetadata("llada", null, generator.ModelId);
    }

    /// <summary>Options used where a request sets nothing.</summary>
    public GenerationOptions Defaults { get; }

    /// <summary>Provider "llada" and the model id.</summary>
    public ChatClientMetadata Metadata { get; }

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AIChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var request = BuildRequest(messages, options);
        var completion = await _generator.CompleteAsync(request, null, null, cancellationToken).ConfigureAwait(false);
        var choice = completion.Choices[0];
        return new ChatResponse(new AIChatMessage(ChatRole.Assistant, choice.Text))
        {
            ResponseId = NewId(),
            ModelId = _generator.ModelId,
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = FinishReason(choice.Finish),
            Usage = Usage(completion),
        };
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AIChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var request = BuildRequest(messages, options);
        string id = NewId();
        await foreach (var update in _generator.StreamAsync(request, cancellationToken).ConfigureAwait(false))
        {
            if (update.Delta is { } delta)
            {
                yield return new ChatResponseUpdate(ChatRole.Assistant, delta.Text) { ResponseId = id, MessageId = id, ModelId = _generator.ModelId };
            }
            else if (update.Completion is { } completion)
            {
                yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(Usage(completion))])
                {
                    ResponseId = id,
                    MessageId = id,
                    ModelId = _generator.ModelId,
                    FinishReason = FinishReason(completion.Choices[0].Finish),
                };
            }
        }
    }

    /// <summary>The generation <paramref name="messages"/> and <paramref name="options"/> ask for.</summary>
    public TextRequest BuildRequest(IEnumerable<AIChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var conversation = messages.Select(m => new TemplateMessage(m.Role.Value, m.Text)).ToList();
        if (conversation.Count == 0) throw new ArgumentException("at least one message is needed", nameof(messages));
        var sampling = new SamplingRequest
        {
            MaxTokens = options?.MaxOutputTokens,
            Temperature = options?.Temperature,
            Seed = options?.Seed is { } seed ? unchecked((int)seed) : null,
            Steps = Knob<int>(options, "steps"),
            BlockLength = Knob<int>(options, "block_length"),
            CfgScale = Knob<double>(options, "cfg_scale"),
            Threshold = Knob<double>(options, "threshold"),
            Remasking = KnobString(options, "remasking"),
            Cache = KnobString(options, "cache"),
        };
        return new TextRequest
        {
            Prompts = [_generator.EncodeChat(conversation)],
            Options = sampling.Resolve(Defaults),
            StopSequences = options?.StopSequences?.Where(s => s.Length > 0).ToArray() ?? [],
        };
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return Metadata;
        if (serviceType.IsInstanceOfType(this)) return this;
        if (serviceType.IsInstanceOfType(_generator)) return _generator;
        return null;
    }

    /// <summary>Disposes the generator if this client owns it.</summary>
    public void Dispose()
    {
        if (_ownsGenerator) _generator.Dispose();
    }

    private static ChatFinishReason FinishReason(CompletionFinish finish) =>
        finish == CompletionFinish.Length ? ChatFinishReason.Length : ChatFinishReason.Stop;

    private static UsageDetails Usage(TextCompletion c) => new()
    {
        InputTokenCount = c.PromptTokens,
        OutputTokenCount = c.CompletionTokens,
        TotalTokenCount = c.PromptTokens + c.CompletionTokens,
    };

    private static string NewId() => "chatcmpl-" + Guid.NewGuid().ToString("N");

    private static T? Knob<T>(ChatOptions? options, string name) where T : struct
    {
        if (options?.AdditionalProperties is not { } props || !props.TryGetValue(name, out object? value) || value is null) return null;
        try
        {
            if (value is JsonElement json)
                value = json.ValueKind == JsonValueKind.Number ? json.GetDouble() : json.ToString();
            if (value is string s) value = double.Parse(s, CultureInfo.InvariantCulture);
            double d = Convert.ToDouble(value, CultureInfo.InvariantCulture);
            if (typeof(T) == typeof(int))
            {
                if (d != Math.Floor(d) || d < int.MinValue || d > int.MaxValue) throw new FormatException();
                return (T)(object)(int)d;
            }
            return (T)(object)d;
        }
        catch (Exception ex) when (ex is FormatException or InvalidCastException or OverflowException)
        {
            throw new InvalidSettingException(name, $"{name} must be {(typeof(T) == typeof(int) ? "an integer" : "a number")} (got '{value}')");
        }
    }

    private static string? KnobString(ChatOptions? options, string name) =>
        options?.AdditionalProperties is { } props && props.TryGetValue(name, out object? value) && value is not null
            ? value is JsonElement { ValueKind: JsonValueKind.String } json ? json.GetString() : value.ToString()
            : null;
}
