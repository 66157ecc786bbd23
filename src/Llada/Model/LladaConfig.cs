using System.Text.Json;

namespace Llada.Model;

/// <summary>
/// The architecture of a LLaDA checkpoint, as its config.json states it (dense key names in comments; a LLaDA-MoE
/// config.json names them differently, see <see cref="LladaConfigFile"/>). <see cref="Moe"/> is null for the dense
/// model. Parsing, validation and writing live with the checkpoint code.
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
    /// <summary>mlp_hidden_size (LLaDA-MoE: dense_intermediate_size, the width of its dense layers; 0 when it has none).</summary>
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
    /// <summary>The sparse mixture-of-experts settings of a LLaDA-MoE checkpoint (model_type "lladamoe"); null when dense.</summary>
    public MoeConfig? Moe { get; init; }

    /// <summary>Head dimension, d_model / n_heads.</summary>
    public int HeadDim => DModel / NHeads;

    /// <summary>Width of the dense SwiGLU MLP that some layer runs: <see cref="MlpHiddenSize"/>, or 0 when every layer
    /// is MoE (LLaDA-MoE-7B-A1B states a dense_intermediate_size that no layer uses).</summary>
    public int DenseMlpWidth => Moe is { } moe && moe.MoeLayerCount == NLayers ? 0 : MlpHiddenSize;
}

/// <summary>
/// The mixture-of-experts part of a LLaDA-MoE config.json (spec section 7), key names in comments. A MoE layer replaces
/// the SwiGLU MLP by a softmax router over <see cref="NumExperts"/> SwiGLU experts of which each token uses the
/// <see cref="ExpertsPerToken"/> most probable, weighted by their router probabilities.
/// </summary>
public sealed record MoeConfig
{
    /// <summary>num_experts</summary>
    public required int NumExperts { get; init; }
    /// <summary>num_experts_per_tok (top-k)</summary>
    public required int ExpertsPerToken { get; init; }
    /// <summary>expert_intermediate_size: the SwiGLU width of one expert.</summary>
    public required int ExpertIntermediateSize { get; init; }
    /// <summary>shared_expert_intermediate_size: width of an always-on shared expert; 0 (null in the file) for none.</summary>
    public int SharedExpertIntermediateSize { get; init; }
    /// <summary>norm_topk_prob: renormalise the k selected probabilities to sum to 1 (LLaDA-MoE: false/null, not renormalised).</summary>
    public bool NormTopKProb { get; init; }
    /// <summary>routed_scaling_factor: multiplies the routing weights (1 in LLaDA-MoE).</summary>
    public double RoutedScalingFactor { get; init; } = 1;
    /// <summary>qk_layernorm: RMSNorm over head_dim on q and k before RoPE (self_attn.q_norm / k_norm).</summary>
    public bool QkNorm { get; init; } = true;
    /// <summary>router_aux_loss_coef: weight of the load-balancing loss in training.</summary>
    public double RouterAuxLossCoef { get; init; } = 0.01;
    /// <summary>router_z_loss_coef: weight of the router z-loss in training (0 = off).</summary>
    public double RouterZLossCoef { get; init; }
    /// <summary>
    /// moe_layer_freq: one flag per layer, true for a MoE layer, false for a dense SwiGLU layer of width
    /// dense_intermediate_size. Record equality compares this list by reference.
    /// </summary>
    public required IReadOnlyList<bool> MoeLayers { get; init; }

    /// <summary>Number of MoE layers.</summary>
    public int MoeLayerCount => MoeLayers.Count(m => m);

    /// <summary>All layers MoE (the LLaDA-MoE-7B-A1B layout).</summary>
    public static IReadOnlyList<bool> AllMoe(int layers) => Enumerable.Repeat(true, layers).ToArray();
}
