using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Llada.Server;

/// <summary>A request the server refuses, answered as OpenAI does: <c>{"error":{"message","type","param","code"}}</c>.</summary>
public sealed class ApiError(int status, string message, string? param = null, string? code = null, string type = "invalid_request_error")
    : Exception(message)
{
    /// <summary>HTTP status code.</summary>
    public int Status { get; } = status;
    /// <summary>The request field at fault, if one is.</summary>
    public string? Param { get; } = param;
    /// <summary>Machine-readable code (e.g. model_not_found), if any.</summary>
    public string? Code { get; } = code;
    /// <summary>OpenAI error type (invalid_request_error, authentication_error, rate_limit_error, server_error).</summary>
    public string Type { get; } = type;

    /// <summary>The JSON body.</summary>
    public object Body => new { error = new { message = Message, type = Type, param = Param, code = Code } };

    /// <summary>Writes status and body.</summary>
    public Task WriteAsync(HttpResponse response)
    {
        response.StatusCode = Status;
        response.ContentType = "application/json";
        return response.WriteAsync(JsonSerializer.Serialize(Body, LladaServer.s_json));
    }
}
