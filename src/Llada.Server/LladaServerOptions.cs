using Llada.Diffusion;

namespace Llada.Server;

/// <summary>Settings of the OpenAI-compatible HTTP server.</summary>
public sealed record LladaServerOptions
{
    /// <summary>Address to listen on; loopback by default so nothing is exposed without asking.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one.</summary>
    public int Port { get; init; } = 8080;

    /// <summary>When set, /v1/* requires "Authorization: Bearer {ApiKey}".</summary>
    public string? ApiKey { get; init; }

    /// <summary>Requests that may wait while one generates; more get 429 with Retry-After.</summary>
    public int MaxQueue { get; init; } = 8;

    /// <summary>Largest accepted request body in bytes (413 above).</summary>
    public long MaxRequestBodyBytes { get; init; } = 1 << 20;

    /// <summary>Largest accepted prompt in tokens (null: the model's max_sequence_length).</summary>
    public int? MaxPromptTokens { get; init; }

    /// <summary>Largest accepted max_tokens.</summary>
    public int MaxTokens { get; init; } = 1024;

    /// <summary>Largest number of answers one request may ask for (n times the number of prompts).</summary>
    public int MaxChoices { get; init; } = 8;

    /// <summary>Reverse-process options used where a request sets nothing (null: the generator's defaults).</summary>
    public GenerationOptions? Defaults { get; init; }
}
