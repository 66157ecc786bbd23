using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Llada.Diffusion;
using Llada.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Llada.Server;

/// <summary>
/// An OpenAI-compatible HTTP API over one <see cref="TextGenerator"/>: GET /health, GET /v1/models,
/// POST /v1/chat/completions and POST /v1/completions (stream false or Server-Sent Events). Generation is
/// serialised through a bounded <see cref="GenerationQueue"/>; a client that disconnects cancels its work.
/// </summary>
public sealed class LladaServer
{
    // API bodies are never embedded in HTML, so quotes and apostrophes in messages need no \u escapes.
    internal static readonly JsonSerializerOptions s_json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly TextGenerator _generator;
    private readonly LladaServerOptions _options;
    private readonly GenerationOptions _defaults;
    private readonly byte[]? _apiKeyHash;
    private readonly ILogger _log;
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>Creates the request handlers.</summary>
    public LladaServer(TextGenerator generator, LladaServerOptions options, ILoggerFactory? loggers = null)
    {
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _defaults = options.Defaults ?? generator.DefaultOptions();
        _apiKeyHash = string.IsNullOrEmpty(options.ApiKey) ? null : SHA256.HashData(Encoding.UTF8.GetBytes(options.ApiKey));
        Queue = new GenerationQueue(options.MaxQueue);
        _log = (loggers ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger("Llada.Server");
    }

    /// <summary>The admission queue (exposed for monitoring and tests).</summary>
    public GenerationQueue Queue { get; }

    /// <summary>
    /// A ready-to-run web application listening on <see cref="LladaServerOptions.Host"/>:<see cref="LladaServerOptions.Port"/>.
    /// <paramref name="configure"/> may adjust the builder (logging, extra settings) before it is built.
    /// </summary>
    public static WebApplication Build(TextGenerator generator, LladaServerOptions options, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "Llada.Server", ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls($"http://{(options.Host.Contains(':') ? $"[{options.Host}]" : options.Host)}:{options.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = Math.Max(options.MaxRequestBodyBytes + 1, 1 << 20));
        // One line per request comes from the server's own log; the framework's per-request lines would repeat it.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        AddServices(builder.Services, generator, options);
        configure?.Invoke(builder);
        var app = builder.Build();
        Configure(app);
        return app;
    }

    /// <summary>Registers the server as a singleton (for hosts built another way, e.g. in tests).</summary>
    public static void AddServices(IServiceCollection services, TextGenerator generator, LladaServerOptions options)
    {
        services.AddRouting();
        services.AddSingleton(sp => new LladaServer(generator, options, sp.GetService<ILoggerFactory>()));
    }

    /// <summary>Adds request logging, the API-key check and the endpoints to <paramref name="app"/>.</summary>
    public static void Configure(IApplicationBuilder app)
    {
        var server = app.ApplicationServices.GetRequiredService<LladaServer>();
        app.Use(server.LogAndAuthorize);
        app.UseRouting();
        app.UseEndpoints(server.Map);
    }

    private void Map(IEndpointRouteBuilder e)
    {
        e.MapGet("/health", ctx => Json(ctx, 200, new
        {
            status = "ok",
            model = _generator.ModelId,
            queue = new { running = Queue.Running, waiting = Queue.Waiting, capacity = Queue.Capacity },
        }));
        e.MapGet("/v1/models", ctx => Json(ctx, 200, new
        {
            @object = "list",
            data = new[] { new { id = _generator.ModelId, @object = "model", created = _created, owned_by = "llada" } },
        }));
        e.MapPost("/v1/chat/completions", ctx => Handle(ctx, chat: true));
        e.MapPost("/v1/completions", ctx => Handle(ctx, chat: false));
        e.MapFallback(ctx => new ApiError(404, $"unknown request URL: {ctx.Request.Method} {ctx.Request.Path}", code: "unknown_url").WriteAsync(ctx.Response));
    }

    private async Task LogAndAuthorize(HttpContext ctx, RequestDelegate next)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            if (_apiKeyHash is not null && ctx.Request.Path.StartsWithSegments("/v1") && !Authorized(ctx.Request))
            {
                ctx.Response.Headers.WWWAuthenticate = "Bearer";
                await new ApiError(401, "missing or incorrect API key; send 'Authorization: Bearer <key>'", code: "invalid_api_key",
                    type: "authentication_error").WriteAsync(ctx.Response);
                return;
            }
            await next(ctx);
        }
        finally
        {
            _log.LogInformation("{Method} {Path} -> {Status} in {Elapsed:0.0} ms{Aborted}", ctx.Request.Method, ctx.Request.Path,
                ctx.Response.StatusCode, Stopwatch.GetElapsedTime(start).TotalMilliseconds,
                ctx.RequestAborted.IsCancellationRequested ? " (client disconnected)" : "");
        }
    }

    private bool Authorized(HttpRequest request)
    {
        string header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return false;
        // Hashing first makes the comparison independent of the key's length as well as its content.
        byte[] given = SHA256.HashData(Encoding.UTF8.GetBytes(header[7..].Trim()));
        return CryptographicOperations.FixedTimeEquals(given, _apiKeyHash);
    }

    private async Task Handle(HttpContext ctx, bool chat)
    {
        var aborted = ctx.RequestAborted;
        try
        {
            using var body = await OpenAiRequest.ReadJsonAsync(ctx.Request, _options.MaxRequestBodyBytes, aborted);
            var request = chat ? OpenAiRequest.Chat(body.RootElement) : OpenAiRequest.Completion(body.RootElement);
            var work = Prepare(request, chat);
            using var lease = await Queue.EnterAsync(aborted);
            if (lease is null)
            {
                ctx.Response.Headers.RetryAfter = Queue.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                throw new ApiError(429, $"the server is busy ({Queue.Waiting} requests waiting, capacity {Queue.Capacity}); retry later",
                    code: "queue_full", type: "rate_limit_error");
            }
            if (request.Stream) await Stream(ctx, request, work, chat);
            else await Json(ctx, 200, Response(request, await _generator.CompleteAsync(work, cancellationToken: aborted), chat));
        }
        catch (ApiError error) when (!ctx.Response.HasStarted)
        {
            await error.WriteAsync(ctx.Response);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The client went away; its generation stopped at the next step.
        }
        catch (Exception ex) when (!ctx.Response.HasStarted)
        {
            _log.LogError(ex, "generation failed");
            await new ApiError(500, $"generation failed: {ex.Message}", type: "server_error").WriteAsync(ctx.Response);
        }
    }

    /// <summary>Turns a parsed request into a generation, or an <see cref="ApiError"/> saying what is wrong.</summary>
    private TextRequest Prepare(OpenAiRequest request, bool chat)
    {
        if (request.Model is { } model && model != _generator.ModelId)
            throw new ApiError(404, $"the model '{model}' does not exist; this server serves '{_generator.ModelId}'", "model", "model_not_found");
        int max = _options.MaxTokens;
        if (request.Sampling.MaxTokens is { } mt && (mt < 1 || mt > max))
            throw new ApiError(400, $"'max_tokens' must be between 1 and {max} (got {mt})", "max_tokens");
        int rows = request.N * (chat ? 1 : request.Prompts.Count);
        if (rows > _options.MaxChoices)
            throw new ApiError(400, $"this request asks for {rows} answers; the limit is {_options.MaxChoices}", "n");

        GenerationOptions options;
        try
        {
            options = request.Sampling.Resolve(_defaults);
        }
        catch (ArgumentException ex)
        {
            throw new ApiError(400, ex.Message, ex.ParamName);
        }
        var prompts = new List<int[]>(rows);
        int maxPrompt = Math.Min(_options.MaxPromptTokens ?? int.MaxValue, _generator.MaxSequenceLength);
        foreach (int[] prompt in chat ? [_generator.EncodeChat(request.Messages)] : request.Prompts.Select(_generator.EncodeText))
        {
            string param = chat ? "messages" : "prompt";
            if (prompt.Length == 0) throw new ApiError(400, $"'{param}' encodes to no tokens", param);
            if (prompt.Length > maxPrompt)
                throw new ApiError(400, $"the prompt has {prompt.Length} tokens; the limit is {maxPrompt}", param, "context_length_exceeded");
            if (prompt.Length + options.GenLength > _generator.MaxSequenceLength)
                throw new ApiError(400, $"the prompt ({prompt.Length} tokens) + max_tokens as gen_length {options.GenLength} exceeds the model's context of {_generator.MaxSequenceLength} tokens",
                    "max_tokens", "context_length_exceeded");
            for (int j = 0; j < request.N; j++) prompts.Add(prompt);
        }
        var work = new TextRequest { Prompts = prompts, Options = options, StopSequences = request.Stop };
        try
        {
            options.Validate(_generator.Predictor, prompts);
        }
        catch (ArgumentException ex)
        {
            throw new ApiError(400, ex.Message, ex.ParamName);
        }
        return work;
    }

    private object Response(OpenAiRequest request, TextCompletion completion, bool chat)
    {
        string id = NewId(chat);
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        object usage = Usage(completion);
        if (chat)
            return new
            {
                id, @object = "chat.completion", created, model = _generator.ModelId,
                choices = completion.Choices.Select(c => new
                {
                    index = c.Index, message = new { role = "assistant", content = c.Text }, logprobs = (object?)null, finish_reason = Finish(c.Finish),
                }),
                usage,
            };
        return new
        {
            id, @object = "text_completion", created, model = _generator.ModelId,
            choices = completion.Choices.Select(c => new { text = c.Text, index = c.Index, logprobs = (object?)null, finish_reason = Finish(c.Finish) }),
            usage,
        };
    }

    private async Task Stream(HttpContext ctx, OpenAiRequest request, TextRequest work, bool chat)
    {
        string id = NewId(chat);
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string kind = chat ? "chat.completion.chunk" : "text_completion";
        var response = ctx.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        var aborted = ctx.RequestAborted;

        object Chunk(int index, string? text, string? finish, bool role = false) => chat
            ? new
            {
                id, @object = kind, created, model = _generator.ModelId,
                choices = new[] { new { index, delta = (object)(role ? new { role = "assistant", content = "" } : text is null ? new { } : new { content = text }), logprobs = (object?)null, finish_reason = finish } },
            }
            : new { id, @object = kind, created, model = _generator.ModelId, choices = new[] { new { text = text ?? "", index, logprobs = (object?)null, finish_reason = finish } } };

        if (chat)
            for (int r = 0; r < work.Prompts.Count; r++) await Event(response, Chunk(r, null, null, role: true), aborted);
        try
        {
            await foreach (var update in _generator.StreamAsync(work, aborted))
            {
                if (update.Delta is { } d) await Event(response, Chunk(d.Choice, d.Text, null), aborted);
                else if (update.Completion is { } completion)
                {
                    foreach (var c in completion.Choices) await Event(response, Chunk(c.Index, chat ? null : "", Finish(c.Finish)), aborted);
                    if (request.IncludeUsage)
                        await Event(response, new { id, @object = kind, created, model = _generator.ModelId, choices = Array.Empty<object>(), usage = Usage(completion) }, aborted);
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !aborted.IsCancellationRequested)
        {
            // Headers are gone: report in-band, as OpenAI does, then end the stream.
            _log.LogError(ex, "streaming generation failed");
            await Event(response, new ApiError(500, $"generation failed: {ex.Message}", type: "server_error").Body, aborted);
        }
        await response.WriteAsync("data: [DONE]\n\n", aborted);
        await response.Body.FlushAsync(aborted);
    }

    private static async Task Event(HttpResponse response, object payload, CancellationToken cancellationToken)
    {
        await response.WriteAsync("data: " + JsonSerializer.Serialize(payload, s_json) + "\n\n", cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    private static Task Json(HttpContext ctx, int status, object payload)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        return ctx.Response.WriteAsync(JsonSerializer.Serialize(payload, s_json));
    }

    private static object Usage(TextCompletion c) =>
        new { prompt_tokens = c.PromptTokens, completion_tokens = c.CompletionTokens, total_tokens = c.PromptTokens + c.CompletionTokens };

    private static string Finish(CompletionFinish finish) => finish == CompletionFinish.Length ? "length" : "stop";

    private static string NewId(bool chat) => (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
}
