namespace Llada.Training;

/// <summary>What a parameter tensor is, which decides its initialisation and weight decay.</summary>
public enum ParameterKind
{
    /// <summary>The token embedding wte [vocab, d].</summary>
    Embedding,
    /// <summary>An RMSNorm weight [d], initialised to 1.</summary>
    Norm,
    /// <summary>A projection matrix [out, in] inside a block.</summary>
    Matrix,
    /// <summary>A projection whose output is added to the residual stream (attn_out, block ff_out): init std scaled by 1/sqrt(2 n_layers).</summary>
    ResidualMatrix,
    /// <summary>The untied LM head model.transformer.ff_out [vocab, d].</summary>
    LmHead,
}

/// <summary>A named view into <see cref="TrainableModel.Parameters"/> (and the same range of its gradients).</summary>
/// <param name="Name">The Hugging Face LLaDA tensor name, e.g. model.transformer.blocks.0.q_proj.weight.</param>
/// <param name="Offset">First element in the flat parameter array.</param>
/// <param name="Shape">[out, in] for matrices, [d] for norms.</param>
/// <param name="Kind">Role of the tensor.</param>
public sealed record ParameterTensor(string Name, int Offset, int[] Shape, ParameterKind Kind)
{
    /// <summary>Number of elements.</summary>
    public int Length => Shape.Aggregate(1, (a, b) => a * b);

    /// <summary>True for two-dimensional tensors (embedding, projections, LM head).</summary>
    public bool IsMatrix => Shape.Length == 2;
}
