namespace Llada.Serving;

/// <summary>
/// Follows one answer as its canvas becomes final and says which text may be shown: cut at EOS / end-of-turn and at
/// the first stop sequence, holding back a tail that could still change (a half-decoded UTF-8 character, or the
/// beginning of a stop sequence).
/// </summary>
internal sealed class AnswerText(Llada.Tokenization.Tokenizer tokenizer, int eosTokenId, int? endOfTurnTokenId, IReadOnlyList<string> stops)
{
    private readonly int _holdBack = stops.Count == 0 ? 0 : stops.Max(s => s.Length) - 1;
    private int _emitted;

    public bool Finished { get; private set; }
    public string Text { get; private set; } = "";
    public int[] Tokens { get; private set; } = [];
    public CompletionFinish Finish { get; private set; } = CompletionFinish.Length;

    /// <summary>
    /// Takes the final prefix of the canvas (<paramref name="complete"/>: the whole canvas) and returns the text that
    /// became showable since the last call ("" when none).
    /// </summary>
    public string Advance(ReadOnlySpan<int> final, bool complete)
    {
        if (Finished) return "";
        var tokens = Diffusion.GenerationResult.CutAtEnd(final, eosTokenId, endOfTurnTokenId);
        bool ended = tokens.Length < final.Length;
        var finish = ended ? CompletionFinish.EndOfText : CompletionFinish.Length;
        string text = Decode(tokens);

        int stopAt = -1;
        foreach (string stop in stops)
        {
            int i = text.IndexOf(stop, StringComparison.Ordinal);
            if (i >= 0 && (stopAt < 0 || i < stopAt)) stopAt = i;
        }
        if (stopAt >= 0)
        {
            text = text[..stopAt];
            tokens = tokens[..TokensCovering(tokens, stopAt)];
            ended = true;
            finish = CompletionFinish.StopSequence;
        }
        ended |= complete;

        int showable = text.Length;
        if (!ended)
        {
            // A trailing U+FFFD may be an unfinished UTF-8 sequence that later tokens complete.
            while (showable > 0 && text[showable - 1] == '\uFFFD') showable--;
            showable = Math.Max(0, showable - _holdBack);
        }
        // Decoding a longer prefix only extends the text (the held-back tail aside), so what was shown stays a prefix.
        string delta = showable > _emitted ? text[_emitted..showable] : "";
        _emitted = Math.Max(_emitted, showable);
        if (ended)
        {
            Finished = true;
            Text = text;
            Tokens = tokens.ToArray();
            Finish = finish;
        }
        return delta;
    }

    /// <summary>
    /// Text of answer tokens without special tokens. Ids past the tokenizer's vocabulary (a model's embedding is often
    /// padded beyond it) have no text and are skipped rather than failing the request.
    /// </summary>
    private string Decode(ReadOnlySpan<int> tokens)
    {
        int vocab = tokenizer.VocabSize;
        if (!tokens.ContainsAnyExceptInRange(0, vocab - 1)) return tokenizer.Decode(tokens, skipSpecialTokens: true);
        var known = new List<int>(tokens.Length);
        foreach (int t in tokens)
            if ((uint)t < (uint)vocab) known.Add(t);
        return tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(known), skipSpecialTokens: true);
    }

    /// <summary>Fewest leading tokens whose text reaches <paramref name="chars"/> characters.</summary>
    private int TokensCovering(ReadOnlySpan<int> tokens, int chars)
    {
        int lo = 0, hi = tokens.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            if (Decode(tokens[..mid]).Length >= chars) hi = mid;
            else lo = mid + 1;
        }
        return lo;
    }
}
