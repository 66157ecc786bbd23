using System.CommandLine;
using Llada.Server;
using Llada.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;

namespace Llada.Cli.Commands;

/// <summary>`llada serve`: the OpenAI-compatible HTTP API.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = ModelSource.ModelOption();
        var host = new Option<string>("--host") { Description = "Address to listen on (loopback by default; 0.0.0.0 exposes the server).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one).", DefaultValueFactory = _ => 8080 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on /v1/* (default: $LLADA_API_KEY, else no key)." };
        var maxQueue = new Option<int>("--max-queue") { Description = "Requests that may wait for the model; more get 429.", DefaultValueFactory = _ => 8 };
        var maxTokens = new Option<int>("--max-tokens-limit") { Description = "Largest max_tokens a request may ask for.", DefaultValueFactory = _ => 1024 };
        var maxPrompt = new Option<int?>("--max-prompt-tokens") { Description = "Largest prompt in tokens (default: the model's max_sequence_length)." };
        var threads = ModelSource.ThreadsOption();
        var compute = ModelSource.ComputeOption();
        var sampling = new SamplingOptions();
        var command = new Command("serve",
            "Serve the model over an OpenAI-compatible HTTP API: GET /health, GET /v1/models, POST /v1/chat/completions, POST /v1/completions\n" +
            "(stream true|false). Sampling options set the defaults (unset ones: the model's generation_config.json, else built in); requests may override max_tokens, temperature, seed, stop, n and the\n" +
            "LLaDA fields steps, block_length, remasking, cfg_scale, threshold, cache.\n" +
            "Examples:\n  llada serve\n  llada serve --port 9000 --api-key secret --gen-length 128 --block-length 32")
        {
            model, host, port, apiKey, maxQueue, maxTokens, maxPrompt, threads, compute,
        };
        sampling.AddTo(command);
        CliAction.Set(command, async (parse, ctx, token) =>
        {
            ModelSource.ApplyThreads(parse.GetValue(threads));
            using var generator = ChatCommand.OpenGenerator(parse.GetValue(model), "the server needs text",
                ModelSource.ParseCompute(parse.GetValue(compute)), ctx.Error);
            var options = new LladaServerOptions
            {
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                ApiKey = parse.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("LLADA_API_KEY"),
                MaxQueue = parse.GetValue(maxQueue),
                MaxTokens = parse.GetValue(maxTokens),
                MaxPromptTokens = parse.GetValue(maxPrompt),
                Defaults = sampling.Build(parse, generator.SamplingDefaults, generator.EosTokenId, generator.EndOfTurnTokenId),
            };
            if (options.Port is < 0 or > 65535) throw new ArgumentException($"--port must be in 0..65535 (got {options.Port})");
            if (options.MaxQueue < 0) throw new ArgumentException($"--max-queue must be >= 0 (got {options.MaxQueue})");
            await using var app = LladaServer.Build(generator, options);
            await app.StartAsync(token);
            ctx.Error.WriteLine($"serving '{generator.ModelId}' on {string.Join(", ", app.Urls)} (OpenAI API under /v1{(options.ApiKey is null ? "" : ", API key required")}); Ctrl-C stops");
            await app.WaitForShutdownAsync(token);
            return 0;
        });
        return command;
    }
}
