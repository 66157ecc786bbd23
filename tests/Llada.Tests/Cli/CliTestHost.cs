using System.Text.Json;
using Llada.Cli;
using Llada.Model;
using Llada.Numerics;

namespace Llada.Tests.Cli;

/// <summary>Runs `llada` in-process and captures stdout/stderr; owns a tiny random model on disk.</summary>
public sealed class CliTestHost : IDisposable
{
    public string ModelDir { get; }
    private readonly string _root;

    public CliTestHost()
    {
        _root = Directory.CreateTempSubdirectory("llada-cli-").FullName;
        ModelDir = Path.Combine(_root, "tiny");
        var config = SyntheticCheckpoint.Config(dModel: 32, nLayers: 2, nHeads: 4, mlp: 48, vocab: 64, nKvHeads: 2, maxSeq: 128);
        SyntheticCheckpoint.Write(ModelDir, config, DType.BF16, seed: 7);
    }

    public static async Task<(int Exit, string Out, string Err)> Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = await LladaCli.RunAsync(args, output, error);
        return (exit, output.ToString(), error.ToString());
    }

    public static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
