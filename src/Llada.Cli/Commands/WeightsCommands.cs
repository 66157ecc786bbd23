using System.CommandLine;
using System.Diagnostics;
using Llada.Model;
using Llada.Numerics;

namespace Llada.Cli.Commands;

/// <summary>`llada quantize` and `llada synth`: write a checkpoint in another weight type, or a random one of a given shape.</summary>
internal static class WeightsCommands
{
    public static IEnumerable<Command> All()
    {
        yield return Quantize();
        yield return Synth();
    }

    private static Option<string> OutOption() => new("--out", "-o")
    {
        Description = "Directory to write (config.json, *.safetensors, tokenizer files). Must not exist unless --overwrite.",
        Required = true,
    };

    private static Command Quantize()
    {
        var model = ModelSource.ModelOption(required: true);
        var type = new Option<string>("--type", "-t")
        {
            Description = "Target weight type: q8 (Q8_0 blocks for the Transformer matrices and the LM head; embedding and norms " +
                          "keep their float type), bf16, f16 or f32 (every tensor).",
            Required = true,
        };
        var keepHead = new Option<bool>("--keep-head-float") { Description = "With q8: leave the LM head (ff_out) in its float type." };
        var output = OutOption();
        var overwrite = ModelSource.OverwriteOption();
        var command = new Command("quantize",
            "Write a copy of a model with its weights in another type, converted tensor by tensor (memory use stays flat), with " +
            "config.json, the tokenizer files and generation_config.json (sampling defaults). The result loads like any model directory; " +
            "the Q8_0 layout is in docs/quantization.md.\n" +
            "Examples:\n  llada quantize --model models/llada-tiny-instruct --type q8 --out /tmp/tiny-q8\n" +
            "  llada quantize --model ./LLaDA-8B-Instruct --type q8 --out ./LLaDA-8B-Instruct-q8")
        {
            model, type, keepHead, output, overwrite,
        };
        CliAction.Set(command, (parse, ctx, token) =>
        {
            var target = BenchCommand.ParseDType(parse.GetValue(type)!, type.Name);
            string dir = ModelSource.Resolve(parse.GetValue(model));
            string outDir = parse.GetValue(output)!;
            CheckOut(outDir, parse.GetValue(overwrite));
            if (Path.GetFullPath(Path.TrimEndingDirectorySeparator(outDir)) == Path.GetFullPath(Path.TrimEndingDirectorySeparator(dir)))
                throw new ArgumentException($"--out '{outDir}' is the --model directory; write the copy somewhere else");
            using var source = LladaCheckpoint.Open(dir);
            var watch = Stopwatch.StartNew();
            CheckpointConversion.Write(source, outDir, target, parse.GetValue(keepHead), parse.GetValue(overwrite), Progress(ctx, watch), token);
            using var written = LladaCheckpoint.Open(outDir);
            ctx.Output.WriteLine($"wrote {Path.GetFullPath(outDir)}: {written.Describe().DTypeSummary}, " +
                $"{Units.Bytes(written.BytesOnDisk)} on disk (was {Units.Bytes(source.BytesOnDisk)}) in {watch.Elapsed.TotalSeconds:0.0} s");
            return Task.FromResult(0);
        });
        return command;
    }

    private static Command Synth()
    {
        var shape = new Option<string>("--shape")
        {
            Description = "llada-8b (d_model 4096, 32 layers, 32 heads, mlp 12288, vocab 126464), llada-moe-7b-a1b (hidden 2048, " +
                          "16 layers, 64 experts of 1024, top-8, vocab 157184) or d_model,n_layers,n_heads,mlp,vocab.",
            Required = true,
        };
        var dtype = new Option<string>("--dtype") { Description = "f32, bf16, f16 or q8 (Q8_0 matrices, bf16 embedding and norms).", DefaultValueFactory = _ => "bf16" };
        var seed = new Option<int>("--seed") { Description = "Seed of the random weights.", DefaultValueFactory = _ => 0 };
        var output = OutOption();
        var overwrite = ModelSource.OverwriteOption();
        var command = new Command("synth",
            "Write a random-weight checkpoint of a given shape, streamed to disk tensor by tensor (an 8B model never sits in memory), " +
            "for speed and memory measurements without downloading real weights. Matrices are uniform with std 0.02, norms 1.\n" +
            "Examples:\n  llada synth --shape llada-8b --dtype q8 --out /tmp/llada-8b-q8\n" +
            "  llada synth --shape llada-moe-7b-a1b --dtype q8 --out /tmp/llada-moe-q8\n" +
            "  llada synth --shape 1024,8,16,2816,32000 --dtype bf16 --out /tmp/mid-bf16")
        {
            shape, dtype, seed, output, overwrite,
        };
        CliAction.Set(command, (parse, ctx, token) =>
        {
            string text = parse.GetValue(shape)!;
            var config = text.ToLowerInvariant() switch
            {
                "llada-8b" => SyntheticCheckpoint.Llada8B(),
                "llada-moe-7b-a1b" => SyntheticCheckpoint.LladaMoe7BA1B(),
                _ => BenchCommand.ParseShape(text, 4096, option: "--shape", alternatives: "llada-8b, llada-moe-7b-a1b or "),
            };
            var weightType = BenchCommand.ParseDType(parse.GetValue(dtype)!, dtype.Name);
            string outDir = parse.GetValue(output)!;
            CheckOut(outDir, parse.GetValue(overwrite));
            var watch = Stopwatch.StartNew();
            SyntheticCheckpoint.Write(outDir, config, weightType, parse.GetValue(seed), token,
                Progress(ctx, watch));
            using var written = LladaCheckpoint.Open(outDir);
            var d = written.Describe();
            ctx.Output.WriteLine($"wrote {Path.GetFullPath(outDir)}: {d.ParameterCount:N0} parameters, {d.DTypeSummary}, " +
                $"{Units.Bytes(d.BytesOnDisk)} on disk in {watch.Elapsed.TotalSeconds:0.0} s");
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>Refuses an --out that would fail only after the whole model has been written.</summary>
    private static void CheckOut(string outDir, bool overwrite)
    {
        if (File.Exists(outDir)) throw new IOException($"--out '{outDir}' is a file; give a directory to create");
        if (Directory.Exists(outDir) && !overwrite) throw new IOException($"--out '{outDir}' already exists (use --overwrite to replace it)");
        OutputPaths.CheckDirectory(outDir, "--out");
    }

    /// <summary>One stderr line per stored tensor: running byte total, elapsed time, name and dtype.</summary>
    private static SyncProgress<NamedTensor> Progress(CommandContext ctx, Stopwatch watch)
    {
        long bytes = 0;
        return new SyncProgress<NamedTensor>(t =>
        {
            ctx.Error.WriteLine($"{Units.Bytes(bytes),10} {watch.Elapsed.TotalSeconds,6:0.0} s  {t.Name} ({t.DTypeName} [{string.Join(", ", t.Shape)}])");
            bytes += t.ByteLength;
        });
    }

    /// <summary>An <see cref="IProgress{T}"/> that reports on the calling thread (Progress&lt;T&gt; would post to the thread pool).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
