namespace Llada.Model;

/// <summary>The Hugging Face tensor names of a dense LLaDA checkpoint and the shape each must have.</summary>
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

    /// <summary>Every tensor the config requires, in model order (embedding, blocks, final norm, head), with its shape.</summary>
    public static IReadOnlyList<(string Name, long[] Shape)> Expected(LladaConfig config)
    {
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
