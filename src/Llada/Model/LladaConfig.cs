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
    /// <summary>Head dimension, d_model / n_heads.</summary>
    public int HeadDim => DModel / NHeads;
}
