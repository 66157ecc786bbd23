namespace Llada.Training.Runs;

/// <summary>
/// An endless, deterministic stream of training micro-batches whose read position can be saved and restored, so a
/// resumed run sees exactly the batches an uninterrupted run would have seen.
/// </summary>
public interface ITrainingBatchSource
{
    /// <summary>Rows per batch.</summary>
    int BatchSize { get; }

    /// <summary>Tokens per row.</summary>
    int SequenceLength { get; }

    /// <summary>
    /// The next batch: [BatchSize, SequenceLength] token ids and, for SFT, one prompt length per row. The memory may be
    /// reused by the following call.
    /// </summary>
    TokenBatch Next();

    /// <summary>The read position (and any shuffling random state) as bytes.</summary>
    byte[] SaveState();

    /// <summary>Restores a position from <see cref="SaveState"/>; throws <see cref="InvalidDataException"/> when it does
    /// not belong to this source (other files, other batch shape).</summary>
    void LoadState(ReadOnlySpan<byte> state);
}
