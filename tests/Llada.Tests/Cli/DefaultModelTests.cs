namespace Llada.Tests.Cli;

/// <summary>The embedded default model (models/llada-tiny-instruct) travels with the executable and works.</summary>
public class DefaultModelTests
{
    [Fact]
    public async Task Generate_without_model_uses_the_embedded_instruct_model()
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("generate", "--prompt", "Hello, my name is Anna.",
            "--gen-length", "16", "--steps", "16", "--block-length", "8", "--json");
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        Assert.Equal(16, json.GetProperty("token_ids").GetArrayLength());
        // The chat template wraps the prompt: BOS + user header ... + assistant header.
        Assert.True(json.GetProperty("prompt_ids").GetArrayLength() > 8);
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("text").GetString()));
    }

    [Fact]
    public async Task Info_describes_the_embedded_model_as_a_bf16_llada()
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("info", "--json");
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        Assert.Equal("BF16", json.GetProperty("dtype").GetString());
        Assert.Equal("LLaDAModelLM", json.GetProperty("architecture").GetString());
        Assert.True(json.GetProperty("has_tokenizer").GetBoolean());
    }
}
