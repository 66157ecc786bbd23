using Llada.Tokenization;

namespace Llada.Tests.Tokenization;

public class SplitPatternTests
{
    private static List<string> Split(SplitBehavior behavior, string text, string delimiter = "-", bool invert = false)
    {
        var output = new List<Piece>();
        SplitStep.SplitOne(new Piece(text, 0, text.Length), SplitPattern.FromLiteral(delimiter), behavior, invert, output, []);
        return output.Select(p => p.Span.ToString()).ToList();
    }

    // Expected values are the examples of Hugging Face's SplitDelimiterBehavior documentation.
    [Fact]
    public void Split_behaviours_match_the_hugging_face_examples()
    {
        const string text = "the-final--countdown";
        Assert.Equal(["the", "final", "countdown"], Split(SplitBehavior.Removed, text));
        Assert.Equal(["the", "-", "final", "-", "-", "countdown"], Split(SplitBehavior.Isolated, text));
        Assert.Equal(["the-", "final-", "-", "countdown"], Split(SplitBehavior.MergedWithPrevious, text));
        Assert.Equal(["the", "-final", "-", "-countdown"], Split(SplitBehavior.MergedWithNext, text));
        Assert.Equal(["the", "-", "final", "--", "countdown"], Split(SplitBehavior.Contiguous, text));
    }

    [Fact]
    public void Removed_with_invert_keeps_only_the_matches()
    {
        Assert.Equal(["-", "-", "-"], Split(SplitBehavior.Removed, "the-final--countdown", invert: true));
    }

    [Fact]
    public void Possessive_quantifiers_become_atomic_groups()
    {
        Assert.Equal(@"(?>[^\r\n\p{L}\p{N}]?)\p{L}+|(?>\p{N}{1,3})|(?>(ab)*)c", SplitPattern.TranslatePossessive(@"[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}+|(ab)*+c"));
        Assert.Equal(@"(?i:'s|'t)|a+?b??", SplitPattern.TranslatePossessive(@"(?i:'s|'t)|a+?b??"));
    }

    [Fact]
    public void Supplementary_characters_match_as_whole_code_points()
    {
        var pattern = SplitPattern.FromRegex(@"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|[^\s\p{L}\p{N}]+");
        var matches = new List<(int Start, int Length)>();
        const string text = "😀abc 𝐀𝐁 𝟏";
        pattern.Matches(text, matches);
        var pieces = matches.Select(m => text.Substring(m.Start, m.Length)).ToList();
        // The emoji (So) is the optional leading non-letter of "😀abc"; 𝐀𝐁 are letters; 𝟏 is a number.
        Assert.Equal(["😀abc", " 𝐀𝐁", "𝟏"], pieces.Where(p => p != " ").ToList());
    }
}
