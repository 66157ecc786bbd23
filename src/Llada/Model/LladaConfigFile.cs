using System.Globalization;
using System.Text.Json;

namespace Llada.Model;

/// <summary>
/// Reads, validates and writes a LLaDA config.json (the keys the Hugging Face LLaDA code reads). Keys absent from
/// the file take the reference ModelConfig defaults, except embedding_size which falls back to vocab_size; the
/// architecture-selecting keys must then describe the dense LLaDA block this implementation runs. A config with
/// model_type "lladamoe" is a LLaDA-MoE checkpoint with Hugging Face key names (LladaConfigFile.Moe.cs).
/// </summary>
public static partial class LladaConfigFile
{
    /// <summary>File name inside a model directory.</summary>
    public const string FileName = "config.json";

    // Keys the LladaConfig record models directly; every other key goes to OtherKeys untouched.
    private static readonly HashSet<string> ModeledKeys = new(StringComparer.Ordinal)
    {
        "model_type", "d_model", "n_layers", "n_heads", "n_kv_heads", "mlp_ratio", "mlp_hidden_size", "vocab_size",
        "embedding_size", "max_sequence_length", "rope_theta", "rms_norm_eps", "weight_tying", "mask_token_id",
        "eos_token_id", "pad_token_id", "activation_type", "layer_norm_type", "block_type", "include_bias", "rope",
    };

    // What the released LLaDA-8B config.json states besides the modeled keys; written for a fresh config.
    private const string ReleasedDefaultsJson = """
        {
          "alibi": false, "alibi_bias_max": 8.0, "architectures": ["LLaDAModelLM"], "attention_dropout": 0.0,
          "attention_layer_norm": false, "attention_layer_norm_with_affine": true,
          "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig",
                       "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
                       "AutoModel": "modeling_llada.LLaDAModelLM"},
          "bias_for_layer_norm": false, "block_group_size": 1, "embedding_dropout": 0.0, "flash_attention": false,
          "include_qkv_bias": false, "init_cutoff_factor": null, "init_device": "meta", "init_fn": "mitchell",
          "init_std": 0.02, "input_emb_norm": false, "layer_norm_with_affine": true, "multi_query_attention": null,
          "precision": "amp_bf16", "residual_dropout": 0.0, "rope_full_precision": true, "scale_logits": false,
          "use_cache": false
        }
        """;

    private static readonly Dictionary<string, JsonElement> ReleasedDefaults = ParseDefaults();

    /// <summary>Reads and validates <paramref name="path"/>.</summary>
    /// <exception cref="CheckpointFormatException">Invalid JSON, a required key missing, a key of the wrong type or an invalid value.</exception>
    /// <exception cref="UnsupportedArchitectureException">The config describes an architecture other than the dense LLaDA block.</exception>
    public static LladaConfig Load(string path)
    {
        path = Path.GetFullPath(path);
        byte[] bytes = File.ReadAllBytes(path);
        return Parse(bytes, path);
    }

    /// <summary>Parses and validates config.json text; <paramref name="sourcePath"/> is only used in error messages.</summary>
    public static LladaConfig Parse(string json, string sourcePath = FileName) =>
        Parse(System.Text.Encoding.UTF8.GetBytes(json), sourcePath);

    /// <summary>Parses and validates UTF-8 config.json bytes; <paramref name="sourcePath"/> is only used in error messages.</summary>
    public static LladaConfig Parse(ReadOnlyMemory<byte> utf8Json, string sourcePath = FileName)
    {
        var keys = ReadKeys(utf8Json, sourcePath);
        var config = FromKeys(keys, sourcePath);
        Validate(config, sourcePath);
        return config;
    }

    /// <summary>
    /// The top-level keys of a UTF-8 JSON object file (config.json, generation_config.json), with errors naming
    /// <paramref name="sourcePath"/>: invalid UTF-8 or JSON, not an object, a key given twice.
    /// </summary>
    internal static Dictionary<string, JsonElement> ReadKeys(ReadOnlyMemory<byte> utf8Json, string sourcePath)
    {
        if (!System.Text.Unicode.Utf8.IsValid(utf8Json.Span))
            throw new CheckpointFormatException(sourcePath, null, "not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(utf8Json, new JsonDocumentOptions { AllowTrailingCommas = false, MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(sourcePath, null, $"not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(sourcePath, null, $"must be a JSON object, found {doc.RootElement.ValueKind}");
            var keys = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
                if (!keys.TryAdd(p.Name, p.Value.Clone()))
                    throw new CheckpointFormatException(sourcePath, p.Name, "key appears twice");
            return keys;
        }
    }

    private static LladaConfig FromKeys(Dictionary<string, JsonElement> keys, string path)
    {
        var reader = new KeyReader(keys, path);
        string modelType = reader.String("model_type", "llada");
        if (modelType == MoeModelType) return FromMoeKeys(keys, path);
        if (modelType != "llada")
            throw new UnsupportedArchitectureException(path, "model_type",
                $"model_type is '{modelType}'; this reads the dense LLaDA model (model_type \"llada\") and LLaDA-MoE (\"{MoeModelType}\")");

        int dModel = reader.RequiredInt("d_model");
        int nHeads = reader.RequiredInt("n_heads");
        int vocab = reader.RequiredInt("vocab_size");
        int mlpRatio = reader.Int("mlp_ratio", 4);
        int? nKv = reader.NullableInt("n_kv_heads");
        bool? multiQuery = reader.NullableBool("multi_query_attention");
        // The reference's effective_n_kv_heads: multi_query_attention forces 1 (or n_heads when false).
        int effectiveKv = (nKv, multiQuery) switch
        {
            (null, true) => 1,
            (null, _) => nHeads,
            (int n, null) => n,
            (int n, bool mq) when n == (mq ? 1 : nHeads) => n,
            _ => throw new CheckpointFormatException(path, "n_kv_heads",
                $"n_kv_heads {nKv} contradicts multi_query_attention {multiQuery} (the reference rejects this too)"),
        };

        var other = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var (key, value) in keys)
            if (!ModeledKeys.Contains(key)) other[key] = value;

        return new LladaConfig
        {
            ModelType = modelType,
            DModel = dModel,
            NLayers = reader.RequiredInt("n_layers"),
            NHeads = nHeads,
            NKvHeads = effectiveKv,
            MlpRatio = mlpRatio,
            MlpHiddenSize = reader.NullableInt("mlp_hidden_size") ?? checked(mlpRatio * dModel),
            VocabSize = vocab,
            EmbeddingSize = reader.NullableInt("embedding_size") ?? vocab,
            MaxSequenceLength = reader.RequiredInt("max_sequence_length"),
            RopeTheta = reader.Double("rope_theta", 10000),
            RmsNormEps = reader.Double("rms_norm_eps", 1e-5),
            WeightTying = reader.Bool("weight_tying", true),
            MaskTokenId = reader.RequiredInt("mask_token_id"),
            EosTokenId = reader.NullableInt("eos_token_id") ?? 50256,
            PadTokenId = reader.NullableInt("pad_token_id") ?? 50256,
            // Reference defaults for absent architecture keys; Validate reports them as unsupported.
            ActivationType = reader.String("activation_type", "swiglu"),
            LayerNormType = reader.String("layer_norm_type", "default"),
            BlockType = reader.String("block_type", "sequential"),
            IncludeBias = reader.Bool("include_bias", false),
            Rope = reader.Bool("rope", false),
            OtherKeys = other,
        };
    }

    /// <summary>
    /// Checks that <paramref name="config"/> is consistent and describes the dense LLaDA block: positive sizes,
    /// d_model divisible by n_heads, n_heads divisible by n_kv_heads, even head_dim, silu / rms / llama / rope,
    /// no biases, no ALiBi, no QK-norm, no logit scaling.
    /// </summary>
    /// <exception cref="CheckpointFormatException">An invalid value.</exception>
    /// <exception cref="UnsupportedArchitectureException">A valid but unsupported architecture choice.</exception>
    public static void Validate(LladaConfig config, string sourcePath = FileName)
    {
        // Error messages name the key as the file spells it (LLaDA-MoE uses the Hugging Face names).
        string K(string key) => config.Moe is null ? key : MoeKeyName(key);
        void Positive(string key, long value)
        {
            if (value <= 0) throw new CheckpointFormatException(sourcePath, K(key), $"must be positive, found {value}");
        }
        Positive("d_model", config.DModel);
        Positive("n_layers", config.NLayers);
        Positive("n_heads", config.NHeads);
        Positive("n_kv_heads", config.NKvHeads);
        if (config.Moe is null || config.Moe.MoeLayerCount < config.NLayers) Positive("mlp_hidden_size", config.MlpHiddenSize);
        Positive("vocab_size", config.VocabSize);
        Positive("embedding_size", config.EmbeddingSize);
        Positive("max_sequence_length", config.MaxSequenceLength);
        if (config.DModel % config.NHeads != 0)
            throw new CheckpointFormatException(sourcePath, K("n_heads"),
                $"{K("d_model")} {config.DModel} is not divisible by {K("n_heads")} {config.NHeads}");
        if (config.NHeads % config.NKvHeads != 0)
            throw new CheckpointFormatException(sourcePath, K("n_kv_heads"),
                $"{K("n_heads")} {config.NHeads} is not divisible by {K("n_kv_heads")} {config.NKvHeads}");
        if (config.HeadDim % 2 != 0)
            throw new CheckpointFormatException(sourcePath, K("n_heads"),
                $"head dimension {K("d_model")}/{K("n_heads")} = {config.HeadDim} must be even for rotate-half RoPE");
        if (config.EmbeddingSize < config.VocabSize)
            throw new CheckpointFormatException(sourcePath, K("embedding_size"),
                $"embedding_size {config.EmbeddingSize} is smaller than vocab_size {config.VocabSize}");
        if (config.MaskTokenId < 0 || config.MaskTokenId >= config.EmbeddingSize)
            throw new CheckpointFormatException(sourcePath, "mask_token_id",
                $"mask_token_id {config.MaskTokenId} is outside the embedding table [0, {config.EmbeddingSize})");
        if (!(config.RopeTheta > 0) || double.IsInfinity(config.RopeTheta))
            throw new CheckpointFormatException(sourcePath, "rope_theta", $"must be a positive finite number, found {config.RopeTheta}");
        if (!(config.RmsNormEps > 0) || double.IsInfinity(config.RmsNormEps))
            throw new CheckpointFormatException(sourcePath, "rms_norm_eps", $"must be a positive finite number, found {config.RmsNormEps}");
        if (config.Moe is not null)
        {
            ValidateMoe(config, sourcePath);
            return;
        }

        void Require(bool ok, string key, string problem)
        {
            if (!ok) throw new UnsupportedArchitectureException(sourcePath, key, problem);
        }
        Require(config.ModelType == "llada", "model_type", $"model_type is '{config.ModelType}', expected \"llada\"");
        Require(config.ActivationType == "silu", "activation_type",
            $"activation_type is '{config.ActivationType}'; only \"silu\" (SwiGLU with separate ff_proj/up_proj) is supported");
        Require(config.LayerNormType == "rms", "layer_norm_type",
            $"layer_norm_type is '{config.LayerNormType}'; only \"rms\" is supported");
        Require(config.BlockType == "llama", "block_type", $"block_type is '{config.BlockType}'; only \"llama\" is supported");
        Require(!config.IncludeBias, "include_bias", "include_bias is true; only bias-free checkpoints are supported");
        Require(config.Rope, "rope", "rope is false (or absent, whose reference default is false); only RoPE models are supported");

        // Flags kept in OtherKeys: absent or null means the reference default, which is the supported value.
        var reader = new KeyReader(config.OtherKeys, sourcePath);
        Require(!reader.Bool("alibi", false), "alibi", "alibi is true; only RoPE positions are supported");
        Require(!(reader.NullableBool("include_qkv_bias") ?? false), "include_qkv_bias", "include_qkv_bias is true; biases are not supported");
        Require(!(reader.NullableBool("bias_for_layer_norm") ?? false), "bias_for_layer_norm", "bias_for_layer_norm is true; norm biases are not supported");
        Require(reader.Bool("layer_norm_with_affine", true), "layer_norm_with_affine", "layer_norm_with_affine is false; norms with weights are required");
        Require(!reader.Bool("attention_layer_norm", false), "attention_layer_norm", "attention_layer_norm (QK-norm) is not supported");
        Require(!reader.Bool("scale_logits", false), "scale_logits", "scale_logits is not supported");
        Require(!reader.Bool("input_emb_norm", false), "input_emb_norm", "input_emb_norm is not supported");
        Require(!config.OtherKeys.TryGetValue("clip_qkv", out var clip) || clip.ValueKind == JsonValueKind.Null,
            "clip_qkv", "clip_qkv is set; QKV clipping is not supported");
    }

    /// <summary>
    /// config.json text for <paramref name="config"/>: keys sorted and indented like transformers writes them; the
    /// modeled keys, then <see cref="LladaConfig.OtherKeys"/>, then (for keys still missing) the values the released
    /// LLaDA-8B config states (architectures, auto_map, alibi false, ...).
    /// </summary>
    /// <exception cref="CheckpointFormatException">The config does not validate.</exception>
    public static string ToJson(LladaConfig config)
    {
        Validate(config, "config being written");
        if (config.Moe is not null) return MoeToJson(config);
        var keys = new SortedDictionary<string, Action<Utf8JsonWriter>>(StringComparer.Ordinal);
        foreach (var (key, value) in ReleasedDefaults) keys[key] = w => value.WriteTo(w);
        foreach (var (key, value) in config.OtherKeys) keys[key] = w => value.WriteTo(w);
        void Int(string key, int v) => keys[key] = w => w.WriteNumberValue(v);
        void Str(string key, string v) => keys[key] = w => w.WriteStringValue(v);
        void Bool(string key, bool v) => keys[key] = w => w.WriteBooleanValue(v);
        void Float(string key, double v) => keys[key] = w => w.WriteRawValue(FormatFloat(v));
        Str("model_type", config.ModelType);
        Int("d_model", config.DModel);
        Int("n_layers", config.NLayers);
        Int("n_heads", config.NHeads);
        Int("n_kv_heads", config.NKvHeads);
        Int("mlp_ratio", config.MlpRatio);
        Int("mlp_hidden_size", config.MlpHiddenSize);
        Int("vocab_size", config.VocabSize);
        Int("embedding_size", config.EmbeddingSize);
        Int("max_sequence_length", config.MaxSequenceLength);
        Float("rope_theta", config.RopeTheta);
        Float("rms_norm_eps", config.RmsNormEps);
        Bool("weight_tying", config.WeightTying);
        Int("mask_token_id", config.MaskTokenId);
        Int("eos_token_id", config.EosTokenId);
        Int("pad_token_id", config.PadTokenId);
        Str("activation_type", config.ActivationType);
        Str("layer_norm_type", config.LayerNormType);
        Str("block_type", config.BlockType);
        Bool("include_bias", config.IncludeBias);
        Bool("rope", config.Rope);
        // multi_query_attention must agree with n_kv_heads; null defers to n_kv_heads like the reference.
        if (config.OtherKeys.TryGetValue("multi_query_attention", out var mq) && mq.ValueKind != JsonValueKind.Null)
            keys["multi_query_attention"] = w => w.WriteNullValue();

        return WriteSorted(keys);
    }

    private static string WriteSorted(SortedDictionary<string, Action<Utf8JsonWriter>> keys)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions
        {
            Indented = true,
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }))
        {
            json.WriteStartObject();
            foreach (var (key, write) in keys)
            {
                json.WritePropertyName(key);
                write(json);
            }
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    /// <summary>Writes config.json text to <paramref name="path"/> atomically.</summary>
    public static void Save(LladaConfig config, string path)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(ToJson(config));
        SafetensorsWriter.WriteAtomically(path, s => s.Write(bytes));
    }

    // Python writes floats with a decimal point (500000.0, 1e-05); keep that so a round trip reads the same.
    private static string FormatFloat(double v)
    {
        if (!double.IsFinite(v)) throw new ArgumentOutOfRangeException(nameof(v), v, "config floats must be finite");
        if (v == Math.Floor(v) && Math.Abs(v) < 1e16) return v.ToString("0.0", CultureInfo.InvariantCulture);
        return v.ToString("R", CultureInfo.InvariantCulture).Replace("E", "e", StringComparison.Ordinal);
    }

    private static Dictionary<string, JsonElement> ParseDefaults(string json = ReleasedDefaultsJson)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone(), StringComparer.Ordinal);
    }

    /// <summary>Typed access to config keys with errors naming the file and key.</summary>
    internal readonly struct KeyReader(IReadOnlyDictionary<string, JsonElement> keys, string path)
    {
        public int RequiredInt(string key) =>
            keys.TryGetValue(key, out var v) && v.ValueKind != JsonValueKind.Null
                ? ToInt(key, v)
                : throw new CheckpointFormatException(path, key, "required key is missing (expected an integer)");

        public int Int(string key, int fallback) => NullableInt(key) ?? fallback;

        public int? NullableInt(string key) =>
            keys.TryGetValue(key, out var v) && v.ValueKind != JsonValueKind.Null ? ToInt(key, v) : null;

        public double Double(string key, double fallback)
        {
            if (!keys.TryGetValue(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d) || !double.IsFinite(d))
                throw new CheckpointFormatException(path, key, $"must be a number, found {Describe(v)}");
            return d;
        }

        public bool Bool(string key, bool fallback) => NullableBool(key) ?? fallback;

        public bool? NullableBool(string key)
        {
            if (!keys.TryGetValue(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
            return v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new CheckpointFormatException(path, key, $"must be true or false, found {Describe(v)}"),
            };
        }

        public string String(string key, string fallback)
        {
            if (!keys.TryGetValue(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
            return v.ValueKind == JsonValueKind.String
                ? v.GetString()!
                : throw new CheckpointFormatException(path, key, $"must be a string, found {Describe(v)}");
        }

        private int ToInt(string key, JsonElement v) =>
            v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)
                ? i
                : throw new CheckpointFormatException(path, key, $"must be a 32-bit integer, found {Describe(v)}");

        private static string Describe(JsonElement v)
        {
            string text = v.GetRawText();
            return text.Length > 40 ? text[..40] + "..." : text;
        }
    }
}
