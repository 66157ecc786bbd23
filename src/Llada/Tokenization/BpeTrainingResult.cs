using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Llada.Tokenization;

/// <summary>
/// A trained byte-level BPE vocabulary and its Hugging Face files. Ids: 0-255 the byte symbols in code-point order,
/// then learned tokens in merge order, then <see cref="BpeTrainerOptions.SpecialTokens"/> (so with the default
/// options <c>&lt;|startoftext|&gt;</c> is <see cref="LearnedCount"/>, <c>&lt;|eot_id|&gt;</c> is LearnedCount + 5).
/// </summary>
public sealed class BpeTrainingResult
{
    internal BpeTrainingResult(BpeTrainerOptions options, IReadOnlyList<string> tokens, IReadOnlyList<(string Left, string Right)> merges)
    {
        Options = options;
        Tokens = tokens;
        Merges = merges;
    }

    /// <summary>The settings used.</summary>
    public BpeTrainerOptions Options { get; }

    /// <summary>Learned vocabulary by id (byte-level strings), without the special tokens.</summary>
    public IReadOnlyList<string> Tokens { get; }

    /// <summary>Merges in rank order.</summary>
    public IReadOnlyList<(string Left, string Right)> Merges { get; }

    /// <summary>Number of learned tokens (byte symbols + merged tokens); the first special token's id.</summary>
    public int LearnedCount => Tokens.Count;

    /// <summary>Total vocabulary size including the special tokens.</summary>
    public int VocabSize => Tokens.Count + Options.SpecialTokens.Count;

    /// <summary>The id of a special token.</summary>
    public int SpecialTokenId(string token)
    {
        for (int i = 0; i < Options.SpecialTokens.Count; i++)
            if (Options.SpecialTokens[i] == token) return Tokens.Count + i;
        throw new ArgumentException($"'{token}' is not a special token of this tokenizer.", nameof(token));
    }

    /// <summary>
    /// Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json into <paramref name="directory"/>
    /// (created if missing). Each file is written to a temporary file first and then renamed over the target.
    /// </summary>
    public void WriteDirectory(string directory)
    {
        Directory.CreateDirectory(directory);
        WriteAtomic(Path.Combine(directory, "tokenizer.json"), ToTokenizerJson());
        WriteAtomic(Path.Combine(directory, "tokenizer_config.json"), ToTokenizerConfigJson());
        WriteAtomic(Path.Combine(directory, "special_tokens_map.json"), ToSpecialTokensMapJson());
    }

    private static void WriteAtomic(string path, string content)
    {
        string temp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            File.WriteAllText(temp, content, new UTF8Encoding(false));
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private static readonly JsonWriterOptions s_writerOptions = new()
    {
        Indented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // keep 'Ġ' and other byte symbols readable
    };

    private static string Json(Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            writer.WriteStartObject();
            body(writer);
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    /// <summary>
    /// The Hugging Face tokenizer.json: no normaliser; pre_tokenizer Sequence[Split(regex, Isolated),
    /// ByteLevel(add_prefix_space false, use_regex false)]; a ByteLevel post_processor (adds no tokens, as LLaDA's
    /// add_bos_token false); ByteLevel decoder; BPE model with array-form merges; special added tokens.
    /// </summary>
    public string ToTokenizerJson() => Json(w =>
    {
        w.WriteString("version", "1.0");
        w.WriteNull("truncation");
        w.WriteNull("padding");
        w.WriteStartArray("added_tokens");
        for (int i = 0; i < Options.SpecialTokens.Count; i++)
        {
            w.WriteStartObject();
            w.WriteNumber("id", Tokens.Count + i);
            w.WriteString("content", Options.SpecialTokens[i]);
            w.WriteBoolean("single_word", false);
            w.WriteBoolean("lstrip", false);
            w.WriteBoolean("rstrip", false);
            w.WriteBoolean("normalized", false);
            w.WriteBoolean("special", true);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteNull("normalizer");

        w.WriteStartObject("pre_tokenizer");
        w.WriteString("type", "Sequence");
        w.WriteStartArray("pretokenizers");
        w.WriteStartObject();
        w.WriteString("type", "Split");
        w.WriteStartObject("pattern");
        w.WriteString("Regex", Options.Regex);
        w.WriteEndObject();
        w.WriteString("behavior", "Isolated");
        w.WriteBoolean("invert", false);
        w.WriteEndObject();
        WriteByteLevel(w, null);
        w.WriteEndArray();
        w.WriteEndObject();

        WriteByteLevel(w, "post_processor");
        WriteByteLevel(w, "decoder");

        w.WriteStartObject("model");
        w.WriteString("type", "BPE");
        w.WriteNull("dropout");
        w.WriteNull("unk_token");
        w.WriteNull("continuing_subword_prefix");
        w.WriteNull("end_of_word_suffix");
        w.WriteBoolean("fuse_unk", false);
        w.WriteBoolean("byte_fallback", false);
        w.WriteBoolean("ignore_merges", false);
        w.WriteStartObject("vocab");
        for (int id = 0; id < Tokens.Count; id++) w.WriteNumber(Tokens[id], id);
        w.WriteEndObject();
        w.WriteStartArray("merges");
        foreach (var (left, right) in Merges)
        {
            w.WriteStartArray();
            w.WriteStringValue(left);
            w.WriteStringValue(right);
            w.WriteEndArray();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    });

    private static void WriteByteLevel(Utf8JsonWriter w, string? name)
    {
        if (name is null) w.WriteStartObject();
        else w.WriteStartObject(name);
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", false);
        w.WriteBoolean("trim_offsets", false);
        w.WriteBoolean("use_regex", false);
        w.WriteEndObject();
    }

    /// <summary>
    /// tokenizer_config.json as transformers' PreTrainedTokenizerFast reads it, mirroring LLaDA-8B's: add_bos_token
    /// and add_eos_token false, bos/eos/pad tokens, the mask token as mask_token, the other specials as
    /// additional_special_tokens, model_max_length and the chat template.
    /// </summary>
    public string ToTokenizerConfigJson() => Json(w =>
    {
        w.WriteBoolean("add_bos_token", false);
        w.WriteBoolean("add_eos_token", false);
        w.WriteStartObject("added_tokens_decoder");
        for (int i = 0; i < Options.SpecialTokens.Count; i++)
        {
            w.WriteStartObject((Tokens.Count + i).ToString(System.Globalization.CultureInfo.InvariantCulture));
            w.WriteString("content", Options.SpecialTokens[i]);
            w.WriteBoolean("lstrip", false);
            w.WriteBoolean("normalized", false);
            w.WriteBoolean("rstrip", false);
            w.WriteBoolean("single_word", false);
            w.WriteBoolean("special", true);
            w.WriteEndObject();
        }
        w.WriteEndObject();
        WriteSpecialTokenFields(w);
        w.WriteString("chat_template", Options.ChatTemplate);
        w.WriteBoolean("clean_up_tokenization_spaces", false);
        w.WriteStartArray("model_input_names");
        w.WriteStringValue("input_ids");
        w.WriteStringValue("attention_mask");
        w.WriteEndArray();
        w.WriteNumber("model_max_length", Options.ModelMaxLength);
        w.WriteString("tokenizer_class", "PreTrainedTokenizerFast");
    });

    /// <summary>special_tokens_map.json: bos/eos/pad/mask tokens and the additional special tokens.</summary>
    public string ToSpecialTokensMapJson() => Json(WriteSpecialTokenFields);

    private void WriteSpecialTokenFields(Utf8JsonWriter w)
    {
        w.WriteStartArray("additional_special_tokens");
        foreach (var t in Options.SpecialTokens)
            if (t != Options.BosToken && t != Options.EosToken && t != Options.PadToken && t != Options.MaskToken) w.WriteStringValue(t);
        w.WriteEndArray();
        if (Options.BosToken is not null) w.WriteString("bos_token", Options.BosToken);
        if (Options.EosToken is not null) w.WriteString("eos_token", Options.EosToken);
        if (Options.MaskToken is not null) w.WriteString("mask_token", Options.MaskToken);
        if (Options.PadToken is not null) w.WriteString("pad_token", Options.PadToken);
    }
}
