using System.Buffers;
using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace Llada.Tokenization;

/// <summary>
/// A Hugging Face tokenizer.json byte-level BPE tokenizer (GPT-2 / Llama-3 / Qwen / LLaDA style) whose ids equal
/// Hugging Face's, plus the special tokens and chat template of an optional tokenizer_config.json.
/// Encoding: added tokens are cut out of the raw text first, the rest is normalised, pre-tokenised (Split
/// regexes, ByteLevel), mapped to byte-level characters and merged by BPE rank. Thread-safe.
/// </summary>
public sealed class Tokenizer
{
    private readonly string _source;
    private readonly BpeModel _model;
    private readonly TextNormalizer? _normalizer;
    private readonly List<PreTokenizerStep> _preTokenizer;
    private readonly bool _byteLevel;
    private readonly PostProcessor _postProcessor;
    private readonly DecoderKind _decoder;
    private readonly AddedTokenMatcher _rawMatcher;
    private readonly AddedTokenMatcher _normalizedMatcher;
    private readonly Dictionary<int, AddedToken> _addedById = new();
    private readonly Dictionary<string, int> _addedByContent = new(StringComparer.Ordinal);
    private readonly string[] _idToToken;

    private Tokenizer(string source, JsonElement root, JsonElement? config)
    {
        _source = source;
        _model = BpeModel.FromJson(root.GetProperty("model"), source);
        _normalizer = root.TryGetProperty("normalizer", out var n) ? TextNormalizer.FromJson(n, source) : null;
        _preTokenizer = root.TryGetProperty("pre_tokenizer", out var p) ? PreTokenizerStep.FromJson(p, source, out _byteLevel) : [];
        _decoder = root.TryGetProperty("decoder", out var d) ? TokenDecoder.FromJson(d, source) : DecoderKind.None;

        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var addedNode))
        {
            foreach (var t in addedNode.EnumerateArray())
            {
                bool special = JsonRead.Bool(t, "special", false);
                added.Add(new AddedToken(t.GetProperty("id").GetInt32(), JsonRead.String(t, "content", source, "added token"), special,
                    JsonRead.Bool(t, "lstrip", false), JsonRead.Bool(t, "rstrip", false), JsonRead.Bool(t, "single_word", false),
                    JsonRead.Bool(t, "normalized", !special)));
            }
        }
        foreach (var t in added)
        {
            _addedById[t.Id] = t;
            _addedByContent[t.Content] = t.Id;
        }
        AddedTokens = added;
        // Special tokens are always matched in raw text; "normalized" ones only after normalisation.
        _rawMatcher = new AddedTokenMatcher(added.Where(t => !t.Normalized || _normalizer is null));
        _normalizedMatcher = new AddedTokenMatcher(added.Where(t => t.Normalized && _normalizer is not null));

        int maxId = Math.Max(_model.Vocab.Count == 0 ? -1 : _model.Vocab.Values.Max(), added.Count == 0 ? -1 : added.Max(t => t.Id));
        _idToToken = new string[maxId + 1];
        foreach (var (token, id) in _model.Vocab) _idToToken[id] = token;
        foreach (var t in added) _idToToken[t.Id] = t.Content;

        // Special tokens named by tokenizer_config.json, else by their usual spellings.
        BosToken = ConfigToken(config, "bos_token") ?? FirstPresent("<|startoftext|>", "<|begin_of_text|>", "<s>", "<bos>");
        EosToken = ConfigToken(config, "eos_token") ?? FirstPresent("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>");
        PadToken = ConfigToken(config, "pad_token");
        MaskToken = ConfigToken(config, "mask_token") ?? FirstPresent("<|mdm_mask|>", "<mask>", "[MASK]");
        EndOfTurnToken = FirstPresent("<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>");

        var postProcessor = root.TryGetProperty("post_processor", out var pp) ? PostProcessor.FromJson(pp, source) : PostProcessor.None;
        bool? addBos = ConfigBool(config, "add_bos_token");
        bool? addEos = ConfigBool(config, "add_eos_token");
        // tokenizer.json's post-processor is authoritative; a config asking for BOS/EOS fills in only when it adds none.
        if (!postProcessor.AddsAnything && (addBos == true || addEos == true))
            postProcessor = PostProcessor.FromFlags(addBos == true ? BosTokenId : null, addEos == true ? EosTokenId : null);
        _postProcessor = postProcessor;
        AddBosToken = _postProcessor.Prefix.Count > 0 && _postProcessor.Prefix[0] == BosTokenId;

        string? template = ConfigChatTemplate(config, source);
        ChatTemplate = template is null ? ChatTemplate.LladaDefault : ChatTemplate.Parse(template);
        HasOwnChatTemplate = template is not null;
    }

    /// <summary>Loads a tokenizer.json (or tokenizer.json.gz) and, optionally, its tokenizer_config.json.</summary>
    /// <exception cref="InvalidDataException">Either file is not valid JSON or lacks what a byte-level BPE tokenizer needs (the message names the file).</exception>
    public static Tokenizer FromFile(string tokenizerJsonPath, string? tokenizerConfigPath = null)
    {
        using var json = OpenMaybeGzip(tokenizerJsonPath);
        using var config = tokenizerConfigPath is null ? null : OpenMaybeGzip(tokenizerConfigPath);
        return FromStreams(json, config, tokenizerJsonPath, tokenizerConfigPath);
    }

    /// <summary>
    /// Loads tokenizer.json (or tokenizer.json.gz) from a model directory, with tokenizer_config.json when present.
    /// </summary>
    public static Tokenizer FromDirectory(string directory)
    {
        string json = Path.Combine(directory, "tokenizer.json");
        if (!File.Exists(json) && File.Exists(json + ".gz")) json += ".gz";
        if (!File.Exists(json)) throw new FileNotFoundException($"No tokenizer.json (or tokenizer.json.gz) in '{directory}'.", json);
        string config = Path.Combine(directory, "tokenizer_config.json");
        return FromFile(json, File.Exists(config) ? config : null);
    }

    /// <summary>
    /// Loads from streams; <paramref name="sourceName"/> (and <paramref name="configSourceName"/>, default
    /// "tokenizer_config.json") name the data in error messages.
    /// </summary>
    /// <exception cref="InvalidDataException">Malformed JSON, or a structure that is not a Hugging Face tokenizer.json.</exception>
    public static Tokenizer FromStreams(Stream tokenizerJson, Stream? tokenizerConfig, string sourceName, string? configSourceName = null)
    {
        using var root = ParseJson(tokenizerJson, sourceName, maxDepth: 256);
        using var config = tokenizerConfig is null ? null : ParseJson(tokenizerConfig, configSourceName ?? "tokenizer_config.json", maxDepth: 64);
        if (root.RootElement.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{sourceName}: must be a JSON object, found {root.RootElement.ValueKind}");
        if (!root.RootElement.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{sourceName}: no \"model\" object; not a Hugging Face tokenizer.json");
        try
        {
            return new Tokenizer(sourceName, root.RootElement, config?.RootElement);
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            // A field the format requires is missing or has the wrong JSON type somewhere below the top level.
            throw new InvalidDataException($"{sourceName}: not a valid Hugging Face tokenizer.json ({ex.Message})", ex);
        }
    }

    private static JsonDocument ParseJson(Stream stream, string sourceName, int maxDepth)
    {
        try
        {
            return JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = maxDepth });
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{sourceName}: not valid JSON ({ex.Message})", ex);
        }
    }

    private static Stream OpenMaybeGzip(string path)
    {
        Stream file = File.OpenRead(path);
        return path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
    }

    /// <summary>Number of ids (largest id + 1), counting added tokens.</summary>
    public int VocabSize => _idToToken.Length;

    /// <summary>The tokenizer.json added tokens.</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>Beginning-of-sequence token text (tokenizer_config.json bos_token, else a usual spelling present).</summary>
    public string? BosToken { get; }
    /// <summary>End-of-sequence token text.</summary>
    public string? EosToken { get; }
    /// <summary>Padding token text, when tokenizer_config.json names one.</summary>
    public string? PadToken { get; }
    /// <summary>Mask token text (LLaDA: &lt;|mdm_mask|&gt;).</summary>
    public string? MaskToken { get; }
    /// <summary>End-of-turn token text (&lt;|eot_id|&gt;, &lt;|im_end|&gt;, ...).</summary>
    public string? EndOfTurnToken { get; }

    /// <summary>Id of <see cref="BosToken"/>.</summary>
    public int? BosTokenId => Id(BosToken);
    /// <summary>Id of <see cref="EosToken"/>.</summary>
    public int? EosTokenId => Id(EosToken);
    /// <summary>Id of <see cref="PadToken"/>.</summary>
    public int? PadTokenId => Id(PadToken);
    /// <summary>Id of <see cref="MaskToken"/>.</summary>
    public int? MaskTokenId => Id(MaskToken);
    /// <summary>Id of <see cref="EndOfTurnToken"/>.</summary>
    public int? EndOfTurnTokenId => Id(EndOfTurnToken);

    /// <summary>Whether <c>Encode(text, addSpecialTokens: true)</c> starts with BOS.</summary>
    public bool AddBosToken { get; }

    /// <summary>The chat template: tokenizer_config.json's, else <see cref="ChatTemplate.LladaDefault"/>.</summary>
    public ChatTemplate ChatTemplate { get; }

    /// <summary>True when the chat template came from tokenizer_config.json.</summary>
    public bool HasOwnChatTemplate { get; }

    /// <summary>The id of a token (vocabulary or added), or null.</summary>
    public int? TokenToId(string token) =>
        _addedByContent.TryGetValue(token, out int a) ? a : _model.TryGetId(token, out int id) ? id : null;

    /// <summary>The token (byte-level characters for vocabulary tokens) of an id, or null.</summary>
    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    /// <summary>Whether an id is a special added token.</summary>
    public bool IsSpecial(int id) => _addedById.TryGetValue(id, out var t) && t.Special;

    /// <summary>
    /// Token ids of <paramref name="text"/>. With <paramref name="addSpecialTokens"/>, the post-processor's tokens
    /// (e.g. BOS) are added, as Hugging Face's <c>encode(text, add_special_tokens=True)</c> does.
    /// </summary>
    public int[] Encode(string text, bool addSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        var work = new Workspace();
        var segments = new List<Segment>();
        _rawMatcher.Split(text, 0, text.Length, segments);
        foreach (var segment in segments)
        {
            if (segment.TokenId >= 0)
            {
                ids.Add(segment.TokenId);
                continue;
            }
            string part = segment.Start == 0 && segment.End == text.Length ? text : text[segment.Start..segment.End];
            if (_normalizer is not null) part = _normalizer.Normalize(part);
            if (_normalizedMatcher.IsEmpty)
            {
                EncodeText(part, 0, part.Length, ids, work);
                continue;
            }
            var inner = new List<Segment>();
            _normalizedMatcher.Split(part, 0, part.Length, inner);
            foreach (var s in inner)
            {
                if (s.TokenId >= 0) ids.Add(s.TokenId);
                else EncodeText(part, s.Start, s.End - s.Start, ids, work);
            }
        }
        work.Return();
        if (addSpecialTokens) _postProcessor.Apply(ids);
        return [.. ids];
    }

    private void EncodeText(string text, int start, int length, List<int> ids, Workspace work)
    {
        if (length == 0) return;
        var pieces = work.PiecesA;
        pieces.Clear();
        pieces.Add(new Piece(text, start, length));
        foreach (var step in _preTokenizer)
        {
            var output = pieces == work.PiecesA ? work.PiecesB : work.PiecesA;
            output.Clear();
            step.Split(pieces, output, work.Matches);
            pieces = output;
        }
        foreach (var piece in pieces)
        {
            if (!_byteLevel)
            {
                _model.EncodeWord(piece.Span, ids);
                continue;
            }
            var span = piece.Span;
            int maxBytes = Encoding.UTF8.GetMaxByteCount(span.Length);
            work.Ensure(maxBytes);
            int byteCount = Encoding.UTF8.GetBytes(span, work.Bytes);
            ByteLevelAlphabet.Map(work.Bytes.AsSpan(0, byteCount), work.Chars);
            _model.EncodeWord(work.Chars.AsSpan(0, byteCount), ids);
        }
    }

    /// <summary>Per-call scratch buffers.</summary>
    private sealed class Workspace
    {
        public readonly List<Piece> PiecesA = new();
        public readonly List<Piece> PiecesB = new();
        public readonly List<(int Start, int Length)> Matches = new();
        public byte[] Bytes = ArrayPool<byte>.Shared.Rent(256);
        public char[] Chars = ArrayPool<char>.Shared.Rent(256);

        public void Ensure(int size)
        {
            if (Bytes.Length >= size) return;
            Return();
            Bytes = ArrayPool<byte>.Shared.Rent(size);
            Chars = ArrayPool<char>.Shared.Rent(size);
        }

        public void Return()
        {
            ArrayPool<byte>.Shared.Return(Bytes);
            ArrayPool<char>.Shared.Return(Chars);
            Bytes = [];
            Chars = [];
        }
    }

    /// <summary>
    /// Text of token ids. Byte sequences that are not valid UTF-8 (e.g. half an emoji) become U+FFFD, as in
    /// Hugging Face. Added tokens are emitted verbatim.
    /// </summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var sb = new StringBuilder();
        var bytes = new List<byte>();
        var plain = new List<string>();
        foreach (int id in ids)
        {
            if (_addedById.TryGetValue(id, out var added))
            {
                if (skipSpecialTokens && added.Special) continue;
                Flush();
                sb.Append(added.Content);
                continue;
            }
            string token = IdToToken(id) ?? throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id {id} is not in the vocabulary of {_source} ({VocabSize} ids).");
            if (_decoder == DecoderKind.ByteLevel) TokenDecoder.AppendByteLevel(token, bytes);
            else plain.Add(token);
        }
        Flush();
        return sb.ToString();

        void Flush()
        {
            if (bytes.Count > 0)
            {
                sb.Append(Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes)));
                bytes.Clear();
            }
            if (plain.Count > 0)
            {
                sb.Append(string.Join(' ', plain)); // no decoder: Hugging Face joins tokens with spaces
                plain.Clear();
            }
        }
    }

    /// <summary>Renders a conversation with <see cref="ChatTemplate"/>, using this tokenizer's BOS/EOS texts.</summary>
    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
        ChatTemplate.Render(messages, addGenerationPrompt, BosToken, EosToken);

    /// <summary>
    /// Ids of a rendered conversation. As in Hugging Face's <c>apply_chat_template(tokenize=True)</c>, the rendered
    /// text already holds BOS, so no further special tokens are added.
    /// </summary>
    public int[] EncodeChat(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
        Encode(ApplyChatTemplate(messages, addGenerationPrompt), addSpecialTokens: false);

    private int? Id(string? token) => token is null ? null : TokenToId(token);

    private string? FirstPresent(params string[] names) => names.FirstOrDefault(n => TokenToId(n) is not null);

    private static string? ConfigToken(JsonElement? config, string name)
    {
        if (config is not { } c || !c.TryGetProperty(name, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object => JsonRead.OptionalString(v, "content"),
            _ => null,
        };
    }

    private static bool? ConfigBool(JsonElement? config, string name) =>
        config is { } c && c.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    private static string? ConfigChatTemplate(JsonElement? config, string source)
    {
        if (config is not { } c || !c.TryGetProperty("chat_template", out var t)) return null;
        if (t.ValueKind == JsonValueKind.String) return t.GetString();
        if (t.ValueKind == JsonValueKind.Array)
        {
            // A list of named templates: use "default".
            foreach (var entry in t.EnumerateArray())
                if (JsonRead.OptionalString(entry, "name") == "default") return JsonRead.OptionalString(entry, "template");
            throw new InvalidDataException($"tokenizer_config.json of {source}: chat_template is a list without a 'default' entry.");
        }
        return null;
    }
}

/// <summary>One chat message: a role ("system", "user", "assistant") and its text.</summary>
public sealed record ChatMessage(string Role, string Content);
