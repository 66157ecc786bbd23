using Llada.Model;
using Llada.Numerics;

namespace Llada.Training.Runs;

/// <summary>Moves weights between a <see cref="TrainableModel"/> and Hugging Face LLaDA checkpoint directories.</summary>
public static class ModelWeights
{
    /// <summary>The model's tensors (Hugging Face names, model order) stored as <paramref name="dtype"/>. The tensors
    /// view the live parameters: write them before the next optimiser step.</summary>
    public static IReadOnlyList<NamedTensor> ToTensors(TrainableModel model, DType dtype = DType.F32)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Tensors
            .Select(t => NamedTensor.FromSingles(t.Name, dtype, t.Shape.Select(d => (long)d).ToArray(),
                model.Parameters.AsMemory(t.Offset, t.Length)))
            .ToList();
    }

    /// <summary>
    /// Copies every tensor of the checkpoint in <paramref name="directory"/> into <paramref name="model"/> (BF16 and F16
    /// widen exactly to float32). The checkpoint must describe the same architecture.
    /// </summary>
    /// <exception cref="InvalidDataException">The checkpoint's architecture differs from the model's (the first differing key is named).</exception>
    public static void Load(TrainableModel model, string directory)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var checkpoint = LladaCheckpoint.Open(directory);
        var expected = model.Shape;
        var found = ModelShape.FromConfig(checkpoint.Config);
        string? difference = Describe(expected, found);
        if (difference is not null)
            throw new InvalidDataException($"{checkpoint.Directory}: the checkpoint's {difference}");
        foreach (var t in model.Tensors)
        {
            float[] values = checkpoint.ReadSingles(t.Name);
            if (values.Length != t.Length)
                throw new InvalidDataException($"{checkpoint.Directory}: tensor '{t.Name}' holds {values.Length} values, expected {t.Length}");
            values.CopyTo(model.Parameters.AsSpan(t.Offset, t.Length));
        }
    }

    /// <summary>The first architectural difference ("d_model is 64, expected 32"), or null when the shapes match.</summary>
    public static string? Describe(ModelShape expected, ModelShape found)
    {
        static string? MoeLayers(ModelShape s) => s.Moe is null ? null : string.Join(",", s.Moe.MoeLayers.Select(m => m ? 1 : 0));
        (string Key, object? Expected, object? Found)[] keys =
        [
            ("d_model", expected.DModel, found.DModel), ("n_layers", expected.NLayers, found.NLayers),
            ("n_heads", expected.NHeads, found.NHeads), ("n_kv_heads", expected.NKvHeads, found.NKvHeads),
            ("mlp_hidden_size", expected.MlpHiddenSize, found.MlpHiddenSize), ("vocab_size", expected.VocabSize, found.VocabSize),
            ("max_sequence_length", expected.MaxSequenceLength, found.MaxSequenceLength),
            ("mask_token_id", expected.MaskTokenId, found.MaskTokenId), ("eos_token_id", expected.EosTokenId, found.EosTokenId),
            ("rope_theta", expected.RopeTheta, found.RopeTheta), ("rms_norm_eps", expected.RmsNormEps, found.RmsNormEps),
            ("weight_tying", expected.WeightTying, found.WeightTying),
            ("model_type", expected.ToConfig().ModelType, found.ToConfig().ModelType),
            ("num_experts", expected.Moe?.NumExperts, found.Moe?.NumExperts),
            ("num_experts_per_tok", expected.Moe?.ExpertsPerToken, found.Moe?.ExpertsPerToken),
            ("expert_intermediate_size", expected.Moe?.ExpertIntermediateSize, found.Moe?.ExpertIntermediateSize),
            ("qk_layernorm", expected.Moe?.QkNorm, found.Moe?.QkNorm),
            ("moe_layer_freq", MoeLayers(expected), MoeLayers(found)),
        ];
        foreach (var (key, e, f) in keys)
            if (!Equals(e, f)) return $"{key} is {f ?? "absent"}, expected {e ?? "absent"}";
        return null;
    }
}
