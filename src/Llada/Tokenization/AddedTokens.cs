using System.Buffers;
using System.Globalization;

namespace Llada.Tokenization;

/// <summary>
/// A token of tokenizer.json "added_tokens": matched in the text before pre-tokenisation and never split.
/// </summary>
/// <param name="Id">Its id.</param>
/// <param name="Content">Its exact text.</param>
/// <param name="Special">Special tokens (BOS, EOS, mask, chat markers) can be skipped when decoding.</param>
/// <param name="LStrip">A match also swallows the whitespace on its left.</param>
/// <param name="RStrip">A match also swallows the whitespace on its right.</param>
/// <param name="SingleWord">Only matches when not touching word characters on either side.</param>
/// <param name="Normalized">Matched in the normalised text rather than the raw text.</param>
public sealed record AddedToken(int Id, string Content, bool Special, bool LStrip = false, bool RStrip = false,
    bool SingleWord = false, bool Normalized = false);

/// <summary>A stretch of text between added tokens (<see cref="TokenId"/> = -1) or one matched added token.</summary>
internal readonly record struct Segment(int Start, int End, int TokenId);

/// <summary>
/// Finds added tokens in text with Hugging Face's rules: leftmost-longest non-overlapping matches, then
/// single_word filtering and lstrip/rstrip widening.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, AddedToken[]> _byFirstChar = new();
    private readonly SearchValues<char> _firstChars;

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens)
    {
        foreach (var group in tokens.Where(t => t.Content.Length > 0).GroupBy(t => t.Content[0]))
            _byFirstChar[group.Key] = [.. group.OrderByDescending(t => t.Content.Length)];
        _firstChars = SearchValues.Create([.. _byFirstChar.Keys]);
        IsEmpty = _byFirstChar.Count == 0;
    }

    public bool IsEmpty { get; }

    /// <summary>Splits text[start..end) into text segments and added-token segments (empty text segments omitted).</summary>
    public void Split(string text, int start, int end, List<Segment> output)
    {
        if (IsEmpty)
        {
            if (end > start) output.Add(new Segment(start, end, -1));
            return;
        }
        int emitted = start; // text before this has been emitted
        int search = start;
        while (search < end)
        {
            int found = text.AsSpan(search, end - search).IndexOfAny(_firstChars);
            if (found < 0) break;
            int pos = search + found;
            AddedToken? match = null;
            foreach (var candidate in _byFirstChar[text[pos]])
            {
                if (candidate.Content.Length <= end - pos && text.AsSpan(pos, candidate.Content.Length).SequenceEqual(candidate.Content))
                {
                    match = candidate;
                    break;
                }
            }
            if (match is null)
            {
                search = pos + 1;
                continue;
            }
            int mStart = pos, mEnd = pos + match.Content.Length;
            search = mEnd;
            if (match.SingleWord && ((mStart > start && IsWordChar(text, mStart - 1, before: true)) || (mEnd < end && IsWordChar(text, mEnd, before: false))))
                continue;
            if (match.LStrip)
            {
                int s = mStart;
                while (s > emitted && char.IsWhiteSpace(text[s - 1])) s--;
                mStart = s;
            }
            if (match.RStrip)
            {
                while (mEnd < end && char.IsWhiteSpace(text[mEnd])) mEnd++;
                search = mEnd;
            }
            if (mStart > emitted) output.Add(new Segment(emitted, mStart, -1));
            output.Add(new Segment(mStart, mEnd, match.Id));
            emitted = mEnd;
        }
        if (end > emitted) output.Add(new Segment(emitted, end, -1));
    }

    private static bool IsWordChar(string text, int index, bool before)
    {
        // Look at the whole code point next to the match.
        int cp = text[index];
        if (before && char.IsLowSurrogate(text[index]) && index > 0 && char.IsHighSurrogate(text[index - 1]))
            cp = char.ConvertToUtf32(text[index - 1], text[index]);
        else if (!before && char.IsHighSurrogate(text[index]) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]))
            cp = char.ConvertToUtf32(text[index], text[index + 1]);
        if (cp == '_') return true;
        var category = CharUnicodeInfo.GetUnicodeCategory(cp);
        return category is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark
            or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber
            or UnicodeCategory.ConnectorPunctuation;
    }
}
