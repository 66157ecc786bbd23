using System.Text.Json;
using Llada.Evaluation;
using Llada.Model;
using Llada.Numerics;
using Llada.Tests.Cli;
using Llada.Tests.Tokenization;
using Llada.Training;
using Llada.Training.Runs;

namespace Llada.Tests.Evaluation;

/// <summary>A tiny random diffusion model and a tiny AR model, both with the trained fixture tokenizer (vocab 1000).</summary>
public sealed class EvalModels : IDisposable
{
    public string Root { get; } = EvalFakes.Temp();
    public string Diffusion => Path.Combine(Root, "mdm");
    public string Autoregressive => Path.Combine(Root, "ar");
    public TrainableModel ArModel { get; }

    public EvalModels()
    {
        var config = SyntheticCheckpoint.Config(dModel: 16, nLayers: 1, nHeads: 2, mlp: 24, vocab: EvalFakes.Vocab, maxSeq: 64)
            with { MaskTokenId = EvalFakes.Mask, EosTokenId = EvalFakes.Eos, PadTokenId = EvalFakes.Eos };
        SyntheticCheckpoint.Write(Diffusion, config, DType.F32, seed: 3);
        foreach (string f in CheckpointWriter.TokenizerFileNames)
        {
            string source = Path.Combine(TokenizerFixtures.Directory("trained"), f);
            if (File.Exists(source)) File.Copy(source, Path.Combine(Diffusion, f));
        }
        ArModel = new TrainableModel(ModelShape.FromConfig(config), 1, 64, seed: 5) { Causal = true };
        CheckpointWriter.Write(Autoregressive, config, ModelWeights.ToTensors(ArModel),
            new CheckpointWriteOptions { TokenizerSourceDirectory = TokenizerFixtures.Directory("trained") });
        // What `llada train --objective ar` leaves next to the weights (only the part eval reads).
        File.WriteAllText(Path.Combine(Autoregressive, TrainingRun.StateFileName), """{"format":1,"config":{"objective":"ar"}}""");
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

public sealed class EvalCommandTests(EvalModels models) : IClassFixture<EvalModels>, IDisposable
{
    private readonly string _dir = EvalFakes.Temp();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Tasks()
    {
        EvalFakes.WriteLines(_dir, "gen.jsonl", """{"eval_task":"gen","type":"generate","gen_length":4}""",
            """{"prompt":"What is 1 + 1?","answer":"2"}""", """{"prompt":"What is 2 + 2?","answer":"4"}""", """{"prompt":"What is 3 + 3?","answer":"6"}""");
        EvalFakes.WriteLines(_dir, "mc.jsonl", """{"prompt":"What is 1 + 1?","choices":["2","3"],"answer":0}""",
            """{"prompt":"What is 2 + 2?","choices":["5","4"],"answer":1}""", """{"prompt":"What is 3 + 3?","choices":["6","7"],"answer":0}""");
        return EvalFakes.WriteLines(_dir, "ppl.jsonl", """{"text":"In the beginning God created the heaven and the earth."}""",
            """{"text":"And the earth was without form, and void."}""", """{"text":"Let there be light."}""");
    }

    [Fact]
    public async Task Eval_writes_a_report_with_settings_metrics_and_items_honouring_limit()
    {
        Tasks();
        string json = Path.Combine(_dir, "r.json"), md = Path.Combine(_dir, "r.md");
        var (exit, stdout, stderr) = await CliTestHost.Run("eval", "--model", models.Diffusion, "--tasks",
            Path.Combine(_dir, "gen.jsonl"), Path.Combine(_dir, "mc.jsonl"), Path.Combine(_dir, "ppl.jsonl"),
            "--limit", "2", "--mc-num", "4", "--batch-size", "2", "--seed", "9", "--out", json, "--markdown", md);
        Assert.True(exit == 0, stderr);
        var report = CliTestHost.Json(File.ReadAllText(json));
        Assert.True(report.GetProperty("complete").GetBoolean());
        Assert.Equal("diffusion", report.GetProperty("model_kind").GetString());
        Assert.Equal(4, report.GetProperty("settings").GetProperty("mc_num").GetInt32());
        Assert.Equal(9, report.GetProperty("settings").GetProperty("seed").GetInt32());
        Assert.Equal(4, report.GetProperty("settings").GetProperty("gen_length.gen").GetInt32()); // from the task header
        var tasks = report.GetProperty("tasks").EnumerateArray().ToDictionary(t => t.GetProperty("name").GetString()!);
        Assert.Equal(["gen", "mc", "ppl"], tasks.Keys);
        foreach (var t in tasks.Values)
        {
            Assert.Equal(2, t.GetProperty("count").GetInt32());
            Assert.Equal(2, t.GetProperty("items").GetArrayLength());
        }
        var gen = tasks["gen"];
        int correct = gen.GetProperty("items").EnumerateArray().Count(i => i.GetProperty("correct").GetBoolean());
        Assert.Equal(correct, gen.GetProperty("correct").GetInt32());
        Assert.Equal(correct / 2.0, gen.GetProperty("metrics").GetProperty("accuracy").GetProperty("value").GetDouble());
        var ppl = tasks["ppl"];
        Assert.True(ppl.GetProperty("bound").GetBoolean());
        double nats = ppl.GetProperty("metrics").GetProperty("nats_per_token").GetProperty("value").GetDouble();
        double nll = ppl.GetProperty("items").EnumerateArray().Sum(i => i.GetProperty("nll").GetDouble());
        Assert.Equal(nll / ppl.GetProperty("tokens").GetInt64(), nats, 1e-12);
        Assert.Equal(Math.Exp(nats), ppl.GetProperty("metrics").GetProperty("perplexity").GetProperty("value").GetDouble(), 1e-9);
        Assert.Contains("| ppl | perplexity | 2 | perplexity (bound) |", File.ReadAllText(md));
        Assert.Contains("| mc | choice | 2 | accuracy |", stdout);
    }

    [Fact]
    public async Task Eval_is_reproducible_for_a_seed()
    {
        string ppl = Tasks();
        string[] args = ["eval", "--model", models.Diffusion, "--tasks", ppl, "--mc-num", "8", "--seed", "1"];
        var a = await CliTestHost.Run([.. args, "--out", Path.Combine(_dir, "a.json")]);
        var b = await CliTestHost.Run([.. args, "--out", Path.Combine(_dir, "b.json")]);
        Assert.True(a.Exit == 0 && b.Exit == 0, a.Err + b.Err);
        string Metrics(string f) => CliTestHost.Json(File.ReadAllText(Path.Combine(_dir, f))).GetProperty("tasks")[0].GetProperty("metrics").ToString();
        Assert.Equal(Metrics("a.json"), Metrics("b.json"));
    }

    [Fact]
    public async Task Same_seed_gives_the_same_report_in_separate_processes()
    {
        string ppl = Tasks();
        string cli = Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "Llada.Cli.exe" : "Llada.Cli");
        async Task<string> RunProcess(string report)
        {
            var start = new System.Diagnostics.ProcessStartInfo(cli)
            {
                ArgumentList = { "eval", "--model", models.Diffusion, "--tasks", ppl, "--mc-num", "4", "--seed", "3", "--out", report },
                RedirectStandardOutput = true, RedirectStandardError = true,
            };
            using var process = System.Diagnostics.Process.Start(start)!;
            string err = await process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
            await process.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.True(process.ExitCode == 0, err);
            return CliTestHost.Json(File.ReadAllText(report)).GetProperty("tasks")[0].GetProperty("items").ToString();
        }
        Assert.Equal(await RunProcess(Path.Combine(_dir, "p1.json")), await RunProcess(Path.Combine(_dir, "p2.json")));
    }

    [Fact]
    public async Task Estimator_option_selects_the_mask_draws_and_is_recorded()
    {
        string ppl = Tasks();
        string[] args = ["eval", "--model", models.Diffusion, "--tasks", ppl, "--mc-num", "8", "--seed", "1"];
        var eq6 = await CliTestHost.Run([.. args, "--out", Path.Combine(_dir, "a.json")]);
        var rate = await CliTestHost.Run([.. args, "--estimator", "mask-rate", "--out", Path.Combine(_dir, "b.json")]);
        Assert.True(eq6.Exit == 0 && rate.Exit == 0, eq6.Err + rate.Err);
        JsonElement Report(string f) => CliTestHost.Json(File.ReadAllText(Path.Combine(_dir, f)));
        Assert.Equal("eq6", Report("a.json").GetProperty("settings").GetProperty("estimator").GetString());
        Assert.Equal("mask-rate", Report("b.json").GetProperty("settings").GetProperty("estimator").GetString());
        double Nll(string f) => Report(f).GetProperty("tasks")[0].GetProperty("items")[0].GetProperty("nll").GetDouble();
        Assert.NotEqual(Nll("a.json"), Nll("b.json"));

        var bad = await CliTestHost.Run([.. args, "--estimator", "eq3"]);
        Assert.Equal(1, bad.Exit);
        Assert.Contains("--estimator must be eq6, eq6-unstratified or mask-rate, not 'eq3'", bad.Err);
    }

    [Fact]
    public async Task Autoregressive_model_is_detected_and_its_perplexity_is_exact()
    {
        string ppl = Tasks();
        string json = Path.Combine(_dir, "ar.json");
        var (exit, _, stderr) = await CliTestHost.Run("eval", "--model", models.Autoregressive, "--tasks", ppl, "--limit", "1", "--out", json);
        Assert.True(exit == 0, stderr);
        var report = CliTestHost.Json(File.ReadAllText(json));
        Assert.Equal("autoregressive", report.GetProperty("model_kind").GetString());
        var task = report.GetProperty("tasks")[0];
        Assert.False(task.GetProperty("bound").GetBoolean());
        Assert.Equal(JsonValueKind.Null, task.GetProperty("metrics").GetProperty("nats_per_token").GetProperty("standard_error").ValueKind);

        // Reference: the in-memory model, one prefix at a time.
        var tok = EvalFakes.Tokenizer;
        int[] ids = [tok.BosTokenId!.Value, .. tok.Encode("In the beginning God created the heaven and the earth.")];
        var logits = new float[EvalFakes.Vocab];
        double nll = 0;
        for (int t = 1; t < ids.Length; t++)
        {
            models.ArModel.Forward(ids.AsSpan(0, t), 1, t, [], [t - 1], logits, TestContext.Current.CancellationToken);
            double max = logits.Max();
            nll -= logits[ids[t]] - max - Math.Log(logits.Sum(l => Math.Exp(l - max)));
        }
        Assert.Equal(nll, task.GetProperty("items")[0].GetProperty("nll").GetDouble(), 1e-4);
    }

    [Fact]
    public async Task Compare_prints_shared_tasks_side_by_side()
    {
        Tasks();
        string a = Path.Combine(_dir, "mdm.json"), b = Path.Combine(_dir, "ar.json");
        var ra = await CliTestHost.Run("eval", "--model", models.Diffusion, "--tasks", Path.Combine(_dir, "mc.jsonl"), Path.Combine(_dir, "ppl.jsonl"),
            "--mc-num", "2", "--limit", "1", "--out", a);
        var rb = await CliTestHost.Run("eval", "--model", models.Autoregressive, "--tasks", Path.Combine(_dir, "ppl.jsonl"), "--limit", "1", "--out", b);
        Assert.True(ra.Exit == 0 && rb.Exit == 0, ra.Err + rb.Err);
        var (exit, stdout, stderr) = await CliTestHost.Run("eval", "--compare", a, b);
        Assert.True(exit == 0, stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("| task", lines[0]);
        Assert.Contains("mdm.json", lines[0]);
        Assert.Contains("ar.json", lines[0]);
        double Value(string file, string metric) => CliTestHost.Json(File.ReadAllText(file)).GetProperty("tasks").EnumerateArray()
            .Single(t => t.GetProperty("name").GetString() == "ppl").GetProperty("metrics").GetProperty(metric).GetProperty("value").GetDouble();
        string row = lines.Single(l => l.Contains("| ppl") && l.Contains("| nats_per_token"));
        Assert.Contains(EvalReport.Format(Value(a, "nats_per_token")) + " ± ", row);
        Assert.EndsWith(EvalReport.Format(Value(b, "nats_per_token")) + " |", row);
        Assert.DoesNotContain(lines, l => l.StartsWith("| mc"));
        Assert.Contains("Not in every report (left out): mc", stdout);
    }

    [Theory]
    [InlineData("--mc-num must be at least 1 (got 0)", "--mc-num", "0")]
    [InlineData("--batch-size must be at least 1 (got 0)", "--batch-size", "0")]
    [InlineData("--max-context must be at least 2 tokens (got 1)", "--max-context", "1")]
    public async Task Bad_numeric_options_are_named_as_typed_before_the_model_loads(string expected, params string[] option)
    {
        // A model directory that does not exist: the option is checked first.
        var (exit, stdout, stderr) = await CliTestHost.Run(["eval", "--model", Path.Combine(_dir, "no-model"), "--tasks", Tasks(), .. option]);
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        Assert.Equal($"error: {expected}", stderr.Trim());
    }

    [Fact]
    public async Task Task_file_errors_are_one_line_with_file_and_line()
    {
        string bad = EvalFakes.WriteLines(_dir, "bad.jsonl", """{"prompt":"p","answer":"a"}""", """{"prompt":"p","choices":["a","b"],"answer":5}""");
        var (exit, stdout, stderr) = await CliTestHost.Run("eval", "--model", models.Diffusion, "--tasks", bad);
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        Assert.Equal($"error: {bad}:2: this is a choice item but the task is generate (from line 1); a file holds one task type", stderr.Trim());
    }
}
