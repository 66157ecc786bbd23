using System.ClientModel;
using Llada.Server;
using Llada.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using OpenAI;
using OpenAI.Chat;

namespace Llada.Tests.Serving;

/// <summary>A real Kestrel server on 127.0.0.1 (free port) driven by the official OpenAI .NET SDK.</summary>
public sealed class OpenAiSdkTests(SyntheticModelFixture model) : IClassFixture<SyntheticModelFixture>, IAsyncLifetime
{
    private const string Key = "test-key";
    private WebApplication? _app;
    private ChatClient? _client;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _app = LladaServer.Build(model.Generator, new LladaServerOptions { Port = 0, ApiKey = Key },
            b => b.Logging.ClearProviders());
        await _app.StartAsync(Ct);
        var address = new Uri(_app.Urls.Single());
        Assert.Equal("127.0.0.1", address.Host);
        Assert.NotEqual(0, address.Port);
        _client = new ChatClient(SyntheticModelFixture.ModelId, new ApiKeyCredential(Key),
            new OpenAIClientOptions { Endpoint = new Uri(address, "/v1") });
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync(CancellationToken.None);
            await _app.DisposeAsync();
        }
    }

    private async Task<TextCompletion> Direct(int maxTokens)
    {
        var g = model.Generator;
        var options = new SamplingRequest { MaxTokens = maxTokens }.Resolve(g.DefaultOptions());
        return await g.CompleteAsync(new TextRequest { Prompts = [g.EncodeChat([new("system", "Be kind."), new("user", "Hi!")])], Options = options },
            cancellationToken: Ct);
    }

    private static List<ChatMessage> Messages() => [new SystemChatMessage("Be kind."), new UserChatMessage("Hi!")];

    [Fact]
    public async Task The_sdk_gets_a_chat_completion_with_usage()
    {
        var result = await _client!.CompleteChatAsync(Messages(), new ChatCompletionOptions { MaxOutputTokenCount = 16 }, Ct);
        var expected = await Direct(16);
        Assert.Equal(expected.Choices[0].Text, result.Value.Content.Count == 0 ? "" : result.Value.Content[0].Text);
        Assert.Equal(SyntheticModelFixture.ModelId, result.Value.Model);
        Assert.Equal(expected.PromptTokens, result.Value.Usage.InputTokenCount);
        Assert.Equal(expected.CompletionTokens, result.Value.Usage.OutputTokenCount);
        Assert.Equal(expected.Choices[0].Finish == CompletionFinish.Length ? ChatFinishReason.Length : ChatFinishReason.Stop, result.Value.FinishReason);
    }

    [Fact]
    public async Task The_sdk_streams_the_same_answer()
    {
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        int updates = 0;
        await foreach (var update in _client!.CompleteChatStreamingAsync(Messages(), new ChatCompletionOptions { MaxOutputTokenCount = 16 }, Ct))
        {
            updates++;
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish ??= update.FinishReason;
        }
        var expected = await Direct(16);
        Assert.Equal(expected.Choices[0].Text, text.ToString());
        Assert.NotNull(finish);
        Assert.True(updates >= 2);
    }

    [Fact]
    public async Task The_sdk_surfaces_server_errors()
    {
        var wrongModel = new ChatClient("no-such-model", new ApiKeyCredential(Key),
            new OpenAIClientOptions { Endpoint = new Uri(new Uri(_app!.Urls.Single()), "/v1") });
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => wrongModel.CompleteChatAsync(Messages(), cancellationToken: Ct));
        Assert.Equal(404, ex.Status);
        Assert.Contains("no-such-model", ex.Message);

        var badKey = new ChatClient(SyntheticModelFixture.ModelId, new ApiKeyCredential("nope"),
            new OpenAIClientOptions { Endpoint = new Uri(new Uri(_app.Urls.Single()), "/v1") });
        var unauthorized = await Assert.ThrowsAsync<ClientResultException>(() => badKey.CompleteChatAsync(Messages(), cancellationToken: Ct));
        Assert.Equal(401, unauthorized.Status);
    }
}
