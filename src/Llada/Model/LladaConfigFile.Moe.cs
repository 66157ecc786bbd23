using System.Text.Json;

namespace Llada.Model;

// LLaDA-MoE config.json (spec section 7): Hugging Face key names (hidden_size, num_hidden_layers, ...) mapped onto
// LladaConfig, plus the MoeConfig keys. Only the variant LLaDA-MoE-7B-A1B uses is supported: softmax router without
// expert bias or group routing, full-width RoPE without scaling, no biases, no QKV clipping.
public static partial class LladaConfigFile
{
    /// <summary>model_type of a LLaDA-MoE checkpoint.</summary>
    public const string MoeModelType = "lladamoe";

    // LladaConfig property (by its dense key) -> the LLaDA-MoE key.
    private static readonly Dictionary<string, string> MoeKeyNames = new(StringComparer.Ordinal)
    {
        ["d_model"] = "hidden_size", ["n_layers"] = "num_hidden_layers", ["n_heads"] = "num_attention_heads",
        ["n_kv_heads"] = "num_key_value_heads", ["mlp_hidden_size"] = "dense_intermediate_size",
        ["embedding_size"] = "vocab_size", ["max_sequence_length"] = "max_position_embeddings",
        ["weight_tying"] = "tie_word_embeddings",
    };

    private static readonly HashSet<string> MoeModeledKeys = new(StringComparer.Ordinal)
    {
        "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "dense_intermediate_size", "vocab_size", "max_position_embeddings", "rope_theta", "rms_norm_eps",
        "tie_word_embeddings", "mask_token_id", "eos_token_id", "pad_token_id", "hidden_act", "attention_bias",
        "num_experts", "num_experts_per_tok", "expert_intermediate_size", "shared_expert_intermediate_size",
        "norm_topk_prob", "routed_scaling_factor", "qk_layernorm", "moe_layer_freq", "first_k_dense_replace",
        "router_aux_loss_coef", "router_z_loss_coef",
    };

    private const string MoeReleasedDefaultsJson = """
        {
          "architectures": ["LLaDAMoEModelLM"], "attention_dropout": 0.0, "clip_qkv": null,
          "initializer_range": 0.02, "moe_router_enable_expert_bias": false, "moe_router_score_function": "softmax",
          "output_router_logits": false, "partial_rotary_factor": 1.0, "rope_scaling": null, "use_cache": false
        }
        """;

    private static readonly Dictionary<string, JsonElement> MoeReleasedDefaults = ParseDefaults(MoeReleasedDefaultsJson);

    private static string MoeKeyName(string denseKey) => MoeKeyNames.GetValueOrDefault(denseKey, denseKey);

    private static LladaConfig FromMoeKeys(Dictionary<string, JsonElement> keys, string path)
    {
        var reader = new KeyReader(keys, path);
        int layers = reader.RequiredInt("num_hidden_layers");
        int heads = reader.RequiredInt("num_attention_heads");
        int vocab = reader.RequiredInt("vocab_size");
        var other = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var (key, value) in keys)
            if (!MoeModeledKeys.Contains(key)) other[key] = value;

        return new LladaConfig
        {
            ModelType = MoeModelType,
            DModel = reader.RequiredInt("hidden_size"),
            NLayers = layers,
            NHeads = heads,
            NKvHeads = reader.NullableInt("num_key_value_heads") ?? heads,
            MlpHiddenSize = reader.Int("dense_intermediate_size", 0),
            VocabSize = vocab,
            EmbeddingSize = vocab,
            MaxSequenceLength = reader.Int("max_position_embeddings", 4096),
            RopeTheta = reader.Double("rope_theta", 10000),
            RmsNormEps = reader.Double("rms_norm_eps", 1e-5),
            // LLaDA-MoE's config class defaults tie_word_embeddings to false (unlike transformers' base class).
            WeightTying = reader.Bool("tie_word_embeddings", false),
            MaskTokenId = reader.NullableInt("mask_token_id") ?? throw new CheckpointFormatException(path, "mask_token_id",
                "required key is missing (LLaDA-MoE-7B-A1B uses 156895; add \"mask_token_id\" to config.json)"),
            EosTokenId = reader.RequiredInt("eos_token_id"),
            PadTokenId = reader.NullableInt("pad_token_id") ?? reader.RequiredInt("eos_token_id"),
            ActivationType = reader.String("hidden_act", "silu"),
            IncludeBias = reader.Bool("attention_bias", false),
            LayerNormType = "rms",
            BlockType = "llama",
            Rope = true,
            Moe = new MoeConfig
            {
                NumExperts = reader.RequiredInt("num_experts"),
                ExpertsPerToken = reader.RequiredInt("num_experts_per_tok"),
                ExpertIntermediateSize = reader.RequiredInt("expert_intermediate_size"),
                SharedExpertIntermediateSize = reader.Int("shared_expert_intermediate_size", 0),
                NormTopKProb = reader.Bool("norm_topk_prob", false),
                RoutedScalingFactor = reader.Double("routed_scaling_factor", 1),
                QkNorm = reader.Bool("qk_layernorm", true),
                RouterAuxLossCoef = reader.Double("router_aux_loss_coef", 0.01),
                RouterZLossCoef = reader.Double("router_z_loss_coef", 0),
                MoeLayers = ReadMoeLayers(keys, reader, layers, path),
            },
            OtherKeys = other,
        };
    }

    // moe_layer_freq: a 0/1 flag per layer (absent = every layer MoE); first_k_dense_replace: the first k layers dense.
    // When both are given they must agree.
    private static bool[] ReadMoeLayers(Dictionary<string, JsonElement> keys, KeyReader reader, int layers, string path)
    {
        if (layers <= 0) throw new CheckpointFormatException(path, "num_hidden_layers", $"must be positive, found {layers}");
        bool[]? fromFreq = null;
        if (keys.TryGetValue("moe_layer_freq", out var freq) && freq.ValueKind != JsonValueKind.Null)
        {
            if (freq.ValueKind != JsonValueKind.Array || freq.GetArrayLength() != layers)
                throw new CheckpointFormatException(path, "moe_layer_freq",
                    $"must be a list of {layers} flags (1 = MoE layer, 0 = dense layer), one per layer, found {Shorten(freq.GetRawText())}");
            fromFreq = new bool[layers];
            int i = 0;
            foreach (var e in freq.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int v) || v is not (0 or 1))
                    throw new CheckpointFormatException(path, "moe_layer_freq", $"entry {i} must be 0 or 1, found {Shorten(e.GetRawText())}");
                fromFreq[i++] = v == 1;
            }
        }
        int? firstDense = reader.NullableInt("first_k_dense_replace");
        if (firstDense is { } k && (k < 0 || k > layers))
            throw new CheckpointFormatException(path, "first_k_dense_replace", $"must be in 0..{layers}, found {k}");
        if (firstDense is null) return fromFreq ?? Enumerable.Repeat(true, layers).ToArray();
        var fromK = Enumerable.Range(0, layers).Select(i => i >= firstDense.Value).ToArray();
        if (fromFreq is not null && !fromFreq.SequenceEqual(fromK))
            throw new CheckpointFormatException(path, "first_k_dense_replace",
                $"first_k_dense_replace {firstDense} contradicts moe_layer_freq (which marks layers " +
                $"[{string.Join(",", fromFreq.Select(b => b ? 1 : 0))}] as MoE)");
        return fromK;
    }

    private static void ValidateMoe(LladaConfig config, string sourcePath)
    {
        var moe = config.Moe!;
        void Invalid(bool bad, string key, string problem)
        {
            if (bad) throw new CheckpointFormatException(sourcePath, key, problem);
        }
        Invalid(moe.NumExperts <= 0, "num_experts", $"must be positive, found {moe.NumExperts}");
        Invalid(moe.ExpertsPerToken <= 0 || moe.ExpertsPerToken > moe.NumExperts, "num_experts_per_tok",
            $"must be in 1..num_experts ({moe.NumExperts}), found {moe.ExpertsPerToken}");
        Invalid(moe.ExpertIntermediateSize <= 0, "expert_intermediate_size", $"must be positive, found {moe.ExpertIntermediateSize}");
        Invalid(moe.SharedExpertIntermediateSize < 0, "shared_expert_intermediate_size",
            $"must be positive (or null for no shared expert), found {moe.SharedExpertIntermediateSize}");
        Invalid(!(moe.RoutedScalingFactor > 0) || double.IsInfinity(moe.RoutedScalingFactor), "routed_scaling_factor",
            $"must be a positive finite number, found {moe.RoutedScalingFactor}");
        Invalid(!(moe.RouterAuxLossCoef >= 0) || double.IsInfinity(moe.RouterAuxLossCoef), "router_aux_loss_coef",
            $"must be a non-negative finite number, found {moe.RouterAuxLossCoef}");
        Invalid(!(moe.RouterZLossCoef >= 0) || double.IsInfinity(moe.RouterZLossCoef), "router_z_loss_coef",
            $"must be a non-negative finite number, found {moe.RouterZLossCoef}");
        Invalid(moe.MoeLayers.Count != config.NLayers, "moe_layer_freq",
            $"has {moe.MoeLayers.Count} flags for {config.NLayers} layers");
        Invalid(config.WeightTying && config.EmbeddingSize != config.VocabSize, "vocab_size", "tied embeddings need one vocabulary size");

        void Require(bool ok, string key, string problem)
        {
            if (!ok) throw new UnsupportedArchitectureException(sourcePath, key, problem);
        }
        Require(config.ActivationType == "silu", "hidden_act", $"hidden_act is '{config.ActivationType}'; only \"silu\" (SwiGLU experts) is supported");
        Require(!config.IncludeBias, "attention_bias", "attention_bias is true; only bias-free checkpoints are supported");
        var reader = new KeyReader(config.OtherKeys, sourcePath);
        Require(reader.String("moe_router_score_function", "softmax") == "softmax", "moe_router_score_function",
            $"moe_router_score_function is '{reader.String("moe_router_score_function", "softmax")}'; only \"softmax\" is supported");
        Require(!reader.Bool("moe_router_enable_expert_bias", false), "moe_router_enable_expert_bias",
            "moe_router_enable_expert_bias is true; router expert biases are not supported");
        Require(reader.Double("partial_rotary_factor", 1) == 1, "partial_rotary_factor", "only full-width RoPE (partial_rotary_factor 1) is supported");
        foreach (string key in new[] { "rope_scaling", "clip_qkv", "router_num_group", "router_topk_group" })
            Require(!config.OtherKeys.TryGetValue(key, out var v) || v.ValueKind == JsonValueKind.Null, key, $"{key} is set; it is not supported");
    }

    private static string MoeToJson(LladaConfig config)
    {
        var moe = config.Moe!;
        var keys = new SortedDictionary<string, Action<Utf8JsonWriter>>(StringComparer.Ordinal);
        foreach (var (key, value) in MoeReleasedDefaults) keys[key] = w => value.WriteTo(w);
        foreach (var (key, value) in config.OtherKeys) keys[key] = w => value.WriteTo(w);
        void Int(string key, int v) => keys[key] = w => w.WriteNumberValue(v);
        void Str(string key, string v) => keys[key] = w => w.WriteStringValue(v);
        void Bool(string key, bool v) => keys[key] = w => w.WriteBooleanValue(v);
        void Float(string key, double v) => keys[key] = w => w.WriteRawValue(FormatFloat(v));
        Str("model_type", MoeModelType);
        Int("hidden_size", config.DModel);
        Int("num_hidden_layers", config.NLayers);
        Int("num_attention_heads", config.NHeads);
        Int("num_key_value_heads", config.NKvHeads);
        Int("dense_intermediate_size", config.MlpHiddenSize);
        Int("vocab_size", config.VocabSize);
        Int("max_position_embeddings", config.MaxSequenceLength);
        Float("rope_theta", config.RopeTheta);
        Float("rms_norm_eps", config.RmsNormEps);
        Bool("tie_word_embeddings", config.WeightTying);
        Int("mask_token_id", config.MaskTokenId);
        Int("eos_token_id", config.EosTokenId);
        Int("pad_token_id", config.PadTokenId);
        Str("hidden_act", config.ActivationType);
        Bool("attention_bias", config.IncludeBias);
        Int("num_experts", moe.NumExperts);
        Int("num_experts_per_tok", moe.ExpertsPerToken);
        Int("expert_intermediate_size", moe.ExpertIntermediateSize);
        if (moe.SharedExpertIntermediateSize > 0) Int("shared_expert_intermediate_size", moe.SharedExpertIntermediateSize);
        else keys["shared_expert_intermediate_size"] = w => w.WriteNullValue();
        Bool("norm_topk_prob", moe.NormTopKProb);
        Float("routed_scaling_factor", moe.RoutedScalingFactor);
        Bool("qk_layernorm", moe.QkNorm);
        Float("router_aux_loss_coef", moe.RouterAuxLossCoef);
        if (moe.RouterZLossCoef > 0) Float("router_z_loss_coef", moe.RouterZLossCoef);
        keys["moe_layer_freq"] = w =>
        {
            w.WriteStartArray();
            foreach (bool m in moe.MoeLayers) w.WriteNumberValue(m ? 1 : 0);
            w.WriteEndArray();
        };
        return WriteSorted(keys);
    }

    private static string Shorten(string text) => text.Length > 40 ? text[..40] + "..." : text;
}
