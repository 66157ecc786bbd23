using Llada.Cli.Commands;
using Llada.Diffusion;
using Llada.Model;
using Llada.Numerics;
using Llada.Tests.Golden;
using Llada.Tests.Serving;
using Spectre.Console;

namespace Llada.Tests.Cli;

/// <summary>--compute float32|bf16: the same option on every command that runs a model, reaching the model it loads.</summary>
public sealed class ComputeOptionTests(CliTestHost host) : IClassFixture<CliTestHost>
{
    [Theory]
    [InlineData("generate")]
    [InlineData("chat")]
    [InlineData("serve")]
    [InlineData("score")]
    [InlineData("eval")]
    [InlineData("bench")]
    public async Task Every_command_that_runs_a_model_explains_compute_in_its_help(string command)
    {
        var (exit, help, _) = await CliTestHost.Run(command, "--help");
        Assert.Equal(0, exit);
        string flat = string.Join(" ", help.Split('\n').Select(l => l.Trim()));
        Assert.Contains("--compute <compute>", flat);
        Assert.Contains("float32 (default:", flat);
        Assert.Contains("like PyTorch's bf16 autocast", flat);
        Assert.Contains("f32, f16 and q8 weights are not affected", flat);
    }

    [Fact]
    public async Task Score_with_compute_bf16_equals_the_library_estimate_under_bf16_activations()
    {
        string[] args = ["score", "--model", host.ModelDir, "--prompt-ids", "1,2,3", "--answer-ids", "4,5,6", "--mc-num", "8", "--batch-size", "4", "--json"];
        var exact = await CliTestHost.Run(args);
        var bf16 = await CliTestHost.Run([.. args, "--compute", "bf16"]);
        Assert.True(exact.Exit == 0 && bf16.Exit == 0, exact.Err + bf16.Err);
        // A bf16 model: nothing to warn about on an AVX512_BF16 CPU; elsewhere the notice that bf16 gains no speed.
        if (Llada.Numerics.Native.NativeKernels.HasBf16Kernel) Assert.Equal("", bf16.Err);
        else Assert.Contains("--compute bf16: float32 engine on bf16-rounded activations (", bf16.Err);
        using var model = MaskPredictor.Load(host.ModelDir);
        var options = new LikelihoodOptions { Samples = 8, BatchSize = 4 };
        var ct = TestContext.Current.CancellationToken;
        double libraryExact = new ElboLikelihood(model).Estimate([1, 2, 3], [4, 5, 6], options, ct).LogLikelihood;
        model.Bf16Arithmetic = Bf16Arithmetic.Bf16Activations;
        double libraryBf16 = new ElboLikelihood(model).Estimate([1, 2, 3], [4, 5, 6], options, ct).LogLikelihood;
        Assert.NotEqual(libraryExact, libraryBf16);
        Assert.Equal(libraryExact, CliTestHost.Json(exact.Out).GetProperty("log_likelihood").GetDouble());
        Assert.Equal(libraryBf16, CliTestHost.Json(bf16.Out).GetProperty("log_likelihood").GetDouble());
    }

    [Fact]
    public async Task Generate_with_compute_bf16_matches_the_library_sampler_under_bf16_activations()
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("generate", "--model", host.ModelDir, "--prompt-ids", "1,2,3",
            "--gen-length", "8", "--steps", "8", "--block-length", "4", "--compute", "bf16", "--json");
        Assert.True(exit == 0, stderr);
        using var model = MaskPredictor.Load(host.ModelDir);
        model.Bf16Arithmetic = Bf16Arithmetic.Bf16Activations;
        var options = new GenerationOptions { GenLength = 8, Steps = 8, BlockLength = 4, EosTokenId = model.Config.EosTokenId };
        var expected = new ReverseProcess(model).Generate([1, 2, 3], options, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(expected.Sequences[0], CliTestHost.Json(stdout).GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public async Task Compute_bf16_on_a_model_without_bf16_weights_is_accepted_and_says_it_changes_nothing()
    {
        string dir = GoldenFixtures.Dir("tiny-mha-f32");
        var (exit, stdout, stderr) = await CliTestHost.Run("bench", "--model", dir, "--seq-len", "8", "--repeat", "1", "--active-block", "0",
            "--compute", "bf16", "--json");
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        Assert.Equal("bf16", json.GetProperty("compute").GetString());
        Assert.Contains("no bf16 weight matrices (F32); the option changes nothing", json.GetProperty("compute_notice").GetString());

        var generate = await CliTestHost.Run("generate", "--model", dir, "--prompt-ids", "1,2", "--gen-length", "4", "--compute", "bf16");
        Assert.True(generate.Exit == 0, generate.Err);
        Assert.Contains("(--compute bf16: the model has no bf16 weight matrices (F32); the option changes nothing)", generate.Err);
    }

    [Fact]
    public async Task Bench_reports_which_kernel_multiplies_the_bf16_weights()
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("bench", "--model", host.ModelDir, "--seq-len", "8", "--repeat", "1", "--active-block", "0",
            "--compute", "bf16", "--json");
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        Assert.Equal("bf16", json.GetProperty("compute").GetString());
        Assert.Equal(Llada.Numerics.Native.NativeKernels.Bf16Kernel, json.GetProperty("bf16_kernel").GetString());
    }

    [Theory]
    [InlineData("generate", "--prompt-ids", "1,2")]
    [InlineData("score", "--prompt-ids", "1,2", "--answer-ids", "3")]
    [InlineData("bench")]
    public async Task An_unknown_compute_value_names_the_choices(string command, params string[] extra)
    {
        var (exit, _, stderr) = await CliTestHost.Run([command, "--model", host.ModelDir, .. extra, "--compute", "fp8"]);
        Assert.Equal(1, exit);
        Assert.Contains("--compute 'fp8' is unknown; use float32 (the default, exact) or bf16", stderr);
    }

    [Fact]
    public async Task Chat_set_compute_switches_the_loaded_model_and_shows_it()
    {
        using var dir = new Llada.Tests.Model.TempDir();
        var config = SyntheticCheckpoint.Config(dModel: 32, nLayers: 1, nHeads: 4, mlp: 32, vocab: ByteTokenizer.Vocab, nKvHeads: 2, maxSeq: 64);
        SyntheticCheckpoint.Write(dir.Path, config, DType.BF16, seed: 3, cancellationToken: TestContext.Current.CancellationToken);
        ByteTokenizer.Write(dir.Path);
        using var g = Llada.Serving.TextGenerator.Load(dir.Path);
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No,
        });
        var repl = new ChatRepl(g, g.DefaultOptions(8), null, console, visualize: false);
        await repl.RunAsync(new StringReader("/show\n/set compute bf16\n/set compute fp8\n"), installCtrlC: false, TestContext.Current.CancellationToken);
        string text = System.Text.RegularExpressions.Regex.Replace(output.ToString(), @"\s+", " "); // the console wraps long lines
        Assert.Contains("visualize off, compute float32", text);
        Assert.Contains("visualize off, compute bf16", text);
        Assert.Contains("error: compute 'fp8' is unknown; use float32", text);
        Assert.Equal(Bf16Arithmetic.Bf16Activations, ((MaskPredictor)g.Predictor).Bf16Arithmetic);
    }
}
