// Load test for `llada serve`: N concurrent clients send R chat requests over loopback and every answer is checked
// against the one the same prompt got when sent alone, so dropped, failed or mixed-up responses are caught.
// Without --url it starts the server in-process on a tiny random-weight model with a byte-level tokenizer.
//
//   dotnet run -c Release --project tools/loadtest -- [--clients 8] [--requests 64] [--max-tokens 16] [--url http://127.0.0.1:8080]
//   dotnet run -c Release --project tools/loadtest -- --write-model DIR   (just write the tiny model, e.g. to try `llada chat`)
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Llada.Model;
using Llada.Numerics;
using Llada.Server;
using Llada.Serving;
using Llada.Tokenization;
using Microsoft.Extensions.Logging;

int clients = Arg("--clients", 8), requests = Arg("--requests", 64), maxTokens = Arg("--max-tokens", 16), prompts = Arg("--prompts", 8);
string? url = ArgString("--url");
if (ArgString("--write-model") is { } modelDir)
{
    WriteTinyModel(modelDir);
    Console.WriteLine($"wrote a tiny random-weight model with a byte-level tokenizer to {modelDir}");
    return 0;
}
if (clients < 1 || clients > 64 || requests < 1 || requests > 10_000) return Fail("--clients must be 1..64 and --requests 1..10000");

string? dir = null;
TextGenerator? generator = null;
Microsoft.AspNetCore.Builder.WebApplication? app = null;
try
{
    if (url is null)
    {
        dir = Directory.CreateTempSubdirectory("llada-loadtest-").FullName;
        WriteTinyModel(dir);
        generator = TextGenerator.Load(dir, "llada-loadtest");
        app = LladaServer.Build(generator, new LladaServerOptions { Port = 0, MaxQueue = clients + 1 }, b => b.Logging.ClearProviders());
        await app.StartAsync();
        url = app.Urls.Single();
    }
    var baseUri = new Uri(url);
    if (!baseUri.IsLoopback) return Fail($"{url} is not a loopback address; this tool only loads local servers");
    using var http = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromMinutes(5) };

    // Reference answers: each prompt alone.
    var expected = new string[prompts];
    for (int p = 0; p < prompts; p++) expected[p] = (await Ask(http, p)).Text ?? throw new InvalidOperationException($"prompt {p} failed alone");

    var latencies = new double[requests];
    int next = -1, ok = 0, wrong = 0, failed = 0, rejected = 0;
    var wall = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
    {
        int i;
        while ((i = Interlocked.Increment(ref next)) < requests)
        {
            var start = Stopwatch.GetTimestamp();
            var (text, status) = await Ask(http, i % prompts);
            latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (status == 429) Interlocked.Increment(ref rejected);
            else if (text is null) Interlocked.Increment(ref failed);
            else if (text != expected[i % prompts]) Interlocked.Increment(ref wrong);
            else Interlocked.Increment(ref ok);
        }
    }));
    wall.Stop();
    Array.Sort(latencies);
    Console.WriteLine($"clients {clients}, requests {requests}, max_tokens {maxTokens}, distinct prompts {prompts}");
    Console.WriteLine($"throughput {requests / wall.Elapsed.TotalSeconds:0.0} requests/s over {wall.Elapsed.TotalSeconds:0.00} s");
    Console.WriteLine($"latency p50 {Percentile(0.50):0.0} ms, p99 {Percentile(0.99):0.0} ms, max {latencies[^1]:0.0} ms");
    Console.WriteLine($"correct {ok}, mixed up {wrong}, failed {failed}, rejected (429) {rejected}");
    return ok == requests ? 0 : 1;

    double Percentile(double q) => latencies[Math.Min(latencies.Length - 1, (int)Math.Ceiling(q * latencies.Length) - 1)];
}
finally
{
    if (app is not null) await app.DisposeAsync();
    generator?.Dispose();
    if (dir is not null) Directory.Delete(dir, recursive: true);
}

async Task<(string? Text, int Status)> Ask(HttpClient http, int prompt)
{
    using var response = await http.PostAsJsonAsync("/v1/chat/completions", new
    {
        messages = new[] { new { role = "user", content = $"Request number {prompt}: say something." } },
        max_tokens = maxTokens,
        temperature = 1.0,
        seed = prompt, // different prompts and seeds give different answers, so a mix-up shows
    });
    if (!response.IsSuccessStatusCode) return (null, (int)response.StatusCode);
    var json = await response.Content.ReadFromJsonAsync<JsonElement>();
    return (json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(), 200);
}

int Arg(string name, int fallback) => ArgString(name) is { } v ? int.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : fallback;

string? ArgString(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

static int Fail(string message)
{
    Console.Error.WriteLine("error: " + message);
    return 2;
}

// A 2-layer random model over a byte-level tokenizer (one id per byte) with LLaDA's special tokens.
static void WriteTinyModel(string dir)
{
    string[] specials = ["<|startoftext|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|endoftext|>", "<|mdm_mask|>"];
    var config = SyntheticCheckpoint.Config(dModel: 64, nLayers: 2, nHeads: 4, mlp: 128, vocab: 256 + specials.Length, maxSeq: 512);
    SyntheticCheckpoint.Write(dir, config, DType.F32, seed: 1);
    var vocab = Enumerable.Range(0, 256).ToDictionary(b => ByteLevelAlphabet.ToChar((byte)b).ToString(), b => b);
    File.WriteAllText(Path.Combine(dir, "tokenizer.json"), JsonSerializer.Serialize(new
    {
        version = "1.0",
        added_tokens = specials.Select((s, i) => new { id = 256 + i, content = s, single_word = false, lstrip = false, rstrip = false, normalized = false, special = true }),
        pre_tokenizer = new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = true },
        decoder = new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = true },
        model = new { type = "BPE", vocab, merges = Array.Empty<string>() },
    }));
    File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
        JsonSerializer.Serialize(new { bos_token = specials[0], eos_token = specials[4], mask_token = specials[5] }));
}
