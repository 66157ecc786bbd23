using Llada.Tokenization;

namespace Llada.Tests.Tokenization;

/// <summary>
/// The hand-written tokenizer.json: merges in array form, Split("--", Isolated) then ByteLevel with a prefix
/// space, added tokens with lstrip/rstrip, TemplateProcessing adding BOS. Expected ids are derived by hand.
/// </summary>
public class HandmadeTokenizerTests
{
    private static Tokenizer Tok => TokenizerFixtures.Load("handmade");

    // Byte-level ids equal byte values; merges then follow in order from 256.
    private const int He = 256, Ll = 257, Hell = 258, Hello = 259, GW = 260, Or = 261, GWor = 262, Ld = 263, GWorld = 264, GHello = 265, Twelve = 266, DashDash = 267;
    private const int Bos = 268, Eos = 269, Mask = 270, Sep = 271, Eot = 272;

    [Fact]
    public void Array_form_merges_apply_in_rank_order()
    {
        // " hello world": prefix space added, GPT-2 split into " hello" and " world".
        Assert.Equal([GHello, GWorld], Tok.Encode("hello world"));
        Assert.Equal("Ġhello", Tok.IdToToken(GHello));
        Assert.Equal(Hello, Tok.TokenToId("hello"));
        Assert.Equal([(int)' ', Twelve, '3'], Tok.Encode("123"));
        _ = (He, Ll, Hell, GW, Or, GWor, Ld);
    }

    [Fact]
    public void Split_isolated_keeps_the_delimiter_as_its_own_piece()
    {
        // "x--y" -> "x", "--", "y"; each piece gets the ByteLevel prefix space.
        Assert.Equal([' ', 'x', ' ', DashDash, ' ', 'y'], Tok.Encode("x--y"));
    }

    [Fact]
    public void Lstrip_token_swallows_whitespace_on_its_left_only()
    {
        Assert.Equal([GHello, Mask, GWorld], Tok.Encode("hello   <mask> world"));
    }

    [Fact]
    public void Rstrip_token_swallows_whitespace_on_its_right_only()
    {
        // "a " keeps its trailing space (split by GPT-2 into " a", " "), "[SEP]" eats "  ", then " b".
        Assert.Equal([' ', 'a', ' ', Sep, ' ', 'b'], Tok.Encode("a [SEP]  b"));
    }

    [Fact]
    public void Bos_is_added_only_when_special_tokens_are_requested()
    {
        Assert.Equal([GHello], Tok.Encode("hello"));
        Assert.Equal([Bos, GHello], Tok.Encode("hello", addSpecialTokens: true));
        Assert.True(Tok.AddBosToken);
    }

    [Fact]
    public void Special_tokens_come_from_tokenizer_config_in_string_and_object_form()
    {
        Assert.Equal("<s>", Tok.BosToken);
        Assert.Equal(Bos, Tok.BosTokenId);
        Assert.Equal("</s>", Tok.EosToken); // {"__type": "AddedToken", "content": "</s>", ...}
        Assert.Equal(Eos, Tok.EosTokenId);
        Assert.Equal(Mask, Tok.MaskTokenId);
        Assert.True(Tok.IsSpecial(Eot));
        Assert.False(Tok.IsSpecial(Sep));
        Assert.Equal(273, Tok.VocabSize);
    }

    [Fact]
    public void Decode_can_skip_special_but_keeps_non_special_added_tokens()
    {
        int[] ids = Tok.Encode("hello<mask> a [SEP]b", addSpecialTokens: true);
        Assert.Equal("<s> hello<mask> a [SEP] b", Tok.Decode(ids));
        Assert.Equal(" hello a [SEP] b", Tok.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void Unknown_id_is_reported_with_the_vocabulary_size()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Tok.Decode([5000]));
        Assert.Contains("5000", e.Message);
    }
}
