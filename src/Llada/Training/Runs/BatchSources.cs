using System.Text;
using Llada.Training.Data;

namespace Llada.Training.Runs;

/// <summary>Packed pre-training sequences from a <see cref="PretrainBatchSource"/> as an <see cref="ITrainingBatchSource"/>.</summary>
public sealed class PretrainBatches : ITrainingBatchSource
{
    private readonly PretrainBatchSource _source;
    private readonly int[] _tokens;

    /// <summary>Wraps <paramref name="source"/>.</summary>
    public PretrainBatches(PretrainBatchSource source)
    {
        _source = source ?? throw new ArgumentNullException(nameof(source));
        _tokens = new int[source.BatchSize * source.SequenceLength];
    }

    /// <inheritdoc/>
    public int BatchSize => _source.BatchSize;
    /// <inheritdoc/>
    public int SequenceLength => _source.SequenceLength;

    /// <inheritdoc/>
    public TokenBatch Next()
    {
        _source.NextBatch(_tokens);
        return new TokenBatch(_tokens, BatchSize, SequenceLength);
    }

    /// <inheritdoc/>
    public byte[] SaveState() => Encoding.UTF8.GetBytes(_source.State.ToJson());

    /// <inheritdoc/>
    public void LoadState(ReadOnlySpan<byte> state) => _source.Restore(ParseState(state));

    internal static SamplerState ParseState(ReadOnlySpan<byte> state)
    {
        try
        {
            return SamplerState.FromJson(Encoding.UTF8.GetString(state));
        }
        catch (FormatException ex)
        {
            throw new InvalidDataException($"the saved data position cannot be read: {ex.Message}", ex);
        }
    }
}

/// <summary>
/// SFT batches from an <see cref="SftBatchSource"/> as an <see cref="ITrainingBatchSource"/>: prompt + response rows
/// padded with EOS, with the prompt lengths the Eq. 5 objective needs. Rows are as wide as the longest in the batch.
/// </summary>
public sealed class SftBatches : ITrainingBatchSource
{
    private readonly SftBatchSource _source;
    private readonly SftBatch _batch;
    private readonly int[] _tokens;

    /// <summary>Wraps <paramref name="source"/>.</summary>
    public SftBatches(SftBatchSource source)
    {
        _source = source ?? throw new ArgumentNullException(nameof(source));
        _batch = source.CreateBatch();
        _tokens = new int[source.Options.BatchSize * source.Options.MaxLength];
    }

    /// <inheritdoc/>
    public int BatchSize => _source.Options.BatchSize;
    /// <inheritdoc/>
    public int SequenceLength => _source.Options.MaxLength;

    /// <inheritdoc/>
    public TokenBatch Next()
    {
        _source.NextBatch(_batch);
        int n = _batch.Rows * _batch.Length;
        _batch.Tokens.CopyTo(_tokens);
        return new TokenBatch(_tokens.AsMemory(0, n), _batch.Rows, _batch.Length, _batch.PromptLengths);
    }

    /// <inheritdoc/>
    public byte[] SaveState() => Encoding.UTF8.GetBytes(_source.State.ToJson());

    /// <inheritdoc/>
    public void LoadState(ReadOnlySpan<byte> state) => _source.Restore(PretrainBatches.ParseState(state));
}

/// <summary>Helpers for held-out batches.</summary>
public static class HeldOutBatches
{
    /// <summary>Copies the next <paramref name="count"/> batches of <paramref name="source"/> (use an unshuffled source so
    /// they are the first ones of the file) into fresh arrays.</summary>
    public static IReadOnlyList<TokenBatch> Take(ITrainingBatchSource source, int count)
    {
        ArgumentNullException.ThrowIfNull(source);
        var batches = new List<TokenBatch>(count);
        for (int i = 0; i < count; i++)
        {
            var b = source.Next();
            batches.Add(new TokenBatch(b.Tokens.ToArray(), b.Batch, b.SeqLen, b.PromptLengths.IsEmpty ? default : b.PromptLengths.ToArray()));
        }
        return batches;
    }
}
