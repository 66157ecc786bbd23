namespace Llada.Model;

/// <summary>
/// The mask predictor p_theta(x0 | x_t): a Transformer without a causal mask that predicts every position of a
/// partially masked sequence at once. The reverse process, the likelihood bound and the training objectives
/// talk to a model only through this interface.
/// </summary>
public interface IMaskPredictor
{
    /// <summary>Width of a logits row (the checkpoint's embedding_size).</summary>
    int VocabSize { get; }

    /// <summary>Id of the mask token (mask_token_id in config.json).</summary>
    int MaskTokenId { get; }

    /// <summary>Longest sequence the model accepts (max_sequence_length).</summary>
    int MaxSequenceLength { get; }

    /// <summary>
    /// Runs the predictor on <paramref name="batch"/> rows of <paramref name="seqLen"/> tokens each.
    /// </summary>
    /// <param name="tokens">[batch, seqLen] token ids, row-major.</param>
    /// <param name="batch">Number of rows.</param>
    /// <param name="seqLen">Tokens per row.</param>
    /// <param name="keyMask">Empty for no padding, else [batch, seqLen] where false marks a pad position that no
    /// query may attend to (left-padded batches). Positions stay absolute 0..seqLen-1.</param>
    /// <param name="logitPositions">Positions (0..seqLen-1, the same for every row) whose logits are wanted.</param>
    /// <param name="logits">Receives [batch, logitPositions.Length, VocabSize] float32 logits.</param>
    /// <param name="cancellationToken">Cancels between layers.</param>
    void Forward(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask,
        ReadOnlySpan<int> logitPositions, Span<float> logits, CancellationToken cancellationToken = default);
}
