using Llada.Tokenization;

namespace Llada.Tests.Tokenization;

/// <summary>
/// Exact agreement with an independent implementation: golden ids and texts written by
/// tools/tokenizer-golden (the @lenml/tokenizers port of Hugging Face tokenizers) for real tokenizer files.
/// </summary>
public class GoldenTokenizerTests
{
    public static TheoryData<string> Names => new() { "qwen3", "gpt35turbo", "gpt4o", "handmade", "trained" };

    [Theory]
    [MemberData(nameof(Names))]
    public void Encodes_every_golden_text_to_the_reference_ids(string name)
    {
        var tokenizer = TokenizerFixtures.Load(name);
        var golden = TokenizerFixtures.Golden(name);
        int count = 0;
        foreach (var c in golden.GetProperty("cases").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            Assert.True(TokenizerFixtures.Ints(c.GetProperty("ids")).SequenceEqual(tokenizer.Encode(text)),
                $"{name}: ids differ for {Show(text)}: expected [{string.Join(",", TokenizerFixtures.Ints(c.GetProperty("ids")))}] got [{string.Join(",", tokenizer.Encode(text))}]");
            Assert.Equal(TokenizerFixtures.Ints(c.GetProperty("ids_with_special")), tokenizer.Encode(text, addSpecialTokens: true));
            count++;
        }
        Assert.True(count >= 38, $"only {count} golden cases");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Decodes_golden_ids_to_the_reference_text(string name)
    {
        var tokenizer = TokenizerFixtures.Load(name);
        var golden = TokenizerFixtures.Golden(name);
        foreach (var c in golden.GetProperty("cases").EnumerateArray())
        {
            Assert.Equal(c.GetProperty("decoded").GetString(), tokenizer.Decode(TokenizerFixtures.Ints(c.GetProperty("ids"))));
            Assert.Equal(c.GetProperty("decoded_skip_special").GetString(),
                tokenizer.Decode(TokenizerFixtures.Ints(c.GetProperty("ids_with_special")), skipSpecialTokens: true));
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Partial_utf8_decodes_to_replacement_characters_like_the_reference(string name)
    {
        var tokenizer = TokenizerFixtures.Load(name);
        var golden = TokenizerFixtures.Golden(name);
        foreach (var c in golden.GetProperty("partial_decodes").EnumerateArray())
            Assert.Equal(c.GetProperty("decoded").GetString(), tokenizer.Decode(TokenizerFixtures.Ints(c.GetProperty("ids"))));
    }

    [Theory]
    [InlineData("qwen3")]
    [InlineData("gpt35turbo")]
    [InlineData("gpt4o")]
    [InlineData("trained")]
    public void Round_trips_text_that_needs_no_normalisation(string name)
    {
        var tokenizer = TokenizerFixtures.Load(name);
        foreach (var c in TokenizerFixtures.Golden(name).GetProperty("cases").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            if (UnicodeNormalizer.Normalize(text, System.Text.NormalizationForm.FormC) != text) continue; // Qwen's NFC changes decomposed accents
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        }
    }

    private static string Show(string s) => s.Length > 60 ? $"'{s[..60]}...'" : $"'{s}'";
}
