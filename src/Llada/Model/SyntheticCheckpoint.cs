using Llada.Numerics;

namespace Llada.Model;

/// <summary>
/// Writes a LLaDA checkpoint of any shape with random weights, streamed tensor by tensor, so an 8B-shaped model can
/// be produced on disk for speed and memory measurements without real weights (which cannot be downloaded here).
/// Matrices are uniform in ±sqrt(3)·0.02 (std 0.02), norm weights are 1. Deterministic for a given seed.
/// </summary>
public static class SyntheticCheckpoint
{
    /// <summary>A dense config of the given shape with LLaDA-like defaults (mask id = last vocabulary id).</summary>
    public static LladaConfig Config(int dModel, int nLayers, int nHeads, int mlp, int vocab, int? nKvHeads = null, int maxSeq = 4096) => new()
    {
        DModel = dModel,
        NLayers = nLayers,
        NHeads = nHeads,
        NKvHeads = nKvHeads ?? nHeads,
        MlpHiddenSize = mlp,
        VocabSize = vocab,
        EmbeddingSize = vocab,
        MaxSequenceLength = maxSeq,
        RopeTheta = 500000,
        MaskTokenId = vocab - 1,
        EosTokenId = vocab - 2,
        PadTokenId = vocab - 2,
    };

    /// <summary>
    /// A LLaDA-MoE config of the given shape: every layer MoE with <paramref name="experts"/> experts of width
    /// <paramref name="expertFf"/>, top-<paramref name="topK"/> softmax routing without renormalisation, QK-norm, no
    /// shared expert, untied head (the LLaDA-MoE-7B-A1B layout); mask id = last vocabulary id.
    /// </summary>
    public static LladaConfig MoeConfig(int dModel, int nLayers, int nHeads, int experts, int topK, int expertFf, int vocab,
        int? nKvHeads = null, int maxSeq = 4096) => Config(dModel, nLayers, nHeads, 0, vocab, nKvHeads, maxSeq) with
    {
        ModelType = LladaConfigFile.MoeModelType,
        RopeTheta = 50000,
        Moe = new Model.MoeConfig
        {
            NumExperts = experts,
            ExpertsPerToken = topK,
            ExpertIntermediateSize = expertFf,
            MoeLayers = Model.MoeConfig.AllMoe(nLayers),
        },
    };

    /// <summary>
    /// The LLaDA-8B shape (spec section 4: d_model 4096, 32 layers, 32 heads, mlp 12288, vocab 126464, untied head)
    /// with the real special-token ids.
    /// </summary>
    public static LladaConfig Llada8B() => Config(4096, 32, 32, 12288, 126464) with
    {
        MaskTokenId = 126336, EosTokenId = 126081, PadTokenId = 126081,
    };

    /// <summary>
    /// The LLaDA-MoE-7B-A1B shape (spec section 7: hidden 2048, 16 layers, 16 heads, 64 experts of width 1024, top-8
    /// not renormalised, QK-norm, no shared expert, vocab 157184, untied head) with its special-token ids.
    /// </summary>
    public static LladaConfig LladaMoe7BA1B() => MoeConfig(2048, 16, 16, 64, 8, 1024, 157184, maxSeq: 8192) with
    {
        MaskTokenId = 156895, EosTokenId = 156892, PadTokenId = 156892, MlpHiddenSize = 8192, // dense_intermediate_size: stated, unused
    };

    /// <summary>
    /// Writes config.json and safetensors (sharded above 4 GiB) into <paramref name="directory"/>, streaming: no tensor
    /// is ever held in memory. With <see cref="DType.Q8_0"/> every 2-D matrix except the embedding is stored as a Q8_0
    /// pair and the embedding and norms as BF16. <paramref name="progress"/> receives each stored tensor as it starts.
    /// </summary>
    public static void Write(string directory, LladaConfig config, DType dtype, int seed = 0,
        CancellationToken cancellationToken = default, IProgress<NamedTensor>? progress = null)
    {
        var tensors = new List<NamedTensor>();
        foreach (var (name, shape) in LladaTensorNames.Expected(config))
        {
            bool norm = shape.Length == 1;
            ulong tensorSeed = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ Hash(name);
            void Fill(long offset, Span<float> chunk)
            {
                if (norm)
                {
                    chunk.Fill(1f);
                    return;
                }
                const float scale = 0.02f * 1.7320508f;
                for (int i = 0; i < chunk.Length; i++)
                {
                    ulong z = Mix(tensorSeed + (ulong)(offset + i));
                    chunk[i] = ((z >> 40) * (1f / (1 << 24)) * 2f - 1f) * scale;
                }
            }
            if (dtype == DType.Q8_0 && !norm && name != LladaTensorNames.EmbeddingOf(config))
            {
                var (quants, scales) = NamedTensor.Q8FromGenerator(name, shape[0], shape[1], Fill);
                tensors.Add(quants);
                tensors.Add(scales);
            }
            else tensors.Add(NamedTensor.FromGenerator(name, dtype == DType.Q8_0 ? DType.BF16 : dtype, shape, Fill));
        }
        CheckpointWriter.Write(directory, config, tensors,
            new CheckpointWriteOptions { Overwrite = true, MaxShardBytes = 4L << 30, Progress = progress }, cancellationToken);
    }

    private static ulong Hash(string s)
    {
        ulong h = 1469598103934665603UL;
        foreach (char c in s) h = (h ^ c) * 1099511628211UL;
        return h;
    }

    // splitmix64 finaliser: a counter-based generator, so any chunk can be produced independently.
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
