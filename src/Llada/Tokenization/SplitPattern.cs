using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Llada.Tokenization;

/// <summary>
/// A pre-tokenisation regex from tokenizer.json (written for Rust's regex / Oniguruma, matched per Unicode
/// code point) run with .NET's <see cref="Regex"/> (which matches UTF-16 code units).
/// Two translations keep the matches identical:
/// <list type="bullet">
/// <item>Possessive quantifiers (<c>x?+</c>, <c>x*+</c>, <c>x++</c>, <c>x{n,m}+</c>), which .NET lacks, become atomic
/// groups <c>(?&gt;x?)</c>. The GPT-2, cl100k, o200k, Llama-3 and Qwen patterns need no translation.</item>
/// <item>Supplementary-plane characters (emoji, 𝐀, 𠀀) are two UTF-16 units, so <c>[^\s\p{L}\p{N}]?</c> would take half
/// an emoji and <c>\p{L}</c> would miss 𝐀. Text holding surrogate pairs is matched on a copy where each pair is
/// replaced by one BMP stand-in character of the same Unicode general category, then offsets are mapped back.
/// This is exact for patterns that select characters by category, <c>\s</c> and ASCII literals (all known
/// tokenizer patterns); a pattern that names a supplementary character itself is matched without stand-ins.</item>
/// </list>
/// </summary>
internal sealed class SplitPattern
{
    private static readonly char[] s_standIn = BuildStandIns();
    private readonly Regex _regex;
    private readonly bool _useStandIns;

    private SplitPattern(Regex regex, bool useStandIns)
    {
        _regex = regex;
        _useStandIns = useStandIns;
    }

    /// <summary>The .NET pattern actually run.</summary>
    public string DotNetPattern => _regex.ToString();

    /// <summary>A pattern from a tokenizer.json <c>{"Regex": ...}</c>.</summary>
    public static SplitPattern FromRegex(string pattern)
    {
        string translated = TranslatePossessive(pattern);
        bool namesSupplementary = translated.Any(char.IsSurrogate) || translated.Contains("\\U", StringComparison.Ordinal)
            || translated.Contains("\\x{1", StringComparison.Ordinal);
        var regex = new Regex(translated, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        return new SplitPattern(regex, !namesSupplementary);
    }

    /// <summary>A pattern from a tokenizer.json <c>{"String": ...}</c>: the literal text.</summary>
    public static SplitPattern FromLiteral(string literal) =>
        new(new Regex(Regex.Escape(literal), RegexOptions.Compiled | RegexOptions.CultureInvariant), useStandIns: false);

    /// <summary>Appends (start, length) of every non-overlapping match in <paramref name="text"/>, left to right.</summary>
    public void Matches(ReadOnlySpan<char> text, List<(int Start, int Length)> matches)
    {
        if (!_useStandIns || text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (ValueMatch m in _regex.EnumerateMatches(text)) matches.Add((m.Index, m.Length));
            return;
        }

        // Replace each surrogate pair by a same-category BMP character; origin[i] is where char i came from.
        char[] buffer = ArrayPool<char>.Shared.Rent(text.Length);
        int[] origin = ArrayPool<int>.Shared.Rent(text.Length + 1);
        try
        {
            int n = 0;
            for (int i = 0; i < text.Length; i++)
            {
                origin[n] = i;
                if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    var category = CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]));
                    buffer[n++] = s_standIn[(int)category];
                    i++;
                }
                else
                {
                    buffer[n++] = text[i];
                }
            }
            origin[n] = text.Length;
            foreach (ValueMatch m in _regex.EnumerateMatches(buffer.AsSpan(0, n)))
            {
                int start = origin[m.Index];
                matches.Add((start, origin[m.Index + m.Length] - start));
            }
        }
        finally
        {
            ArrayPool<char>.Shared.Return(buffer);
            ArrayPool<int>.Shared.Return(origin);
        }
    }

    /// <summary>
    /// Rewrites possessive quantifiers as atomic groups. Scans the pattern once, remembering where the
    /// last atom (escape, class, group or single character) began.
    /// </summary>
    internal static string TranslatePossessive(string pattern)
    {
        var sb = new StringBuilder(pattern.Length + 8);
        var groupStarts = new Stack<int>();
        int atomStart = -1; // index in sb where the most recent complete atom starts
        int i = 0;
        while (i < pattern.Length)
        {
            char c = pattern[i];
            if (c == '\\')
            {
                int start = sb.Length;
                int end = EscapeEnd(pattern, i);
                sb.Append(pattern, i, end - i);
                i = end;
                atomStart = start;
            }
            else if (c == '[')
            {
                int start = sb.Length;
                int end = ClassEnd(pattern, i);
                sb.Append(pattern, i, end - i);
                i = end;
                atomStart = start;
            }
            else if (c == '(')
            {
                groupStarts.Push(sb.Length);
                sb.Append(c);
                i++;
                atomStart = -1;
            }
            else if (c == ')')
            {
                sb.Append(c);
                i++;
                atomStart = groupStarts.Count > 0 ? groupStarts.Pop() : -1;
            }
            else if (c is '?' or '*' or '+' or '{')
            {
                int end = c == '{' ? pattern.IndexOf('}', i) + 1 : i + 1;
                if (end <= 0) end = i + 1;
                string quantifier = pattern[i..end];
                i = end;
                if (i < pattern.Length && pattern[i] == '+' && atomStart >= 0)
                {
                    // Possessive: (?>atom quantifier)
                    sb.Insert(atomStart, "(?>");
                    sb.Append(quantifier).Append(')');
                    i++;
                }
                else
                {
                    sb.Append(quantifier);
                    if (i < pattern.Length && pattern[i] == '?') // lazy marker belongs to the quantifier
                    {
                        sb.Append('?');
                        i++;
                    }
                }
                atomStart = -1;
            }
            else
            {
                atomStart = sb.Length;
                sb.Append(c);
                i++;
            }
        }
        return sb.ToString();
    }

    private static int EscapeEnd(string p, int i)
    {
        if (i + 1 >= p.Length) return p.Length;
        char k = p[i + 1];
        if ((k is 'p' or 'P') && i + 2 < p.Length && p[i + 2] == '{')
        {
            int close = p.IndexOf('}', i + 2);
            return close < 0 ? p.Length : close + 1;
        }
        if (k == 'x' && i + 2 < p.Length && p[i + 2] == '{')
        {
            int close = p.IndexOf('}', i + 2);
            return close < 0 ? p.Length : close + 1;
        }
        return i + 2;
    }

    private static int ClassEnd(string p, int i)
    {
        int j = i + 1;
        if (j < p.Length && p[j] == '^') j++;
        if (j < p.Length && p[j] == ']') j++; // a leading ']' is literal
        while (j < p.Length)
        {
            if (p[j] == '\\') { j = EscapeEnd(p, j); continue; }
            if (p[j] == '[') { j = ClassEnd(p, j); continue; } // nested class (Rust syntax)
            if (p[j] == ']') return j + 1;
            j++;
        }
        return p.Length;
    }

    private static char[] BuildStandIns()
    {
        var standIn = new char[32];
        Array.Fill(standIn, '\uFFFD');
        var found = new bool[32];
        // Non-ASCII representatives, so ASCII literals and case-insensitive ASCII groups never match them.
        for (int c = 0x00A0; c <= 0xFFFD; c++)
        {
            if (c is >= 0xD800 and <= 0xDFFF) continue;
            char ch = (char)c;
            var category = CharUnicodeInfo.GetUnicodeCategory(ch);
            int k = (int)category;
            if (found[k] || char.IsWhiteSpace(ch)) continue;
            bool casesToAscii = char.ToLowerInvariant(ch) < 0x80 || char.ToUpperInvariant(ch) < 0x80;
            if (casesToAscii) continue;
            standIn[k] = ch;
            found[k] = true;
        }
        // Unassigned code points: pick a BMP unassigned one.
        for (int c = 0x0378; c <= 0xFFFD; c++)
        {
            if (c is >= 0xD800 and <= 0xDFFF) continue;
            if (CharUnicodeInfo.GetUnicodeCategory((char)c) == UnicodeCategory.OtherNotAssigned)
            {
                standIn[(int)UnicodeCategory.OtherNotAssigned] = (char)c;
                break;
            }
        }
        return standIn;
    }
}
