using System.Net;
using System.Text.Json;
using Llada.Server;
using Llada.Serving;

namespace Llada.Tests.Serving;

public sealed class ServerTests(SyntheticModelFixture model) : IClassFixture<SyntheticModelFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly object Hello = new { role = "user", content = "Hello there" };

    private ServerFactory Factory(LladaServerOptions? options = null) => new(model.Generator, options ?? new LladaServerOptions());

    /// <summary>The answer the library gives for the same conversation and options: the independent reference.</summary>
    private async Task<TextCompletion> Direct(int maxTokens, int n = 1, double temperature = 0, int seed = 0)
    {
        var g = model.Generator;
        var options = new SamplingRequest { MaxTokens = maxTokens, Temperature = temperature, Seed = seed }.Resolve(g.DefaultOptions());
        int[] prompt = g.EncodeChat([new("user", "Hello there")]);
        return await g.CompleteAsync(new TextRequest { Prompts = Enumerable.Repeat(prompt, n).ToArray(), Options = options }, cancellationToken: Ct);
    }

    [Fact]
    public async Task Health_and_models_describe_the_served_model()
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        var health = await Http.Json(await client.GetAsync("/health", Ct));
        Assert.Equal("ok", health.GetProperty("status").GetString());
        Assert.Equal(0, health.GetProperty("queue").GetProperty("running").GetInt32());
        var models = await Http.Json(await client.GetAsync("/v1/models", Ct));
        Assert.Equal("list", models.GetProperty("object").GetString());
        Assert.Equal(SyntheticModelFixture.ModelId, models.GetProperty("data")[0].GetProperty("id").GetString());
    }

    [Fact]
    public async Task Chat_completion_returns_the_library_answer_with_usage()
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        var response = await client.PostAsync("/v1/chat/completions",
            Http.Body(new { model = SyntheticModelFixture.ModelId, messages = new[] { Hello }, max_tokens = 16 }), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await Http.Json(response);
        var expected = await Direct(16);
        Assert.Equal("chat.completion", json.GetProperty("object").GetString());
        var choice = json.GetProperty("choices")[0];
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(expected.Choices[0].Text, choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(expected.Choices[0].Finish == CompletionFinish.Length ? "length" : "stop", choice.GetProperty("finish_reason").GetString());
        var usage = json.GetProperty("usage");
        Assert.Equal(model.Generator.EncodeChat([new("user", "Hello there")]).Length, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(expected.CompletionTokens, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32(),
            usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Chat_stream_sends_openai_chunks_that_add_up_to_the_answer()
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        var response = await client.PostAsync("/v1/chat/completions", Http.Body(new
        {
            messages = new[] { Hello }, max_tokens = 16, block_length = 4, stream = true, stream_options = new { include_usage = true },
        }), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var events = Http.Events(await response.Content.ReadAsStringAsync(Ct));
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        string text = string.Concat(chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0)
            .Select(c => c.GetProperty("choices")[0].GetProperty("delta"))
            .Select(d => d.TryGetProperty("content", out var t) ? t.GetString() : ""));
        var expected = await Direct(16);
        Assert.Equal(expected.Choices[0].Text, text);
        var last = chunks[^2].GetProperty("choices")[0];
        Assert.NotEqual(JsonValueKind.Null, last.GetProperty("finish_reason").ValueKind);
        Assert.Equal(expected.CompletionTokens, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Completions_stream_and_non_stream_agree()
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        var plain = await Http.Json(await client.PostAsync("/v1/completions", Http.Body(new { prompt = "Once upon", max_tokens = 8 }), Ct));
        Assert.Equal("text_completion", plain.GetProperty("object").GetString());
        string text = plain.GetProperty("choices")[0].GetProperty("text").GetString()!;
        var g = model.Generator;
        var direct = await g.CompleteAsync(new TextRequest
        {
            Prompts = [g.EncodeText("Once upon")], Options = new SamplingRequest { MaxTokens = 8 }.Resolve(g.DefaultOptions()),
        }, cancellationToken: Ct);
        Assert.Equal(direct.Choices[0].Text, text);
        Assert.Equal(g.EncodeText("Once upon").Length, plain.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        var stream = await client.PostAsync("/v1/completions", Http.Body(new { prompt = "Once upon", max_tokens = 8, stream = true }), Ct);
        var events = Http.Events(await stream.Content.ReadAsStringAsync(Ct));
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(text, string.Concat(events[..^1].Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("text").GetString())));
    }

    [Fact]
    public async Task N_answers_come_from_one_batch_with_their_own_random_streams()
    {
        using var factory = Factory();
        using var client = factory.CreateClient();
        var json = await Http.Json(await client.PostAsync("/v1/chat/completions",
            Http.Body(new { messages = new[] { Hello }, max_tokens = 8, n = 2, temperature = 1.0, seed = 5 }), Ct));
        var expected = await Direct(8, n: 2, temperature: 1, seed: 5);
        var choices = json.GetProperty("choices");
        Assert.Equal(2, choices.GetArrayLength());
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(i, choices[i].GetProperty("index").GetInt32());
            Assert.Equal(expected.Choices[i].Text, choices[i].GetProperty("message").GetProperty("content").GetString());
        }
        Assert.Equal(model.Generator.EncodeChat([new("user", "Hello there")]).Length, json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    public static TheoryData<string, string, int, string?, string?> Malformed => new()
    {
        { "/v1/chat/completions", "{not json", 400, null, "invalid_json" },
        { "/v1/chat/completions", "", 400, null, null },
        { "/v1/chat/completions", "[1, 2]", 400, null, null },
        { "/v1/chat/completions", """{"max_tokens": 4}""", 400, "messages", "missing_required_parameter" },
        { "/v1/chat/completions", """{"messages": "hi"}""", 400, "messages", "invalid_type" },
        { "/v1/chat/completions", """{"messages": []}""", 400, "messages", null },
        { "/v1/chat/completions", """{"messages": [{"role": "wizard", "content": "hi"}]}""", 400, "messages[0].role", null },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": 5}]}""", 400, "messages[0].content", "invalid_type" },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "ten"}""", 400, "max_tokens", "invalid_type" },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000}""", 400, "max_tokens", null },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}""", 400, "temperature", "invalid_type" },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}""", 400, "stream", "invalid_type" },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o"}""", 404, "model", "model_not_found" },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "block_length": 4, "steps": 3}""", 400, "steps", null },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "remasking": "sideways"}""", 400, "remasking", null },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "n": 50}""", 400, "n", null },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "cache": "sideways"}""", 400, "cache", null },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "stop": 7}""", 400, "stop", "invalid_type" },
        { "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"" + new string('x', 400) + "\"}]}", 400, "messages", "context_length_exceeded" },
        { "/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 250}""", 400, "max_tokens", "context_length_exceeded" },
        { "/v1/completions", """{"prompt": 5}""", 400, "prompt", "invalid_type" },
        { "/v1/completions", """{"max_tokens": 5}""", 400, "prompt", "missing_required_parameter" },
        { "/v1/nothing", "{}", 404, null, "unknown_url" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task Malformed_requests_get_openai_error_bodies(string path, string body, int status, string? param, string? code)
    {
        using var factory = Factory(new LladaServerOptions { MaxTokens = 1000, MaxChoices = 4 });
        using var client = factory.CreateClient();
        var response = await client.PostAsync(path, Http.Body(body), Ct);
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        var error = (await Http.Json(response)).GetProperty("error");
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.DoesNotContain("(Parameter '", error.GetProperty("message").GetString()); // .NET's suffix, noise to an API client
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
        if (code is not null) Assert.Equal(code, error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Oversized_bodies_get_413()
    {
        using var factory = Factory(new LladaServerOptions { MaxRequestBodyBytes = 1000 });
        using var client = factory.CreateClient();
        string big = JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = new string('y', 2000) } } });
        var response = await client.PostAsync("/v1/chat/completions", Http.Body(big), Ct);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("request_too_large", (await Http.Json(response)).GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task An_api_key_guards_the_v1_routes_but_not_health()
    {
        using var factory = Factory(new LladaServerOptions { ApiKey = "s3cret" });
        using var client = factory.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health", Ct)).StatusCode);
        var none = await client.GetAsync("/v1/models", Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal("Bearer", none.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Equal("invalid_api_key", (await Http.Json(none)).GetProperty("error").GetProperty("code").GetString());
        foreach (string wrong in new[] { "s3cre", "s3cretX", "S3CRET" })
        {
            using var bad = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Authorization", "Bearer " + wrong } } };
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.SendAsync(bad, Ct)).StatusCode);
        }
        using var good = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Authorization", "Bearer s3cret" } } };
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(good, Ct)).StatusCode);
    }

    [Fact]
    public async Task A_full_queue_answers_429_with_retry_after()
    {
        using var generator = ServingTestModels.Scripted([.. ByteTokenizer.Bytes("ok"), ByteTokenizer.Eot], 512, out var predictor);
        using var gate = new SemaphoreSlim(0, 1);
        predictor.Gate = gate;
        using var factory = new ServerFactory(generator, new LladaServerOptions { MaxQueue = 1 });
        using var client = factory.CreateClient();
        var queue = factory.Llada.Queue;
        string body = JsonSerializer.Serialize(new { messages = new[] { Hello }, max_tokens = 4 });

        var first = client.PostAsync("/v1/chat/completions", Http.Body(body), Ct);
        await Http.Until(() => queue.Running == 1);
        var second = client.PostAsync("/v1/chat/completions", Http.Body(body), Ct);
        await Http.Until(() => queue.Waiting == 1);
        var third = await client.PostAsync("/v1/chat/completions", Http.Body(body), Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
        Assert.True(third.Headers.RetryAfter!.Delta >= TimeSpan.FromSeconds(1));
        Assert.Equal("queue_full", (await Http.Json(third)).GetProperty("error").GetProperty("code").GetString());

        gate.Release();
        foreach (var r in await Task.WhenAll(first, second))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal("ok", (await Http.Json(r)).GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        }
        Assert.Equal((0, 0), (queue.Running, queue.Waiting));
    }

    [Fact]
    public async Task A_client_that_disconnects_cancels_its_generation()
    {
        using var generator = ServingTestModels.Scripted([.. ByteTokenizer.Bytes("ok"), ByteTokenizer.Eot], 512, out var predictor);
        using var gate = new SemaphoreSlim(0, 1);
        predictor.Gate = gate;
        using var factory = new ServerFactory(generator, new LladaServerOptions());
        using var client = factory.CreateClient();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var request = client.PostAsync("/v1/chat/completions", Http.Body(new { messages = new[] { Hello }, max_tokens = 4 }), cts.Token);
        await Http.Until(() => factory.Llada.Queue.Running == 1);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        await Http.Until(() => factory.Llada.Queue.Running == 0); // the gated forward pass gave up: nothing holds the model
        Assert.Equal(0, predictor.ForwardCalls);
    }
}
