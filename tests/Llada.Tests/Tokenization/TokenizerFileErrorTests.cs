using System.Text;
using Llada.Tokenization;

namespace Llada.Tests.Tokenization;

/// <summary>A damaged tokenizer.json or tokenizer_config.json is reported with the file's name and what is wrong.</summary>
public class TokenizerFileErrorTests
{
    private static InvalidDataException Load(string json, string? config = null) =>
        Assert.Throws<InvalidDataException>(() => Tokenizer.FromStreams(new MemoryStream(Encoding.UTF8.GetBytes(json)),
            config is null ? null : new MemoryStream(Encoding.UTF8.GetBytes(config)), "dir/tokenizer.json",
            config is null ? null : "dir/tokenizer_config.json"));

    [Theory]
    [InlineData("{\"model\":", "dir/tokenizer.json: not valid JSON (")]
    [InlineData("[]", "dir/tokenizer.json: must be a JSON object, found Array")]
    [InlineData("{\"version\":\"1.0\"}", "dir/tokenizer.json: no \"model\" object; not a Hugging Face tokenizer.json")]
    [InlineData("{\"model\":{\"type\":\"BPE\"}}", "dir/tokenizer.json: \"model\" needs a \"vocab\" object")]
    [InlineData("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}", "dir/tokenizer.json: \"model\" needs a \"merges\" array")]
    [InlineData("{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"content\":\"<s>\"}]}", "dir/tokenizer.json: not a valid Hugging Face tokenizer.json (")]
    public void A_malformed_tokenizer_json_names_the_file_and_the_problem(string json, string expectedStart)
    {
        Assert.StartsWith(expectedStart, Load(json).Message);
    }

    [Fact]
    public void A_malformed_tokenizer_config_names_its_own_file()
    {
        string tokenizer = File.ReadAllText(Path.Combine(TokenizerFixtures.Directory("handmade"), "tokenizer.json"));
        Assert.StartsWith("dir/tokenizer_config.json: not valid JSON (", Load(tokenizer, "{\"bos_token\": ").Message);
    }
}
