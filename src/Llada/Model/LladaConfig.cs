using System.Text.Json;

namespace Llada.Model;

/// <summary>
/// The architecture of a dense LLaDA checkpoint, as its config.json states it (key names in comments).
/// Parsing, validation and writing live with the checkpoint code.
/// </summary>
public sealed record LladaConfig
{
    /// <summary>d_model</summary>
    public required int DModel { get; init; }
    /// <summary>n_layers</summary>
    public required int NLayers { get; init; }
    /// <summary>n_heads</summary>
    public required int NHeads { get; init; }
    /// <summary>n_kv_heads (defaults to n_heads when absent)</summary>
    public required int NKvHeads { get; init; }
    /// <summary>mlp_hidden_size</summary>
    public required int MlpHiddenSize { get; init; }
    /// <summary>vocab_size</summary>
    public required int VocabSize { get; init; }
    /// <summary>embedding_size (rows of wte and of the LM head; defaults to vocab_size)</summary>
    public required int EmbeddingSize { get; init; }
    /// <summary>max_sequence_length</summary>
    public required int MaxSequenceLength { get; init; }
    /// <summary>rope_theta</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>rms_norm_eps</summary>
    public double RmsNormEps { get; init; } = 1e-5;
    /// <summary>weight_tying: the LM head is wte when true.</summary>
    public bool WeightTying { get; init; }
    /// <summary>mask_token_id</summary>
    public required int MaskTokenId { get; init; }
    /// <summary>eos_token_id</summary>
    public int EosTokenId { get; init; }
    /// <summary>pad_token_id</summary>
    public int PadTokenId { get; init; }
    /// <summary>model_type ("llada" for the dense model).</summary>
    public string ModelType { get; init; } = "llada";
    /// <summary>mlp_ratio: the MLP width as a multiple of d_model, used only when mlp_hidden_size is absent.</summary>
    public int MlpRatio { get; init; } = 4;
    /// <summary>activation_type; only "silu" (SwiGLU with separate gate and up projections) is supported.</summary>
    public string ActivationType { get; init; } = "silu";
    /// <summary>layer_norm_type; only "rms" is supported.</summary>
    public string LayerNormType { get; init; } = "rms";
    /// <summary>block_type; only "llama" is supported.</summary>
    public string BlockType { get; init; } = "llama";
    /// <summary>include_bias; only false is supported (no biases anywhere).</summary>
    public bool IncludeBias { get; init; }
    /// <summary>rope; only true is supported.</summary>
    public bool Rope { get; init; } = true;
    /// <summary>
    /// Every other key of config.json (init settings, dropout, auto_map, torch_dtype, ...), kept verbatim so
    /// that reading and writing a config loses nothing. Keys this record models are never in here. Record equality
    /// compares this dictionary by reference (configs built in code share one empty instance).
    /// </summary>
    public IReadOnlyDictionary<string, JsonElement> OtherKeys { get; init; } = NoOtherKeys;

    private static readonly IReadOnlyDictionary<string, JsonElement> NoOtherKeys =
        new System.Collections.ObjectModel.ReadOnlyDictionary<string, JsonElement>(new Dictionary<string, JsonElement>());
    /// <summary>Head dimension, d_model / n_heads.</summary>
    public int HeadDim => DModel / NHeads;
}
