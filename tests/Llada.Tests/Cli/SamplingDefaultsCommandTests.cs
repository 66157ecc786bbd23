using Llada.Diffusion;
using Llada.Model;
using Llada.Numerics;
using Llada.Serving;
using Llada.Tests.Model;

namespace Llada.Tests.Cli;

/// <summary>
/// A model's generation_config.json sets the sampling defaults: explicit options win over it, it wins over the built-in
/// values, and every command (generate, info, eval, quantize, the library's TextGenerator) agrees.
/// </summary>
public sealed class SamplingDefaultsCommandTests(CliTestHost host) : IClassFixture<CliTestHost>
{
    private const string GenerationConfig = """{"eos_token_id": [1, 2], "max_new_tokens": 16, "steps": 8, "block_length": 4}""";

    /// <summary>A copy of the host's random model with <see cref="GenerationConfig"/> beside it.</summary>
    private static string ModelWithDefaults(TempDir dir, string host, string json = GenerationConfig)
    {
        string model = dir.File("with-defaults");
        Directory.CreateDirectory(model);
        foreach (string file in Directory.GetFiles(host)) File.Copy(file, Path.Combine(model, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(model, SamplingDefaults.FileName), json);
        return model;
    }

    private static async Task<int[]> Canvas(params string[] args)
    {
        var (exit, stdout, stderr) = await CliTestHost.Run(["generate", "--prompt-ids", "5,6,7", "--json", .. args]);
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        return [.. json.GetProperty("token_ids").EnumerateArray().Select(t => t.GetInt32()), json.GetProperty("forward_passes").GetInt32()];
    }

    [Fact]
    public async Task Generate_takes_the_files_settings_over_the_built_in_ones_and_explicit_options_over_the_file()
    {
        using var dir = new TempDir();
        string model = ModelWithDefaults(dir, host.ModelDir);
        // The file's settings give exactly the run those settings give as options on the model without the file
        // (the last number is the forward-pass count: one per step).
        int[] fromFile = await Canvas("--model", model);
        Assert.Equal(16 + 1, fromFile.Length);
        Assert.Equal(8, fromFile[^1]);
        Assert.Equal(await Canvas("--model", host.ModelDir, "--gen-length", "16", "--steps", "8", "--block-length", "4"), fromFile);
        // Without the file: the built-in 64 tokens, one step per token.
        Assert.Equal(64 + 1, (await Canvas("--model", host.ModelDir)).Length);
        Assert.Equal(64, (await Canvas("--model", host.ModelDir))[^1]);
        // Each explicit option replaces only its own setting.
        Assert.Equal(await Canvas("--model", host.ModelDir, "--gen-length", "16", "--steps", "8", "--block-length", "8"),
            await Canvas("--model", model, "--block-length", "8"));
        Assert.Equal(await Canvas("--model", host.ModelDir, "--gen-length", "16", "--steps", "16", "--block-length", "4"),
            await Canvas("--model", model, "--steps", "16"));
        // A different length keeps the file's steps per token (8 tokens -> 4 steps) and block.
        Assert.Equal(await Canvas("--model", host.ModelDir, "--gen-length", "8", "--steps", "4", "--block-length", "4"),
            await Canvas("--model", model, "--gen-length", "8"));
    }

    [Fact]
    public async Task A_block_length_error_says_the_block_came_from_the_models_file()
    {
        using var dir = new TempDir();
        string model = ModelWithDefaults(dir, host.ModelDir);
        var (exit, _, stderr) = await CliTestHost.Run("generate", "--model", model, "--prompt-ids", "1,2", "--gen-length", "6");
        Assert.Equal(1, exit);
        Assert.Equal($"error: --gen-length 6 is not a multiple of --block-length 4 (the answer is split into blocks of equal length): use " +
            $"--gen-length 4 or 8, or --block-length 3 or 6 (--block-length 4 is the model's default ({Path.Combine(model, SamplingDefaults.FileName)}))",
            stderr.Trim());
    }

    [Fact]
    public async Task A_bad_file_fails_generate_with_the_file_and_key_named()
    {
        using var dir = new TempDir();
        string model = ModelWithDefaults(dir, host.ModelDir, """{"block_length": "sixteen"}""");
        var (exit, stdout, stderr) = await CliTestHost.Run("generate", "--model", model, "--prompt-ids", "1,2");
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        Assert.Equal($"error: {Path.Combine(model, SamplingDefaults.FileName)}: 'block_length': must be a 32-bit integer, found \"sixteen\"", stderr.Trim());
    }

    [Fact]
    public async Task Info_lists_the_sampling_defaults_and_where_each_comes_from()
    {
        using var dir = new TempDir();
        string model = ModelWithDefaults(dir, host.ModelDir);
        var (exit, stdout, stderr) = await CliTestHost.Run("info", "--model", model);
        Assert.True(exit == 0, stderr);
        string file = Path.Combine(model, SamplingDefaults.FileName);
        Assert.Contains($"sampling       gen_length 16, steps 8, block_length 4, temperature 0, cfg_scale 0, remasking low_confidence " +
            $"(gen_length, steps, block_length from {file}; the rest built in)", stdout);

        (exit, stdout, stderr) = await CliTestHost.Run("info", "--model", model, "--json");
        Assert.True(exit == 0, stderr);
        var s = CliTestHost.Json(stdout).GetProperty("sampling_defaults");
        Assert.Equal((16, 8, 4), (s.GetProperty("gen_length").GetInt32(), s.GetProperty("steps").GetInt32(), s.GetProperty("block_length").GetInt32()));
        Assert.Equal(file, s.GetProperty("file").GetString());
        Assert.Equal(["gen_length", "steps", "block_length"], s.GetProperty("from_file").EnumerateArray().Select(e => e.GetString()));

        (exit, stdout, _) = await CliTestHost.Run("info", "--model", host.ModelDir);
        Assert.Equal(0, exit);
        Assert.Contains("sampling       gen_length 64, steps 64, block_length 32, temperature 0, cfg_scale 0, remasking low_confidence " +
            "(all built in; no generation_config.json)", stdout);
    }

    [Fact]
    public async Task Quantize_carries_the_generation_config_over()
    {
        using var dir = new TempDir();
        string model = ModelWithDefaults(dir, host.ModelDir), copy = dir.File("f16");
        var (exit, _, stderr) = await CliTestHost.Run("quantize", "--model", model, "--type", "f16", "--out", copy);
        Assert.True(exit == 0, stderr);
        Assert.Equal(GenerationConfig, File.ReadAllText(Path.Combine(copy, SamplingDefaults.FileName)));
        // A model without the file gives a copy without it.
        (exit, _, stderr) = await CliTestHost.Run("quantize", "--model", host.ModelDir, "--type", "f32", "--out", dir.File("f32"));
        Assert.True(exit == 0, stderr);
        Assert.False(File.Exists(Path.Combine(dir.File("f32"), SamplingDefaults.FileName)));
    }

    [Fact]
    public void The_library_generator_and_a_request_apply_the_same_precedence()
    {
        using var dir = new TempDir();
        string model = dir.File("m");
        var config = SyntheticCheckpoint.Config(dModel: 32, nLayers: 1, nHeads: 4, mlp: 48, vocab: Serving.ByteTokenizer.Vocab, nKvHeads: 2, maxSeq: 128);
        SyntheticCheckpoint.Write(model, config, DType.F32, seed: 3, TestContext.Current.CancellationToken);
        Serving.ByteTokenizer.Write(model);
        using (var plain = TextGenerator.Load(model))
            Assert.Equal((64, 64, 32), (plain.DefaultOptions().GenLength, plain.DefaultOptions().Steps, plain.DefaultOptions().BlockLength));
        File.WriteAllText(Path.Combine(model, SamplingDefaults.FileName), GenerationConfig);
        using var g = TextGenerator.Load(model);
        var o = g.DefaultOptions();
        Assert.Equal((16, 8, 4), (o.GenLength, o.Steps, o.BlockLength));
        Assert.Equal((12, 6, 4), (g.DefaultOptions(12).GenLength, g.DefaultOptions(12).Steps, g.DefaultOptions(12).BlockLength));
        // A request's fields override the model's defaults (the server and IChatClient resolve requests this way).
        var r = new SamplingRequest { BlockLength = 8 }.Resolve(o);
        Assert.Equal((16, 8, 8), (r.GenLength, r.Steps, r.BlockLength));
        Assert.Equal((16, 8, 4), (new SamplingRequest().Resolve(o).GenLength, new SamplingRequest().Resolve(o).Steps, new SamplingRequest().Resolve(o).BlockLength));
    }

    [Fact]
    public async Task Eval_checks_every_tasks_block_length_before_evaluating_any()
    {
        using var dir = new TempDir();
        string[] tasks = [dir.File("a.jsonl"), dir.File("b.jsonl"), dir.File("c.jsonl")];
        int[] lengths = [8, 12, 20];
        for (int i = 0; i < tasks.Length; i++)
            File.WriteAllText(tasks[i], $$"""
                {"eval_task":"{{(char)('a' + i)}}","type":"generate","match":"exact","gen_length":{{lengths[i]}}}
                {"prompt":"Spell 'dog'.","answer":"d o g"}
                """);
        string report = dir.File("r.json");
        // The embedded model (it has a tokenizer); task a alone would run, b and c cannot split into blocks of 8.
        var (exit, stdout, stderr) = await CliTestHost.Run(["eval", "--tasks", .. tasks, "--block-length", "8", "--out", report]);
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        Assert.False(File.Exists(report));
        string[] lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal("error: 2 generation tasks cannot run with these settings, so nothing was evaluated:", lines[0]);
        Assert.Equal($"task b ({tasks[1]}, gen_length 12): --gen-length 12 is not a multiple of --block-length 8 (the answer is split into " +
            "blocks of equal length): use --gen-length 8 or 16, or --block-length 6 or 12", lines[1]);
        Assert.StartsWith($"task c ({tasks[2]}, gen_length 20): --gen-length 20 is not a multiple of --block-length 8", lines[2]);
        Assert.Equal(3, lines.Length);

        // Without --block-length the model's default block is fitted to each task's length, so all three run.
        (exit, _, stderr) = await CliTestHost.Run(["eval", "--tasks", .. tasks, "--out", report]);
        Assert.True(exit == 0, stderr);
        var settings = CliTestHost.Json(File.ReadAllText(report)).GetProperty("settings");
        int block = SamplingDefaults.FromDirectory(Path.Combine(AppContext.BaseDirectory, "models", "llada-tiny-instruct")).BlockLength;
        for (int i = 0; i < tasks.Length; i++)
        {
            int expected = Enumerable.Range(1, Math.Min(block, lengths[i])).Last(b => lengths[i] % b == 0);
            Assert.Equal(expected, settings.GetProperty($"block_length.{(char)('a' + i)}").GetInt32());
        }
    }
}
