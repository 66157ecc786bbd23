using System.Text.Json;
using Llada.Serving;
using Microsoft.AspNetCore.Http;

namespace Llada.Server;

/// <summary>The parts of an OpenAI chat or completion request the server uses, read with strict type checks.</summary>
internal sealed record OpenAiRequest
{
    public string? Model { get; init; }
    public IReadOnlyList<Tokenization.ChatMessage> Messages { get; init; } = [];
    public IReadOnlyList<string> Prompts { get; init; } = [];
    public int N { get; init; } = 1;
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public SamplingRequest Sampling { get; init; } = new();

    /// <summary>Reads the body (at most <paramref name="maxBytes"/>) as JSON.</summary>
    public static async Task<JsonDocument> ReadJsonAsync(HttpRequest request, long maxBytes, CancellationToken cancellationToken)
    {
        if (request.ContentLength > maxBytes) throw TooLarge(maxBytes);
        var buffer = new MemoryStream();
        var chunk = new byte[16384];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > maxBytes) throw TooLarge(maxBytes);
            buffer.Write(chunk, 0, read);
        }
        if (buffer.Length == 0) throw new ApiError(400, "the request body is empty; send a JSON object");
        try
        {
            return JsonDocument.Parse(buffer.GetBuffer().AsMemory(0, (int)buffer.Length));
        }
        catch (JsonException ex)
        {
            throw new ApiError(400, $"the request body is not valid JSON: {ex.Message}", code: "invalid_json");
        }
    }

    private static ApiError TooLarge(long maxBytes) =>
        new(413, $"the request body exceeds the server's limit of {maxBytes} bytes", code: "request_too_large");

    /// <summary>Parses a /v1/chat/completions body.</summary>
    public static OpenAiRequest Chat(JsonElement root)
    {
        RequireObject(root);
        if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind == JsonValueKind.Null)
            throw new ApiError(400, "'messages' is required", "messages", "missing_required_parameter");
        if (messages.ValueKind != JsonValueKind.Array) throw WrongType("messages", "an array", messages);
        if (messages.GetArrayLength() == 0) throw new ApiError(400, "'messages' must contain at least one message", "messages");
        var list = new List<Tokenization.ChatMessage>();
        int i = 0;
        foreach (var m in messages.EnumerateArray())
        {
            string at = $"messages[{i++}]";
            if (m.ValueKind != JsonValueKind.Object) throw WrongType(at, "an object", m);
            string role = String(m, "role", at + ".role") ?? throw new ApiError(400, $"'{at}.role' is required", at + ".role", "missing_required_parameter");
            if (role is not ("system" or "developer" or "user" or "assistant"))
                throw new ApiError(400, $"'{at}.role' is '{role}'; expected system, developer, user or assistant", at + ".role");
            list.Add(new Tokenization.ChatMessage(role == "developer" ? "system" : role, Content(m, at + ".content")));
        }
        return Common(root) with { Messages = list };
    }

    /// <summary>Parses a /v1/completions body.</summary>
    public static OpenAiRequest Completion(JsonElement root)
    {
        RequireObject(root);
        if (!root.TryGetProperty("prompt", out var prompt) || prompt.ValueKind == JsonValueKind.Null)
            throw new ApiError(400, "'prompt' is required", "prompt", "missing_required_parameter");
        List<string> prompts;
        if (prompt.ValueKind == JsonValueKind.String) prompts = [prompt.GetString()!];
        else if (prompt.ValueKind == JsonValueKind.Array && prompt.EnumerateArray().All(p => p.ValueKind == JsonValueKind.String))
            prompts = prompt.EnumerateArray().Select(p => p.GetString()!).ToList();
        else throw WrongType("prompt", "a string or an array of strings", prompt);
        if (prompts.Count == 0) throw new ApiError(400, "'prompt' must contain at least one prompt", "prompt");
        return Common(root) with { Prompts = prompts };
    }

    private static OpenAiRequest Common(JsonElement root)
    {
        int? maxTokens = Int(root, "max_completion_tokens") ?? Int(root, "max_tokens");
        string? stopParam = root.TryGetProperty("stop", out var stop) ? "stop" : null;
        List<string> stops = [];
        if (stopParam is not null && stop.ValueKind != JsonValueKind.Null)
        {
            if (stop.ValueKind == JsonValueKind.String) stops.Add(stop.GetString()!);
            else if (stop.ValueKind == JsonValueKind.Array && stop.EnumerateArray().All(s => s.ValueKind == JsonValueKind.String))
                stops.AddRange(stop.EnumerateArray().Select(s => s.GetString()!));
            else throw WrongType("stop", "a string or an array of strings", stop);
            if (stops.Count > 4) throw new ApiError(400, $"'stop' may hold at most 4 sequences (got {stops.Count})", "stop");
            stops.RemoveAll(s => s.Length == 0);
        }
        bool includeUsage = false;
        if (root.TryGetProperty("stream_options", out var so) && so.ValueKind != JsonValueKind.Null)
        {
            if (so.ValueKind != JsonValueKind.Object) throw WrongType("stream_options", "an object", so);
            includeUsage = Bool(so, "include_usage", "stream_options.include_usage") ?? false;
        }
        double? temperature = Number(root, "temperature");
        if (temperature is < 0 or > 2) throw new ApiError(400, $"'temperature' must be between 0 and 2 (got {temperature})", "temperature");
        int n = Int(root, "n") ?? 1;
        if (n < 1) throw new ApiError(400, $"'n' must be at least 1 (got {n})", "n");
        long? seed = root.TryGetProperty("seed", out var s) && s.ValueKind != JsonValueKind.Null
            ? s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out long v) ? v : throw WrongType("seed", "an integer", s)
            : null;
        return new OpenAiRequest
        {
            Model = String(root, "model", "model"),
            N = n,
            Stream = Bool(root, "stream", "stream") ?? false,
            IncludeUsage = includeUsage,
            Stop = stops,
            Sampling = new SamplingRequest
            {
                MaxTokens = maxTokens,
                Temperature = temperature,
                Seed = seed is { } sv ? unchecked((int)sv) : null,
                Steps = Int(root, "steps"),
                BlockLength = Int(root, "block_length"),
                CfgScale = Number(root, "cfg_scale"),
                Threshold = Number(root, "threshold"),
                Remasking = String(root, "remasking", "remasking"),
                Cache = String(root, "cache", "cache"),
            },
        };
    }

    private static string Content(JsonElement message, string at)
    {
        if (!message.TryGetProperty("content", out var c) || c.ValueKind == JsonValueKind.Null) return "";
        if (c.ValueKind == JsonValueKind.String) return c.GetString()!;
        if (c.ValueKind != JsonValueKind.Array) throw WrongType(at, "a string or an array of content parts", c);
        var text = new System.Text.StringBuilder();
        int i = 0;
        foreach (var part in c.EnumerateArray())
        {
            string partAt = $"{at}[{i++}]";
            if (part.ValueKind != JsonValueKind.Object) throw WrongType(partAt, "an object", part);
            string type = String(part, "type", partAt + ".type") ?? "text";
            if (type != "text") throw new ApiError(400, $"'{partAt}.type' is '{type}'; only text content is supported", partAt + ".type");
            text.Append(String(part, "text", partAt + ".text"));
        }
        return text.ToString();
    }

    private static void RequireObject(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new ApiError(400, $"the request body must be a JSON object (got {Kind(root)})");
    }

    private static string? String(JsonElement node, string name, string param)
    {
        if (!node.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw WrongType(param, "a string", v);
    }

    private static bool? Bool(JsonElement node, string name, string param)
    {
        if (!node.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw WrongType(param, "a boolean", v);
    }

    private static int? Int(JsonElement node, string name)
    {
        if (!node.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw WrongType(name, "an integer", v);
    }

    private static double? Number(JsonElement node, string name)
    {
        if (!node.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw WrongType(name, "a number", v);
    }

    private static ApiError WrongType(string param, string expected, JsonElement got) =>
        new(400, $"'{param}' must be {expected} (got {Kind(got)})", param, "invalid_type");

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {e.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };
}
