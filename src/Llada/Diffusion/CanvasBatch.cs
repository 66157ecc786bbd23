namespace Llada.Diffusion;

/// <summary>
/// The canvases of a batch: each row is [left pad][prompt][gen_length tokens], all rows padded to the longest
/// prompt so the generated regions line up. Builds the predictor input, including the unconditional CFG rows
/// (prompt replaced by the mask token) and the key mask that hides pads.
/// </summary>
internal sealed class CanvasBatch
{
    private readonly int[] _padLength;
    private readonly int[] _input;
    private readonly bool[] _keyMask;

    public CanvasBatch(IReadOnlyList<int[]> prompts, int genLength, int maskId, int padId, bool cfg)
    {
        Batch = prompts.Count;
        GenLength = genLength;
        MaskId = maskId;
        Branches = cfg ? 2 : 1;
        int longest = 0;
        foreach (int[] p in prompts) longest = Math.Max(longest, p.Length);
        PromptLength = longest;
        SeqLen = longest + genLength;
        Tokens = new int[Batch * SeqLen];
        _padLength = new int[Batch];
        bool padded = false;
        for (int r = 0; r < Batch; r++)
        {
            Span<int> row = Tokens.AsSpan(r * SeqLen, SeqLen);
            int pad = longest - prompts[r].Length;
            _padLength[r] = pad;
            padded |= pad > 0;
            row[..pad].Fill(padId);
            prompts[r].CopyTo(row[pad..]);
            row[longest..].Fill(maskId);
        }
        _input = cfg ? new int[2 * Batch * SeqLen] : Tokens;
        _keyMask = padded ? new bool[Branches * Batch * SeqLen] : [];
        for (int b = 0; b < Branches && padded; b++)
            for (int r = 0; r < Batch; r++)
                _keyMask.AsSpan((b * Batch + r) * SeqLen + _padLength[r], SeqLen - _padLength[r]).Fill(true);
    }

    public int Batch { get; }
    public int GenLength { get; }
    public int MaskId { get; }
    /// <summary>1, or 2 with CFG (conditional rows first, then unconditional rows).</summary>
    public int Branches { get; }
    /// <summary>Length of the longest prompt: where the generated region starts.</summary>
    public int PromptLength { get; }
    public int SeqLen { get; }
    /// <summary>[Batch, SeqLen] current canvases.</summary>
    public int[] Tokens { get; }

    public int this[int row, int genPos] => Tokens[row * SeqLen + PromptLength + genPos];

    public bool IsMasked(int row, int genPos) => this[row, genPos] == MaskId;

    public void Commit(int row, int genPos, int token) => Tokens[row * SeqLen + PromptLength + genPos] = token;

    public int CountMasked(int row, int start, int length)
    {
        int n = 0;
        for (int i = start; i < start + length; i++) if (IsMasked(row, i)) n++;
        return n;
    }

    /// <summary>Predictor input for the current canvases, [Branches * Batch, SeqLen].</summary>
    public ReadOnlySpan<int> Input()
    {
        if (Branches == 1) return Tokens;
        Tokens.CopyTo(_input, 0);
        Tokens.CopyTo(_input, Tokens.Length);
        for (int r = 0; r < Batch; r++)
        {
            int rowStart = (Batch + r) * SeqLen;
            _input.AsSpan(rowStart + _padLength[r], PromptLength - _padLength[r]).Fill(MaskId);
        }
        return _input;
    }

    /// <summary>Empty when no row is padded, else [Branches * Batch, SeqLen], false on pads.</summary>
    public ReadOnlySpan<bool> KeyMask => _keyMask;

    /// <summary>Fills every still-masked position of a row from <paramref name="start"/> on.</summary>
    public void FillMasked(int row, int start, int token)
    {
        for (int i = start; i < GenLength; i++) if (IsMasked(row, i)) Commit(row, i, token);
    }

    /// <summary>A copy of the generated regions, [Batch, GenLength].</summary>
    public int[] CopyGenerated()
    {
        var copy = new int[Batch * GenLength];
        for (int r = 0; r < Batch; r++)
            Tokens.AsSpan(r * SeqLen + PromptLength, GenLength).CopyTo(copy.AsSpan(r * GenLength));
        return copy;
    }

    public int[][] Generated()
    {
        var rows = new int[Batch][];
        for (int r = 0; r < Batch; r++) rows[r] = Tokens.AsSpan(r * SeqLen + PromptLength, GenLength).ToArray();
        return rows;
    }
}
