namespace Llada.Training.Data;

/// <summary>What to do with an SFT pair longer than the maximum length.</summary>
public enum SftOverflow
{
    /// <summary>Leave the pair out (counted in <see cref="SftBatchSource.SkippedCount"/>). The default: a cut
    /// prompt loses BOS and the start of the question, which teaches the model a malformed format.</summary>
    Skip,

    /// <summary>Drop the oldest prompt tokens (from the left, BOS included) until the pair fits; pairs whose
    /// response alone leaves no room for a prompt token are still skipped.</summary>
    TruncatePromptLeft,
}

/// <summary>How wide an SFT batch is.</summary>
public enum SftPadding
{
    /// <summary>As wide as the longest row of the batch (less compute on short pairs).</summary>
    ToLongestInBatch,

    /// <summary>Always <see cref="SftBatchOptions.MaxLength"/> wide (fixed shapes).</summary>
    ToMaxLength,
}

/// <summary>Settings of an <see cref="SftBatchSource"/>.</summary>
public sealed record SftBatchOptions
{
    /// <summary>Rows per batch.</summary>
    public required int BatchSize { get; init; }

    /// <summary>Longest row (prompt + response + padding) allowed.</summary>
    public required int MaxLength { get; init; }

    /// <summary>The padding id (EOS).</summary>
    public required int EosTokenId { get; init; }

    /// <summary>Seed of the per-epoch shuffles.</summary>
    public ulong Seed { get; init; }

    /// <summary>False for pairs in file order (evaluation).</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Policy for over-long pairs.</summary>
    public SftOverflow Overflow { get; init; } = SftOverflow.Skip;

    /// <summary>Batch width policy.</summary>
    public SftPadding Padding { get; init; } = SftPadding.ToLongestInBatch;
}

/// <summary>
/// A reusable SFT batch: <see cref="Rows"/> rows of <see cref="Length"/> tokens (row-major, stride Length), each a
/// prompt followed by its response and then EOS padding. Per the LLaDA SFT objective the padding is part of the
/// response: it is masked and trained like any response token and counts in <see cref="ResponseLength"/>.
/// </summary>
public sealed class SftBatch
{
    private readonly int[] _tokens;

    internal SftBatch(int rows, int maxLength)
    {
        _tokens = new int[rows * maxLength];
        PromptLengths = new int[rows];
        PairIndices = new long[rows];
        Rows = rows;
    }

    /// <summary>Number of rows.</summary>
    public int Rows { get; }

    /// <summary>Tokens per row in this batch.</summary>
    public int Length { get; internal set; }

    /// <summary>[Rows, Length] token ids.</summary>
    public Span<int> Tokens => _tokens.AsSpan(0, Rows * Length);

    /// <summary>Prompt tokens at the start of each row (never masked).</summary>
    public int[] PromptLengths { get; }

    /// <summary>Index of each row's pair in the cache (for diagnostics).</summary>
    public long[] PairIndices { get; }

    /// <summary>Row <paramref name="row"/>'s tokens.</summary>
    public Span<int> Row(int row) => _tokens.AsSpan(row * Length, Length);

    /// <summary>Response length of a row including EOS padding: Length − prompt length (the Eq. 5 normaliser).</summary>
    public int ResponseLength(int row) => Length - PromptLengths[row];
}

/// <summary>
/// SFT batches from a tokenised pair cache (<see cref="SftCache"/>): reproducibly shuffled per epoch, each row
/// prompt + response padded with EOS, over-long pairs skipped or left-truncated per <see cref="SftOverflow"/>.
/// <see cref="State"/> / <see cref="Restore"/> give bit-identical resumption.
/// </summary>
public sealed class SftBatchSource
{
    private readonly TokenCache _pairs;
    private readonly long[] _eligible;
    private readonly ShuffleCursor _cursor;

    /// <summary>Creates the source; fails at once if the cache holds ids the model cannot embed or no pair fits.</summary>
    public SftBatchSource(TokenCache pairs, SftBatchOptions options, int modelVocabSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxLength, 2);
        if (pairs.Kind != TokenCacheKind.Sft) throw new ArgumentException($"{pairs.Path} is not an SFT cache.", nameof(pairs));
        pairs.EnsureFitsVocabulary(modelVocabSize);
        if ((uint)options.EosTokenId >= (uint)modelVocabSize)
            throw new ArgumentOutOfRangeException(nameof(options), options.EosTokenId, $"EOS id is outside the model vocabulary of {modelVocabSize}.");
        _pairs = pairs;
        Options = options;
        var eligible = new List<long>();
        for (long i = 0; i < pairs.RecordCount; i++)
        {
            var r = pairs.GetRecord(i);
            if (r.Length <= options.MaxLength) eligible.Add(i);
            else if (options.Overflow == SftOverflow.TruncatePromptLeft && r.ResponseLength < options.MaxLength)
            {
                eligible.Add(i);
                TruncatedCount++;
            }
            else SkippedCount++;
        }
        if (eligible.Count == 0)
            throw new InvalidDataException(
                $"None of the {pairs.RecordCount} SFT pairs in {pairs.Path} fits in {options.MaxLength} tokens.");
        _eligible = [.. eligible];
        _cursor = new ShuffleCursor(_eligible.Length, options.Seed, options.Shuffle);
    }

    /// <summary>The settings.</summary>
    public SftBatchOptions Options { get; }

    /// <summary>Pairs used per epoch.</summary>
    public long PairsPerEpoch => _eligible.Length;

    /// <summary>Pairs left out because they are longer than <see cref="SftBatchOptions.MaxLength"/>.</summary>
    public long SkippedCount { get; }

    /// <summary>Pairs kept with a left-truncated prompt.</summary>
    public long TruncatedCount { get; }

    /// <summary>The epoch the next pair comes from.</summary>
    public long Epoch => _cursor.Epoch;

    /// <summary>The position to save with a checkpoint.</summary>
    public SamplerState State => _cursor.State;

    /// <summary>Continues from a saved position (same cache and options).</summary>
    public void Restore(SamplerState state) => _cursor.Restore(state, "SFT data");

    /// <summary>Allocates a batch buffer sized for these options; reuse it for every <see cref="NextBatch"/>.</summary>
    public SftBatch CreateBatch() => new(Options.BatchSize, Options.MaxLength);

    /// <summary>Fills <paramref name="batch"/> with the next <see cref="SftBatchOptions.BatchSize"/> pairs.</summary>
    public void NextBatch(SftBatch batch)
    {
        int rows = Options.BatchSize;
        if (batch.Rows != rows || batch.Tokens.Length > rows * Options.MaxLength)
            throw new ArgumentException("The batch was not created by this source.", nameof(batch));
        Span<TokenRecord> records = rows <= 256 ? stackalloc TokenRecord[rows] : new TokenRecord[rows];
        int width = 0;
        for (int r = 0; r < rows; r++)
        {
            long pair = _eligible[_cursor.Next()];
            batch.PairIndices[r] = pair;
            records[r] = _pairs.GetRecord(pair);
            width = Math.Max(width, Math.Min(records[r].Length, Options.MaxLength));
        }
        if (Options.Padding == SftPadding.ToMaxLength) width = Options.MaxLength;
        batch.Length = width;
        for (int r = 0; r < rows; r++)
        {
            var rec = records[r];
            int cut = Math.Max(0, rec.Length - Options.MaxLength); // > 0 only under TruncatePromptLeft
            int used = rec.Length - cut;
            var row = batch.Row(r);
            _pairs.CopyTokens(rec.Start + cut, row[..used]);
            row[used..].Fill(Options.EosTokenId);
            batch.PromptLengths[r] = rec.PromptLength - cut;
        }
    }
}
