namespace Llada.Diffusion;

/// <summary>What the reverse process produced for a batch of prompts.</summary>
public sealed class GenerationResult
{
    internal GenerationResult(int[][] sequences, int forwardPasses, int windowPasses, int steps, int eosTokenId, int? endOfTurnTokenId)
    {
        Sequences = sequences;
        ForwardPasses = forwardPasses;
        WindowPasses = windowPasses;
        Steps = steps;
        EosTokenId = eosTokenId;
        EndOfTurnTokenId = endOfTurnTokenId;
    }

    /// <summary>The gen_length canvas of each prompt, uncut (EOS padding and anything after it included).</summary>
    public IReadOnlyList<int[]> Sequences { get; }

    /// <summary>Predictor passes, full or window (one per step; both CFG branches share a pass).</summary>
    public int ForwardPasses { get; }

    /// <summary>Of <see cref="ForwardPasses"/>, those that ran only a window of the canvas from the KV cache
    /// (<see cref="GenerationOptions.Cache"/>); 0 without a cache.</summary>
    public int WindowPasses { get; }

    /// <summary>Of <see cref="ForwardPasses"/>, those that ran the whole canvas.</summary>
    public int FullPasses => ForwardPasses - WindowPasses;

    /// <summary>Steps that ran a forward pass.</summary>
    public int Steps { get; }

    /// <summary>The EOS id the answer is cut at.</summary>
    public int EosTokenId { get; }

    /// <summary>The end-of-turn id the answer is cut at, if any.</summary>
    public int? EndOfTurnTokenId { get; }

    /// <summary>The answer of prompt <paramref name="row"/>: its canvas cut before the first EOS / end-of-turn.</summary>
    public ReadOnlySpan<int> Answer(int row = 0) => CutAtEnd(Sequences[row], EosTokenId, EndOfTurnTokenId);

    /// <summary>The tokens before the first <paramref name="eosTokenId"/> or <paramref name="endOfTurnTokenId"/>.</summary>
    public static ReadOnlySpan<int> CutAtEnd(ReadOnlySpan<int> tokens, int eosTokenId, int? endOfTurnTokenId)
    {
        for (int i = 0; i < tokens.Length; i++)
            if (tokens[i] == eosTokenId || tokens[i] == endOfTurnTokenId) return tokens[..i];
        return tokens;
    }
}

/// <summary>A token committed at a step: prompt row, position within the generated canvas, token id.</summary>
public readonly record struct CommittedToken(int Row, int Position, int TokenId);

/// <summary>Progress of the reverse process after one step, e.g. for a CLI that redraws the canvas.</summary>
/// <param name="Step">0-based index of the step over the whole generation.</param>
/// <param name="Block">0-based block index.</param>
/// <param name="StepInBlock">0-based step index within the block.</param>
/// <param name="Batch">Number of prompts.</param>
/// <param name="GenLength">Tokens per canvas.</param>
/// <param name="Canvas">A copy of the generated canvases, [Batch, GenLength]; masked positions hold the mask id.</param>
/// <param name="Committed">Tokens committed in this step.</param>
public sealed record ReverseProcessStep(int Step, int Block, int StepInBlock, int Batch, int GenLength,
    int[] Canvas, IReadOnlyList<CommittedToken> Committed);
