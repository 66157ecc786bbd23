using System.Text;
using Llada.Tokenization;

namespace Llada.Tests.Tokenization;

/// <summary>Llada's own normalisation against node's ICU (fixtures/tokenizers/normalization_golden.json).</summary>
public class UnicodeNormalizerTests
{
    [Theory]
    [InlineData("NFC", NormalizationForm.FormC)]
    [InlineData("NFD", NormalizationForm.FormD)]
    [InlineData("NFKC", NormalizationForm.FormKC)]
    [InlineData("NFKD", NormalizationForm.FormKD)]
    public void Matches_icu_on_every_golden_text(string key, NormalizationForm form)
    {
        var golden = TokenizerFixtures.Golden("", "normalization_golden.json");
        foreach (var c in golden.GetProperty("cases").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            Assert.Equal(c.GetProperty(key).GetString(), UnicodeNormalizer.Normalize(text, form));
        }
    }

    [Fact]
    public void Composes_decomposed_accents_and_hangul_jamo()
    {
        Assert.Equal("caf\u00E9", UnicodeNormalizer.Normalize("cafe\u0301", NormalizationForm.FormC));
        Assert.Equal("\uD55C", UnicodeNormalizer.Normalize("\u1112\u1161\u11AB", NormalizationForm.FormC));
        Assert.Equal("fi 1", UnicodeNormalizer.Normalize("\uFB01 \u2460", NormalizationForm.FormKC));
    }
}
