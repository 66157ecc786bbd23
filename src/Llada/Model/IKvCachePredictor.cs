namespace Llada.Model;

/// <summary>
/// A mask predictor that can reuse keys and values between steps (Fast-dLLM's approximate KV cache, beyond the
/// paper): <see cref="ForwardFillingCache"/> runs the usual full pass and stores every position's keys and values;
/// <see cref="ForwardWindow"/> then runs only a window of positions, whose queries attend to fresh keys inside the
/// window and to the cached ones outside it. The result is exact while nothing outside the window has changed
/// since the cache was filled, and an approximation otherwise.
/// </summary>
public interface IKvCachePredictor : IMaskPredictor
{
    /// <summary>An empty cache for <paramref name="rows"/> sequences of <paramref name="seqLen"/> tokens.</summary>
    KvCache CreateCache(int rows, int seqLen);

    /// <summary>
    /// <see cref="IMaskPredictor.Forward"/>, also storing every layer's keys and values of all
    /// [batch, seqLen] positions in <paramref name="cache"/> (which must have batch rows of seqLen positions).
    /// </summary>
    void ForwardFillingCache(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask,
        ReadOnlySpan<int> logitPositions, Span<float> logits, KvCache cache, CancellationToken cancellationToken = default);

    /// <summary>
    /// Runs only positions [<paramref name="windowStart"/>, <paramref name="windowEnd"/>) of each row: their
    /// queries attend to every key position, taking positions outside the window from <paramref name="cache"/>
    /// and writing the window's fresh keys and values into it.
    /// </summary>
    /// <param name="tokens">[batch, seqLen] token ids; only the window's are read.</param>
    /// <param name="batch">Number of rows.</param>
    /// <param name="seqLen">Tokens per row.</param>
    /// <param name="keyMask">As in <see cref="IMaskPredictor.Forward"/>, over all seqLen positions.</param>
    /// <param name="cache">A cache filled by <see cref="ForwardFillingCache"/> for the same rows.</param>
    /// <param name="windowStart">First position run.</param>
    /// <param name="windowEnd">One past the last position run.</param>
    /// <param name="logitPositions">Absolute positions inside the window whose logits are wanted.</param>
    /// <param name="logits">Receives [batch, logitPositions.Length, VocabSize] float32 logits.</param>
    /// <param name="cancellationToken">Cancels between layers.</param>
    void ForwardWindow(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask, KvCache cache,
        int windowStart, int windowEnd, ReadOnlySpan<int> logitPositions, Span<float> logits,
        CancellationToken cancellationToken = default);
}
