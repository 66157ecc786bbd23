using Llada.Model;

namespace Llada.Diffusion;

/// <summary>
/// The LLaDA reverse process (sampler): start from a fully masked answer canvas and, block by block, let the mask
/// predictor propose every masked token, commit the most confident proposals and leave the rest masked for later
/// steps. Matches the reference <c>generate()</c>; the remasking and commit rules are pluggable through
/// <see cref="GenerationOptions"/>.
/// </summary>
public sealed class ReverseProcess
{
    private readonly IMaskPredictor _predictor;

    /// <summary>Creates a sampler over <paramref name="predictor"/>.</summary>
    public ReverseProcess(IMaskPredictor predictor) =>
        _predictor = predictor ?? throw new ArgumentNullException(nameof(predictor));

    /// <summary>Generates an answer canvas for one prompt.</summary>
    public GenerationResult Generate(ReadOnlySpan<int> prompt, GenerationOptions options,
        IProgress<ReverseProcessStep>? progress = null, CancellationToken cancellationToken = default) =>
        Generate([prompt.ToArray()], options, progress, cancellationToken);

    /// <summary>
    /// Generates answer canvases for several prompts at once. Prompts are left-padded to a common length (pads hidden
    /// by the key mask), so the canvases line up; each row keeps its own schedule counts. Row r draws its random
    /// numbers from streams keyed by (seed, r), so row 0 of a batch matches a single-prompt call with the same seed
    /// whenever the predictor's output for a row does not depend on its padding.
    /// </summary>
    /// <remarks>
    /// Only the active block's still-masked positions are sent to the predictor as logit positions: later positions
    /// would get confidence -inf and earlier ones are committed, so their logits are never used. The logits buffer,
    /// allocated once per call, holds [CFG branches x prompts x block_length x vocab] floats: pure diffusion over a
    /// long canvas with a large vocabulary needs block_length x vocab x 4 bytes per row and branch.
    /// With <see cref="GenerationOptions.Threshold"/> or <see cref="GenerationOptions.Factor"/> a block runs until it
    /// has no masks left, so the number of steps depends on the model's confidences.
    /// With <see cref="GenerationOptions.Cache"/> the first pass of each block runs the whole canvas and later passes
    /// only a window of it (<see cref="KvCacheMode"/>); with CFG the unconditional rows get their own cache rows.
    /// </remarks>
    public GenerationResult Generate(IReadOnlyList<int[]> prompts, GenerationOptions options,
        IProgress<ReverseProcessStep>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(_predictor, prompts);
        int batch = prompts.Count, blockLength = options.BlockLength;
        bool cfg = options.CfgScale > 0;
        var canvas = new CanvasBatch(prompts, options.GenLength, _predictor.MaskTokenId,
            options.PadTokenId ?? options.EosTokenId, cfg);
        var scorer = new CandidateScorer(options, _predictor.VocabSize, batch, canvas.Branches, blockLength);
        ICommitRule commitRule = options.CommitRule();
        int stepsPerBlock = commitRule.FollowsSchedule ? options.Steps / options.Blocks : blockLength;

        var maskedAtStart = new int[batch];    // n: masks of each row when its block starts
        var toCommit = new int[batch];         // k of this step, per row
        var genPositions = new int[blockLength];
        var logitPositions = new int[blockLength];
        var ranked = new RankedCandidate[blockLength];
        var sortedConfidences = new double[blockLength];
        var committed = new List<CommittedToken>();
        var cachePolicy = new KvCachePolicy(_predictor, options.Cache);
        var settled = new bool[batch];         // early exit: the row's text answer can no longer change
        int stepIndex = 0, settledRows = 0;

        for (int block = 0; block < options.Blocks && settledRows < batch; block++)
        {
            int blockStart = block * blockLength;
            cachePolicy.StartBlock();
            for (int r = 0; r < batch; r++) maskedAtStart[r] = canvas.CountMasked(r, blockStart, blockLength);

            for (int step = 0; step < stepsPerBlock; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                bool anyWork = false;
                for (int r = 0; r < batch; r++)
                {
                    // At most the block's masks: an early exit may have filled the rest of a row.
                    int masked = canvas.CountMasked(r, blockStart, blockLength);
                    toCommit[r] = commitRule.FollowsSchedule
                        ? Math.Min(masked, TransferSchedule.TokensAtStep(maskedAtStart[r], stepsPerBlock, step))
                        : masked;
                    anyWork |= toCommit[r] > 0;
                }
                if (!anyWork)
                {
                    if (commitRule.FollowsSchedule) continue;
                    break; // parallel decoding: the block is done when it has no masks
                }

                // Logits only for the active block's positions still masked in some row that commits this step.
                int count = 0;
                for (int i = blockStart; i < blockStart + blockLength; i++)
                    for (int r = 0; r < batch; r++)
                        if (toCommit[r] > 0 && canvas.IsMasked(r, i))
                        {
                            genPositions[count] = i;
                            logitPositions[count++] = canvas.PromptLength + i;
                            break;
                        }
                cachePolicy.Forward(canvas.Input(), canvas.Branches * batch, canvas.SeqLen, canvas.KeyMask,
                    canvas.PromptLength + blockStart, canvas.PromptLength + blockStart + blockLength,
                    logitPositions.AsSpan(0, count), scorer.Logits.AsSpan(0, canvas.Branches * batch * count * _predictor.VocabSize),
                    cancellationToken);
                scorer.Score(canvas, genPositions, count, block, step);

                // Each row commits its k most confident masked candidates (ties: lowest position); the rest stay masked.
                committed.Clear();
                for (int r = 0; r < batch; r++)
                {
                    if (toCommit[r] == 0) continue;
                    int candidates = 0;
                    for (int j = 0; j < count; j++)
                        if (canvas.IsMasked(r, genPositions[j]))
                            ranked[candidates++] = new RankedCandidate(scorer.Confidences[r * blockLength + j], genPositions[j],
                                scorer.Candidates[r * blockLength + j]);
                    Span<RankedCandidate> rowRanked = ranked.AsSpan(0, candidates);
                    rowRanked.Sort();
                    for (int c = 0; c < candidates; c++) sortedConfidences[c] = rowRanked[c].Confidence;
                    int k = commitRule.CountToCommit(sortedConfidences.AsSpan(0, candidates), toCommit[r]);
                    for (int c = 0; c < k; c++)
                    {
                        canvas.Commit(r, rowRanked[c].Position, rowRanked[c].Token);
                        if (progress is not null) committed.Add(new CommittedToken(r, rowRanked[c].Position, rowRanked[c].Token));
                    }
                }
                if (options.EarlyExit) settledRows += EndSettledRows(canvas, options, settled);
                progress?.Report(new ReverseProcessStep(stepIndex, block, step, batch, options.GenLength,
                    canvas.CopyGenerated(), committed.ToArray()));
                stepIndex++;
                if (settledRows == batch) break;
            }
        }
        return new GenerationResult(canvas.Generated(), cachePolicy.FullPasses + cachePolicy.WindowPasses, cachePolicy.WindowPasses,
            stepIndex, options.EosTokenId, options.EndOfTurnTokenId);
    }

    /// <summary>
    /// Early exit: a row whose first EOS / end-of-turn is committed with no mask before it has its text answer fixed
    /// (committed tokens never change and the answer is cut there), so its remaining masks get EOS and it needs no
    /// more steps. Returns how many rows settled now.
    /// </summary>
    private static int EndSettledRows(CanvasBatch canvas, GenerationOptions options, bool[] settled)
    {
        int newly = 0;
        for (int r = 0; r < canvas.Batch; r++)
        {
            if (settled[r]) continue;
            for (int i = 0; i < canvas.GenLength; i++)
            {
                int token = canvas[r, i];
                if (token == canvas.MaskId) break;
                if (token == options.EosTokenId || token == options.EndOfTurnTokenId)
                {
                    canvas.FillMasked(r, i + 1, options.EosTokenId);
                    settled[r] = true;
                    newly++;
                    break;
                }
            }
        }
        return newly;
    }

    /// <summary>Sort key: confidence descending, then position ascending.</summary>
    private readonly record struct RankedCandidate(double Confidence, int Position, int Token) : IComparable<RankedCandidate>
    {
        public int CompareTo(RankedCandidate other)
        {
            int c = other.Confidence.CompareTo(Confidence);
            return c != 0 ? c : Position.CompareTo(other.Position);
        }
    }
}
