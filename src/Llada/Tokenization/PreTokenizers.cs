using System.Text.Json;

namespace Llada.Tokenization;

/// <summary>A piece of text produced by pre-tokenisation: a range of <see cref="Source"/>.</summary>
internal readonly record struct Piece(string Source, int Start, int Length)
{
    public ReadOnlySpan<char> Span => Source.AsSpan(Start, Length);
}

/// <summary>How a Split pre-tokenizer treats the matched delimiters (Hugging Face SplitDelimiterBehavior).</summary>
internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>One step of a tokenizer.json "pre_tokenizer" (a Sequence is flattened into its steps).</summary>
internal abstract class PreTokenizerStep
{
    public abstract void Split(List<Piece> input, List<Piece> output, List<(int Start, int Length)> scratch);

    /// <summary>Flattens the pre_tokenizer node into steps; <paramref name="byteLevel"/> tells whether a ByteLevel step is present.</summary>
    public static List<PreTokenizerStep> FromJson(JsonElement node, string file, out bool byteLevel)
    {
        var steps = new List<PreTokenizerStep>();
        byteLevel = false;
        if (node.ValueKind != JsonValueKind.Null) Add(node, file, steps, ref byteLevel);
        for (int i = 0; i < steps.Count - 1; i++)
            if (steps[i] is ByteLevelStep)
                throw new NotSupportedException($"{file}: a ByteLevel pre-tokenizer followed by other pre-tokenizers is not supported (ByteLevel must come last).");
        return steps;
    }

    private static void Add(JsonElement node, string file, List<PreTokenizerStep> steps, ref bool byteLevel)
    {
        string type = JsonRead.String(node, "type", file, "pre_tokenizer");
        switch (type)
        {
            case "Sequence":
                foreach (var child in node.GetProperty("pretokenizers").EnumerateArray()) Add(child, file, steps, ref byteLevel);
                break;
            case "Split":
            {
                var p = node.GetProperty("pattern");
                SplitPattern pattern = p.TryGetProperty("String", out var literal)
                    ? SplitPattern.FromLiteral(literal.GetString()!)
                    : SplitPattern.FromRegex(p.GetProperty("Regex").GetString()!);
                string behavior = JsonRead.String(node, "behavior", file, "Split pre-tokenizer");
                if (!Enum.TryParse<SplitBehavior>(behavior, out var b))
                    throw new NotSupportedException($"{file}: Split behavior '{behavior}' is unknown.");
                steps.Add(new SplitStep(pattern, b, JsonRead.Bool(node, "invert", false)));
                break;
            }
            case "ByteLevel":
                byteLevel = true;
                steps.Add(new ByteLevelStep(JsonRead.Bool(node, "add_prefix_space", true), JsonRead.Bool(node, "use_regex", true)));
                break;
            case "Digits":
                steps.Add(new SplitStep(SplitPattern.FromRegex(JsonRead.Bool(node, "individual_digits", false) ? @"\p{Nd}" : @"\p{Nd}+"),
                    SplitBehavior.Isolated, false));
                break;
            default:
                throw new NotSupportedException($"{file}: pre_tokenizer type '{type}' is not supported (supported: Split, ByteLevel, Digits, Sequence).");
        }
    }
}

/// <summary>Split by a pattern, as Hugging Face's Split pre-tokenizer does.</summary>
internal sealed class SplitStep(SplitPattern pattern, SplitBehavior behavior, bool invert) : PreTokenizerStep
{
    public override void Split(List<Piece> input, List<Piece> output, List<(int Start, int Length)> scratch)
    {
        foreach (var piece in input) SplitOne(piece, pattern, behavior, invert, output, scratch);
    }

    internal static void SplitOne(Piece piece, SplitPattern pattern, SplitBehavior behavior, bool invert,
        List<Piece> output, List<(int Start, int Length)> scratch)
    {
        scratch.Clear();
        pattern.Matches(piece.Span, scratch);
        if (behavior == SplitBehavior.Isolated)
        {
            // Matches and the gaps between them are all kept, in order; invert does not change the cut points.
            int prev = 0;
            foreach (var (start, length) in scratch)
            {
                Emit(piece, prev, start, output);
                Emit(piece, start, start + length, output);
                prev = start + length;
            }
            Emit(piece, prev, piece.Length, output);
            return;
        }

        // General case: label every region match / non-match (flipped by invert), then apply the behaviour.
        int pending = -1, pendingStart = 0, pendingEnd = 0; // -1: none, 0: gap, 1: match
        bool previousMatch = false;
        int cursor = 0;
        int count = scratch.Count;
        for (int k = 0; k <= count; k++)
        {
            int gapEnd = k < count ? scratch[k].Start : piece.Length;
            if (gapEnd > cursor) Region(cursor, gapEnd, invert);
            if (k < count)
            {
                var (start, length) = scratch[k];
                Region(start, start + length, !invert);
                cursor = start + length;
            }
        }
        Flush();

        void Region(int start, int end, bool isMatch)
        {
            switch (behavior)
            {
                case SplitBehavior.Removed:
                    if (!isMatch) Emit(piece, start, end, output);
                    break;
                case SplitBehavior.MergedWithPrevious:
                    if (isMatch && !previousMatch && pending >= 0) pendingEnd = end;
                    else { Flush(); pending = 1; pendingStart = start; pendingEnd = end; }
                    break;
                case SplitBehavior.MergedWithNext:
                    // A match is glued to the following region.
                    if (pending >= 0 && previousMatch && !isMatch) pendingEnd = end;
                    else if (pending >= 0 && previousMatch && isMatch) { Flush(); pending = 1; pendingStart = start; pendingEnd = end; }
                    else { Flush(); pending = 1; pendingStart = start; pendingEnd = end; }
                    break;
                case SplitBehavior.Contiguous:
                    if (pending >= 0 && isMatch == previousMatch) pendingEnd = end;
                    else { Flush(); pending = 1; pendingStart = start; pendingEnd = end; }
                    break;
            }
            previousMatch = isMatch;
        }

        void Flush()
        {
            if (pending >= 0) Emit(piece, pendingStart, pendingEnd, output);
            pending = -1;
        }
    }

    private static void Emit(Piece piece, int start, int end, List<Piece> output)
    {
        if (end > start) output.Add(new Piece(piece.Source, piece.Start + start, end - start));
    }
}

/// <summary>
/// Hugging Face's ByteLevel pre-tokenizer: optionally prefixes a space to every piece that does not start with one,
/// optionally splits with the GPT-2 regex. The byte-to-character mapping itself is applied by the BPE stage.
/// </summary>
internal sealed class ByteLevelStep(bool addPrefixSpace, bool useRegex) : PreTokenizerStep
{
    /// <summary>GPT-2's pattern, as the Hugging Face ByteLevel pre-tokenizer uses it.</summary>
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    private static readonly SplitPattern s_gpt2 = SplitPattern.FromRegex(Gpt2Pattern);

    public override void Split(List<Piece> input, List<Piece> output, List<(int Start, int Length)> scratch)
    {
        foreach (var original in input)
        {
            var piece = original;
            if (addPrefixSpace && (piece.Length == 0 || piece.Source[piece.Start] != ' '))
            {
                string prefixed = string.Concat(" ", piece.Span);
                piece = new Piece(prefixed, 0, prefixed.Length);
            }
            if (useRegex) SplitStep.SplitOne(piece, s_gpt2, SplitBehavior.Isolated, false, output, scratch);
            else if (piece.Length > 0) output.Add(piece);
        }
    }
}
