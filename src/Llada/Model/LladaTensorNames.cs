namespace Llada.Model;

/// <summary>
/// The Hugging Face tensor names of a LLaDA checkpoint and the shape each must have: the dense LLaDA names
/// (model.transformer.*) or, for a LLaDA-MoE config, the LLaDA-MoE names (<see cref="MoeTensorNames"/>).
/// </summary>
public static class LladaTensorNames
{
    /// <summary>Token embedding [embedding_size, d_model].</summary>
    public const string Embedding = "model.transformer.wte.weight";
    /// <summary>Final RMSNorm weight [d_model].</summary>
    public const string FinalNorm = "model.transformer.ln_f.weight";
    /// <summary>LM head [embedding_size, d_model]; absent when weight_tying (the head is then wte).</summary>
    public const string LmHead = "model.transformer.ff_out.weight";

    /// <summary>Name of a per-block weight, e.g. Block(3, "q_proj") = model.transformer.blocks.3.q_proj.weight.</summary>
    public static string Block(int layer, string part) => $"model.transformer.blocks.{layer}.{part}.weight";

    /// <summary>The token embedding's name for <paramref name="config"/>'s layout.</summary>
    public static string EmbeddingOf(LladaConfig config) => config.Moe is null ? Embedding : MoeTensorNames.Embedding;

    /// <summary>The final norm's name for <paramref name="config"/>'s layout.</summary>
    public static string FinalNormOf(LladaConfig config) => config.Moe is null ? FinalNorm : MoeTensorNames.FinalNorm;

    /// <summary>The LM head's name for <paramref name="config"/>'s layout (the embedding when weights are tied).</summary>
    public static string LmHeadOf(LladaConfig config) =>
        config.WeightTying ? EmbeddingOf(config) : config.Moe is null ? LmHead : MoeTensorNames.LmHead;

    /// <summary>Every tensor the config requires, in model order (embedding, blocks, final norm, head), with its shape.</summary>
    public static IReadOnlyList<(string Name, long[] Shape)> Expected(LladaConfig config)
    {
        if (config.Moe is not null) return MoeTensorNames.Expected(config);
        long d = config.DModel, ff = config.MlpHiddenSize, kv = (long)config.NKvHeads * config.HeadDim;
        var list = new List<(string, long[])> { (Embedding, [config.EmbeddingSize, d]) };
        for (int i = 0; i < config.NLayers; i++)
        {
            list.Add((Block(i, "attn_norm"), [d]));
            list.Add((Block(i, "q_proj"), [d, d]));
            list.Add((Block(i, "k_proj"), [kv, d]));
            list.Add((Block(i, "v_proj"), [kv, d]));
            list.Add((Block(i, "attn_out"), [d, d]));
            list.Add((Block(i, "ff_norm"), [d]));
            list.Add((Block(i, "ff_proj"), [ff, d]));
            list.Add((Block(i, "up_proj"), [ff, d]));
            list.Add((Block(i, "ff_out"), [d, ff]));
        }
        list.Add((FinalNorm, [d]));
        if (!config.WeightTying) list.Add((LmHead, [config.EmbeddingSize, d]));
        return list;
    }

    /// <summary>
    /// Parameters one token's forward pass multiplies with: every tensor of <see cref="Expected"/> except the untied
    /// input embedding (a row lookup) and, in each MoE layer, the num_experts - num_experts_per_tok experts not routed to.
    /// </summary>
    public static long ActiveParameterCount(LladaConfig config)
    {
        long total = Expected(config).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));
        if (!config.WeightTying) total -= (long)config.EmbeddingSize * config.DModel;
        if (config.Moe is { } moe)
            total -= (long)moe.MoeLayerCount * (moe.NumExperts - moe.ExpertsPerToken) * 3L * moe.ExpertIntermediateSize * config.DModel;
        return total;
    }

    /// <summary>
    /// Compares actual tensor shapes against <see cref="Expected"/>: returns one line per missing or mis-shaped
    /// tensor (all of them, not just the first) and fills <paramref name="unexpected"/> with names the model does not use.
    /// </summary>
    public static List<string> Check(LladaConfig config, IReadOnlyDictionary<string, IReadOnlyList<long>> actual,
        List<string> unexpected)
    {
        var problems = new List<string>();
        var expectedNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, shape) in Expected(config))
        {
            expectedNames.Add(name);
            if (!actual.TryGetValue(name, out var found))
                problems.Add($"missing tensor '{name}' (expected shape {TensorInfo.FormatShape(shape)})");
            else if (!found.SequenceEqual(shape))
                problems.Add($"tensor '{name}' has shape {TensorInfo.FormatShape(found)}, expected {TensorInfo.FormatShape(shape)}");
        }
        foreach (var name in actual.Keys.Order(StringComparer.Ordinal))
            if (!expectedNames.Contains(name)) unexpected.Add(name);
        return problems;
    }
}

/// <summary>The tensor names of a LLaDA-MoE checkpoint (spec section 7) and their shapes.</summary>
public static class MoeTensorNames
{
    /// <summary>Token embedding [vocab, d].</summary>
    public const string Embedding = "model.embed_tokens.weight";
    /// <summary>Final RMSNorm weight [d].</summary>
    public const string FinalNorm = "model.norm.weight";
    /// <summary>LM head [vocab, d]; absent when tie_word_embeddings.</summary>
    public const string LmHead = "lm_head.weight";

    /// <summary>A per-layer weight, e.g. Layer(3, "self_attn.q_proj") = model.layers.3.self_attn.q_proj.weight.</summary>
    public static string Layer(int layer, string part) => $"model.layers.{layer}.{part}.weight";

    /// <summary>Projection <paramref name="proj"/> (gate_proj, up_proj, down_proj) of routed expert <paramref name="expert"/>.</summary>
    public static string Expert(int layer, int expert, string proj) => Layer(layer, $"mlp.experts.{expert}.{proj}");

    /// <summary>
    /// Every tensor of a LLaDA-MoE config, in model order: per layer the norms, attention (with q_norm / k_norm over
    /// head_dim when qk_layernorm), then either the router mlp.gate and the experts (plus mlp.shared_experts when
    /// configured) or, for a dense layer, mlp.{gate,up,down}_proj.
    /// </summary>
    public static IReadOnlyList<(string Name, long[] Shape)> Expected(LladaConfig config)
    {
        var moe = config.Moe ?? throw new ArgumentException("not a LLaDA-MoE config", nameof(config));
        long d = config.DModel, kv = (long)config.NKvHeads * config.HeadDim, hd = config.HeadDim;
        long ff = config.MlpHiddenSize, ffe = moe.ExpertIntermediateSize, ffs = moe.SharedExpertIntermediateSize;
        var list = new List<(string, long[])> { (Embedding, [config.VocabSize, d]) };
        for (int i = 0; i < config.NLayers; i++)
        {
            list.Add((Layer(i, "input_layernorm"), [d]));
            list.Add((Layer(i, "self_attn.q_proj"), [d, d]));
            list.Add((Layer(i, "self_attn.k_proj"), [kv, d]));
            list.Add((Layer(i, "self_attn.v_proj"), [kv, d]));
            list.Add((Layer(i, "self_attn.o_proj"), [d, d]));
            if (moe.QkNorm)
            {
                list.Add((Layer(i, "self_attn.q_norm"), [hd]));
                list.Add((Layer(i, "self_attn.k_norm"), [hd]));
            }
            list.Add((Layer(i, "post_attention_layernorm"), [d]));
            if (!moe.MoeLayers[i])
            {
                list.Add((Layer(i, "mlp.gate_proj"), [ff, d]));
                list.Add((Layer(i, "mlp.up_proj"), [ff, d]));
                list.Add((Layer(i, "mlp.down_proj"), [d, ff]));
                continue;
            }
            list.Add((Layer(i, "mlp.gate"), [moe.NumExperts, d]));
            for (int e = 0; e < moe.NumExperts; e++)
            {
                list.Add((Expert(i, e, "gate_proj"), [ffe, d]));
                list.Add((Expert(i, e, "up_proj"), [ffe, d]));
                list.Add((Expert(i, e, "down_proj"), [d, ffe]));
            }
            if (ffs > 0)
            {
                list.Add((Layer(i, "mlp.shared_experts.gate_proj"), [ffs, d]));
                list.Add((Layer(i, "mlp.shared_experts.up_proj"), [ffs, d]));
                list.Add((Layer(i, "mlp.shared_experts.down_proj"), [d, ffs]));
            }
        }
        list.Add((FinalNorm, [d]));
        if (!config.WeightTying) list.Add((LmHead, [config.VocabSize, d]));
        return list;
    }
}
