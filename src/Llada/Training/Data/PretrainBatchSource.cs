namespace Llada.Training.Data;

/// <summary>
/// Pre-training batches from a token stream packed into fixed-length sequences. An epoch is
/// n = floor(tokens / L) non-overlapping windows [phase + i·L, phase + (i+1)·L) that together cover the stream
/// once; the phase (0 ≤ phase ≤ tokens − n·L) and the window order are drawn per epoch from the seed, so the few
/// leftover tokens differ between epochs. Without shuffling the phase is 0 and windows come in order (use that
/// for held-out evaluation). Batches may span an epoch boundary. <see cref="State"/> / <see cref="Restore"/> give
/// bit-identical resumption.
/// </summary>
public sealed class PretrainBatchSource
{
    private readonly TokenCache _tokens;
    private readonly ShuffleCursor _cursor;

    /// <summary>Creates the source; fails at once if the cache holds ids the model cannot embed.</summary>
    /// <param name="tokens">A pre-training cache.</param>
    /// <param name="sequenceLength">Tokens per sequence (L).</param>
    /// <param name="batchSize">Sequences per batch.</param>
    /// <param name="modelVocabSize">The model's vocabulary size; every id in the cache must be below it.</param>
    /// <param name="seed">Seed of the per-epoch shuffles.</param>
    /// <param name="shuffle">False for in-order windows from offset 0 (held-out evaluation).</param>
    public PretrainBatchSource(TokenCache tokens, int sequenceLength, int batchSize, int modelVocabSize, ulong seed,
        bool shuffle = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sequenceLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (tokens.Kind != TokenCacheKind.Pretrain)
            throw new ArgumentException($"{tokens.Path} is not a pre-training cache.", nameof(tokens));
        tokens.EnsureFitsVocabulary(modelVocabSize);
        SequencesPerEpoch = tokens.Count / sequenceLength;
        if (SequencesPerEpoch == 0)
            throw new InvalidDataException(
                $"{tokens.Path} holds {tokens.Count} tokens, fewer than one sequence of {sequenceLength}.");
        _tokens = tokens;
        SequenceLength = sequenceLength;
        BatchSize = batchSize;
        _cursor = new ShuffleCursor(SequencesPerEpoch, seed, shuffle);
        Shuffle = shuffle;
    }

    /// <summary>Tokens per sequence.</summary>
    public int SequenceLength { get; }

    /// <summary>Sequences per batch.</summary>
    public int BatchSize { get; }

    /// <summary>Whether windows and phase are shuffled per epoch.</summary>
    public bool Shuffle { get; }

    /// <summary>Windows per epoch, floor(tokens / L).</summary>
    public long SequencesPerEpoch { get; }

    /// <summary>Tokens left out of each epoch (fewer than one sequence).</summary>
    public long LeftoverTokensPerEpoch => _tokens.Count - SequencesPerEpoch * SequenceLength;

    /// <summary>The epoch the next sequence comes from (may still read as the previous one right at a boundary).</summary>
    public long Epoch => _cursor.Epoch;

    /// <summary>Offset of the first window of the current epoch.</summary>
    public long Phase => Shuffle ? (long)(_cursor.EpochSalt % (ulong)(LeftoverTokensPerEpoch + 1)) : 0;

    /// <summary>The position to save with a checkpoint.</summary>
    public SamplerState State => _cursor.State;

    /// <summary>Continues from a saved position (same cache, sequence length and seed).</summary>
    public void Restore(SamplerState state) => _cursor.Restore(state, "pre-training data");

    /// <summary>Copies the next sequence into <paramref name="destination"/> (length L) and returns its start in the stream.</summary>
    public long NextSequence(Span<int> destination)
    {
        if (destination.Length != SequenceLength)
            throw new ArgumentException($"Destination holds {destination.Length} tokens; a sequence has {SequenceLength}.", nameof(destination));
        long window = _cursor.Next();
        long start = Phase + window * SequenceLength;
        _tokens.CopyTokens(start, destination);
        return start;
    }

    /// <summary>Fills <paramref name="tokens"/> with [BatchSize, L] token ids, row-major.</summary>
    public void NextBatch(Span<int> tokens)
    {
        if (tokens.Length != BatchSize * SequenceLength)
            throw new ArgumentException($"Batch buffer holds {tokens.Length} tokens; expected {BatchSize}×{SequenceLength}.", nameof(tokens));
        for (int r = 0; r < BatchSize; r++)
            NextSequence(tokens.Slice(r * SequenceLength, SequenceLength));
    }
}
