using Llada.Evaluation;
using Llada.Tests.Cli;
using Llada.Training.Runs;

namespace Llada.Tests.Evaluation;

/// <summary>`llada generate` and `llada score` on the AR baseline, against the in-memory causal model run naively.</summary>
public sealed class AutoregressiveCommandTests(EvalModels models) : IClassFixture<EvalModels>
{
    private static readonly int[] Prompt = [EvalFakes.Tokenizer.BosTokenId!.Value, 10, 11, 12];

    // Independent reference: one full causal forward per prefix, log-softmax in double at the last position.
    private double[] LogProbsAfter(int[] prefix)
    {
        var logits = new float[EvalFakes.Vocab];
        models.ArModel.Forward(prefix, 1, prefix.Length, [], [prefix.Length - 1], logits, TestContext.Current.CancellationToken);
        double max = logits.Max(), z = logits.Sum(l => Math.Exp(l - max));
        return logits.Select(l => l - max - Math.Log(z)).ToArray();
    }

    [Fact]
    public async Task Generate_decodes_an_AR_baseline_greedily_left_to_right()
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("generate", "--model", models.Autoregressive,
            "--prompt-ids", string.Join(",", Prompt), "--gen-length", "5", "--json");
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        Assert.Equal("autoregressive", json.GetProperty("model_kind").GetString());
        int[] tokens = json.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();

        var expected = Prompt.ToList();
        for (int i = 0; i < 5; i++)
        {
            double[] lp = LogProbsAfter(expected.ToArray());
            lp[EvalFakes.Mask] = double.NegativeInfinity;
            int next = Array.IndexOf(lp, lp.Max());
            if (next == EvalFakes.Eos) break;
            expected.Add(next);
        }
        Assert.Equal(expected.Skip(Prompt.Length), tokens);
    }

    [Fact]
    public async Task Score_gives_the_exact_AR_log_likelihood()
    {
        int[] answer = [20, 21, 22];
        var (exit, stdout, stderr) = await CliTestHost.Run("score", "--model", models.Autoregressive,
            "--prompt-ids", string.Join(",", Prompt), "--answer-ids", string.Join(",", answer), "--json");
        Assert.True(exit == 0, stderr);
        double expected = 0;
        var prefix = Prompt.ToList();
        foreach (int a in answer)
        {
            expected += LogProbsAfter(prefix.ToArray())[a];
            prefix.Add(a);
        }
        var json = CliTestHost.Json(stdout);
        Assert.Equal(expected, json.GetProperty("log_likelihood").GetDouble(), 1e-4);
        Assert.Equal(0.0, json.GetProperty("std_error").GetDouble());
    }

    [Fact]
    public void The_config_json_marker_identifies_an_AR_copy_without_a_training_state()
    {
        string dir = EvalFakes.Temp();
        try
        {
            foreach (var f in Directory.GetFiles(models.Autoregressive))
                if (Path.GetFileName(f) != TrainingRun.StateFileName) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
            Assert.Equal(ModelKind.Diffusion, EvaluatedModel.DetectKind(dir));
            string config = Path.Combine(dir, "config.json");
            string text = File.ReadAllText(config);
            File.WriteAllText(config, text.Insert(text.IndexOf('{') + 1, $"\"{TrainingRun.ObjectiveConfigKey}\": \"ar\","));
            Assert.Equal(ModelKind.Autoregressive, EvaluatedModel.DetectKind(dir));
            File.WriteAllText(config, text.Insert(text.IndexOf('{') + 1, $"\"{TrainingRun.ObjectiveConfigKey}\": \"gpt\","));
            var error = Assert.Throws<InvalidDataException>(() => EvaluatedModel.DetectKind(dir));
            Assert.Contains("config.json", error.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
