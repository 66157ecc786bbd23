using Llada.Diffusion;
using Llada.Serving;
using Microsoft.Extensions.AI;
using B = Llada.Tests.Serving.ByteTokenizer;

namespace Llada.Tests.Serving;

public sealed class LladaChatClientTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task GetResponseAsync_returns_the_answer_with_usage_and_finish_reason()
    {
        using var g = ServingTestModels.Scripted("The answer.");
        using IChatClient client = new LladaChatClient(g);
        var response = await client.GetResponseAsync(
            [new ChatMessage(ChatRole.System, "sys"), new ChatMessage(ChatRole.User, "Q?")], new ChatOptions { MaxOutputTokens = 16 }, Ct);
        Assert.Equal("The answer.", response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal("scripted", response.ModelId);
        int prompt = B.Tokenizer().EncodeChat([new("system", "sys"), new("user", "Q?")]).Length;
        Assert.Equal(prompt, response.Usage!.InputTokenCount);
        Assert.Equal(11, response.Usage.OutputTokenCount);
        Assert.Equal(prompt + 11, response.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task Streaming_concatenates_to_the_same_text_and_ends_with_usage()
    {
        using var g = ServingTestModels.Scripted("Streaming works well.");
        using IChatClient client = new LladaChatClient(g);
        var options = new ChatOptions { MaxOutputTokens = 32, AdditionalProperties = new() { ["block_length"] = 8 } };
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "go")], options, Ct)) updates.Add(u);
        Assert.Equal(["Streamin", "g works ", "well."], updates.Where(u => u.Text.Length > 0).Select(u => u.Text));
        Assert.Equal(ChatFinishReason.Stop, updates[^1].FinishReason);
        Assert.Equal(21, updates[^1].Contents.OfType<UsageContent>().Single().Details.OutputTokenCount);
        var whole = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "go")], options, Ct);
        Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
    }

    [Fact]
    public void ChatOptions_map_onto_the_reverse_process()
    {
        using var g = ServingTestModels.Scripted("x");
        var client = new LladaChatClient(g);
        var request = client.BuildRequest([new ChatMessage(ChatRole.User, "hi")], new ChatOptions
        {
            MaxOutputTokens = 10,
            Temperature = 0.5f,
            Seed = 42,
            StopSequences = ["END"],
            AdditionalProperties = new()
            {
                ["block_length"] = 4, ["steps"] = 6L, ["remasking"] = "random", ["cfg_scale"] = 1.5, ["threshold"] = null,
            },
        });
        var o = request.Options;
        Assert.Equal(12, o.GenLength); // 10 rounded up to a multiple of the block length
        Assert.Equal(4, o.BlockLength);
        Assert.Equal(6, o.Steps);
        Assert.Equal(0.5, o.Temperature, 6);
        Assert.Equal(42, o.Seed);
        Assert.Equal(Remasking.Random, o.Remasking);
        Assert.Equal(1.5, o.CfgScale);
        Assert.Equal(["END"], request.StopSequences);
        Assert.Equal(B.Tokenizer().EncodeChat([new("user", "hi")]), request.Prompts[0]);

        var defaults = client.BuildRequest([new ChatMessage(ChatRole.User, "hi")], new ChatOptions { MaxOutputTokens = 48 }).Options;
        Assert.Equal((64, 32, 64), (defaults.GenLength, defaults.BlockLength, defaults.Steps)); // 48 -> 64: one step per token

        var threshold = client.BuildRequest([new ChatMessage(ChatRole.User, "hi")],
            new ChatOptions { AdditionalProperties = new() { ["threshold"] = "0.9" } }).Options;
        Assert.Equal(0.9, threshold.Threshold);
    }

    [Theory]
    [InlineData("steps", "many", "steps must be an integer")]
    [InlineData("block_length", 2.5, "block_length must be an integer")]
    [InlineData("remasking", "sideways", "remasking 'sideways' is unknown")]
    [InlineData("threshold", 2.0, "threshold must be in (0, 1]")]
    public void Bad_knobs_are_rejected_naming_the_knob(string name, object value, string expected)
    {
        using var g = ServingTestModels.Scripted("x");
        var client = new LladaChatClient(g);
        var ex = Assert.Throws<InvalidSettingException>(() => client.BuildRequest([new ChatMessage(ChatRole.User, "hi")],
            new ChatOptions { AdditionalProperties = new() { [name] = value } }));
        Assert.Contains(expected, ex.Message);
        Assert.DoesNotContain("(Parameter", ex.Message);
        Assert.Equal(name, ex.ParamName);
    }

    [Fact]
    public async Task A_full_canvas_reports_length()
    {
        using var g = ServingTestModels.Scripted("abcdefghijklmnop", endTurn: false);
        using IChatClient client = new LladaChatClient(g);
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "go")], new ChatOptions { MaxOutputTokens = 4 }, Ct);
        Assert.Equal("abcd", response.Text);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Same(g, client.GetService(typeof(TextGenerator)));
        Assert.Equal("scripted", client.GetService<ChatClientMetadata>()!.DefaultModelId);
    }
}
