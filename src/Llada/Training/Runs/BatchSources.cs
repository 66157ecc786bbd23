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

/// <summary>One tokenised preference pair: the rendered prompt and both responses (answer, end of turn, EOS).</summary>
public sealed record EncodedPreference(int[] Prompt, int[] Chosen, int[] Rejected)
{
    /// <summary>Tokens of the longer row.</summary>
    public int Length => Prompt.Length + Math.Max(Chosen.Length, Rejected.Length);
}

/// <summary>
/// Preference pairs as an <see cref="ITrainingBatchSource"/>: each batch holds <see cref="BatchSize"/> pairs as
/// 2 x BatchSize rows (prompt + chosen, prompt + rejected, ...), padded with EOS to the longest row of the batch as in
/// SFT, with one prompt length per row. Pairs are reshuffled every epoch; the position saves and restores exactly.
/// </summary>
public sealed class PreferenceBatches : ITrainingBatchSource
{
    private readonly IReadOnlyList<EncodedPreference> _pairs;
    private readonly ShuffleCursor _cursor;
    private readonly int _eos;
    private readonly int[] _tokens, _prompts;

    /// <summary>Serves <paramref name="pairs"/> (each at most <paramref name="maxLength"/> tokens) in batches of <paramref name="pairsPerBatch"/>.</summary>
    public PreferenceBatches(IReadOnlyList<EncodedPreference> pairs, int pairsPerBatch, int maxLength, int eosTokenId, ulong seed, bool shuffle = true)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentOutOfRangeException.ThrowIfLessThan(pairsPerBatch, 1);
        if (pairs.Count == 0) throw new ArgumentException("there are no preference pairs", nameof(pairs));
        foreach (var p in pairs)
            if (p.Length > maxLength) throw new ArgumentException($"a preference pair of {p.Length} tokens exceeds the maximum length {maxLength}", nameof(pairs));
        _pairs = pairs;
        BatchSize = pairsPerBatch;
        SequenceLength = maxLength;
        _eos = eosTokenId;
        _cursor = new ShuffleCursor(pairs.Count, seed, shuffle);
        _tokens = new int[2 * pairsPerBatch * maxLength];
        _prompts = new int[2 * pairsPerBatch];
    }

    /// <summary>Pairs per batch (the batch has twice as many rows).</summary>
    public int BatchSize { get; }
    /// <inheritdoc/>
    public int SequenceLength { get; }

    /// <inheritdoc/>
    public TokenBatch Next()
    {
        Span<int> picked = BatchSize <= 256 ? stackalloc int[BatchSize] : new int[BatchSize];
        int width = 0;
        for (int i = 0; i < BatchSize; i++)
        {
            picked[i] = (int)_cursor.Next();
            width = Math.Max(width, _pairs[picked[i]].Length);
        }
        for (int i = 0; i < BatchSize; i++)
        {
            var pair = _pairs[picked[i]];
            for (int side = 0; side < 2; side++)
            {
                int row = 2 * i + side;
                Span<int> r = _tokens.AsSpan(row * width, width);
                int[] response = side == 0 ? pair.Chosen : pair.Rejected;
                pair.Prompt.CopyTo(r);
                response.CopyTo(r[pair.Prompt.Length..]);
                r[(pair.Prompt.Length + response.Length)..].Fill(_eos);
                _prompts[row] = pair.Prompt.Length;
            }
        }
        return new TokenBatch(_tokens.AsMemory(0, 2 * BatchSize * width), 2 * BatchSize, width, _prompts);
    }

    /// <inheritdoc/>
    public byte[] SaveState() => Encoding.UTF8.GetBytes(_cursor.State.ToJson());

    /// <inheritdoc/>
    public void LoadState(ReadOnlySpan<byte> state)
    {
        try
        {
            _cursor.Restore(PretrainBatches.ParseState(state), "preference data");
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException(ex.Message, ex);
        }
    }
}
