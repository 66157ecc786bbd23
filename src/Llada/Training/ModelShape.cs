using Llada.Model;

namespace Llada.Training;

/// <summary>
/// The architecture of a trainable LLaDA model, dense or LLaDA-MoE (<see cref="Moe"/>). Maps one to one onto
/// <see cref="LladaConfig"/> (vocab_size = embedding_size) so a trained model can be written as a normal checkpoint.
/// </summary>
public sealed record ModelShape
{
    /// <summary>d_model.</summary>
    public required int DModel { get; init; }
    /// <summary>n_layers.</summary>
    public required int NLayers { get; init; }
    /// <summary>n_heads.</summary>
    public required int NHeads { get; init; }
    /// <summary>n_kv_heads (grouped-query attention when smaller than <see cref="NHeads"/>).</summary>
    public required int NKvHeads { get; init; }
    /// <summary>mlp_hidden_size (LLaDA-MoE: the width of its dense layers, unused when every layer is MoE).</summary>
    public required int MlpHiddenSize { get; init; }
    /// <summary>vocab_size (also embedding_size).</summary>
    public required int VocabSize { get; init; }
    /// <summary>max_sequence_length.</summary>
    public required int MaxSequenceLength { get; init; }
    /// <summary>mask_token_id.</summary>
    public required int MaskTokenId { get; init; }
    /// <summary>eos_token_id (also pad_token_id).</summary>
    public int EosTokenId { get; init; }
    /// <summary>rope_theta.</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>rms_norm_eps.</summary>
    public double RmsNormEps { get; init; } = 1e-5;
    /// <summary>weight_tying: the LM head reuses wte.</summary>
    public bool WeightTying { get; init; }

    /// <summary>Mixture-of-experts settings (written in the LLaDA-MoE layout); null for the dense model. Shared experts are not trainable.</summary>
    public MoeConfig? Moe { get; init; }

    /// <summary>d_model / n_heads.</summary>
    public int HeadDim => DModel / NHeads;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first inconsistent field.</summary>
    public void Validate()
    {
        bool needsMlp = Moe is null || Moe.MoeLayerCount < NLayers;
        if (DModel <= 0 || NLayers <= 0 || NHeads <= 0 || NKvHeads <= 0 || (needsMlp && MlpHiddenSize <= 0) || VocabSize <= 0 || MaxSequenceLength <= 0)
            throw new ArgumentException($"model shape has a non-positive size: {this}");
        if (Moe is { } moe)
        {
            if (moe.SharedExpertIntermediateSize > 0)
                throw new ArgumentException("shared_expert_intermediate_size: shared experts can be run but not trained");
            if (moe.MoeLayers.Count != NLayers)
                throw new ArgumentException($"moe_layer_freq has {moe.MoeLayers.Count} flags for {NLayers} layers");
            if (moe.NumExperts < 1 || moe.ExpertsPerToken < 1 || moe.ExpertsPerToken > moe.NumExperts || moe.ExpertIntermediateSize < 1)
                throw new ArgumentException($"num_experts {moe.NumExperts}, num_experts_per_tok {moe.ExpertsPerToken} and " +
                                            $"expert_intermediate_size {moe.ExpertIntermediateSize} must be positive with top-k <= experts");
        }
        if (DModel % NHeads != 0) throw new ArgumentException($"d_model {DModel} is not divisible by n_heads {NHeads}");
        if (HeadDim % 2 != 0) throw new ArgumentException($"head_dim {HeadDim} must be even for rotate-half RoPE");
        if (NHeads % NKvHeads != 0) throw new ArgumentException($"n_heads {NHeads} is not divisible by n_kv_heads {NKvHeads}");
        if ((uint)MaskTokenId >= (uint)VocabSize) throw new ArgumentException($"mask_token_id {MaskTokenId} is outside vocab {VocabSize}");
        if ((uint)EosTokenId >= (uint)VocabSize) throw new ArgumentException($"eos_token_id {EosTokenId} is outside vocab {VocabSize}");
    }

    /// <summary>The equivalent checkpoint configuration.</summary>
    public LladaConfig ToConfig() => new()
    {
        ModelType = Moe is null ? "llada" : LladaConfigFile.MoeModelType,
        Moe = Moe,
        DModel = DModel,
        NLayers = NLayers,
        NHeads = NHeads,
        NKvHeads = NKvHeads,
        MlpHiddenSize = MlpHiddenSize,
        VocabSize = VocabSize,
        EmbeddingSize = VocabSize,
        MaxSequenceLength = MaxSequenceLength,
        RopeTheta = RopeTheta,
        RmsNormEps = RmsNormEps,
        WeightTying = WeightTying,
        MaskTokenId = MaskTokenId,
        EosTokenId = EosTokenId,
        PadTokenId = EosTokenId,
    };

    /// <summary>The shape of a checkpoint configuration (its embedding_size becomes the vocabulary).</summary>
    public static ModelShape FromConfig(LladaConfig config) => new()
    {
        Moe = config.Moe,
        DModel = config.DModel,
        NLayers = config.NLayers,
        NHeads = config.NHeads,
        NKvHeads = config.NKvHeads,
        MlpHiddenSize = config.MlpHiddenSize,
        VocabSize = config.EmbeddingSize,
        MaxSequenceLength = config.MaxSequenceLength,
        RopeTheta = config.RopeTheta,
        RmsNormEps = config.RmsNormEps,
        WeightTying = config.WeightTying,
        MaskTokenId = config.MaskTokenId,
        EosTokenId = config.EosTokenId,
    };
}
