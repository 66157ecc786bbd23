using System.Text.Json;
using System.Xml.Linq;
using Llada.Model;
using Llada.Numerics;
using Llada.Training.Runs;
using static Llada.Tests.Training.Runs.RunTestSupport;

namespace Llada.Tests.Training.Runs;

public class TrainingRunTests
{
    private static float[] Train(TrainingRunOptions options)
    {
        var run = TrainingRun.Open(options);
        run.Run(null, TestContext.Current.CancellationToken);
        return run.Model.Parameters.ToArray();
    }

    private static List<double> TrainLosses(string dir) =>
        File.ReadLines(Path.Combine(dir, MetricsLog.FileName))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("type").GetString() == "train")
            .Select(e => e.GetProperty("loss").GetDouble()).ToList();

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.BF16)]
    public void Resuming_after_a_stop_is_bit_identical_to_an_uninterrupted_run(DType dtype)
    {
        var config = Config(steps: 6);
        string straight = TempDir(), split = TempDir();
        float[] expected = Train(Options(straight, config, dtype: dtype));

        var first = TrainingRun.Open(Options(split, config, stopAfter: 3, dtype: dtype));
        var stopped = first.Run(null, TestContext.Current.CancellationToken);
        Assert.Equal(3, stopped.Step);
        Assert.False(stopped.Completed);
        // A fresh process: new model, new sources, everything restored from the directory.
        var second = TrainingRun.Open(Options(split, config, resume: true, dtype: dtype));
        Assert.Equal(3, second.Step);
        var done = second.Run(null, TestContext.Current.CancellationToken);
        Assert.True(done.Completed);

        float[] actual = second.Model.Parameters;
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]), $"parameter {i}: {expected[i]} vs {actual[i]}");
        Assert.Equal(TrainLosses(straight), TrainLosses(split));
    }

    [Fact]
    public void Cancellation_saves_a_checkpoint_that_resumes_identically()
    {
        var config = Config(steps: 5);
        string straight = TempDir(), cancelled = TempDir();
        float[] expected = Train(Options(straight, config));

        using var cts = new CancellationTokenSource();
        var run = TrainingRun.Open(Options(cancelled, config));
        var progress = new RunEvents(e => { if (e is RunStepDone { Step: 2 }) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => run.Run(progress, cts.Token));
        using (var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(cancelled, TrainingRun.StateFileName))))
            Assert.Equal(2, state.RootElement.GetProperty("step").GetInt64());

        float[] actual = Train(Options(cancelled, config, resume: true));
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Output_is_a_loadable_model_directory_without_temporary_leftovers()
    {
        var config = Config(steps: 5);
        string dir = TempDir();
        var run = TrainingRun.Open(Options(dir, config) with { SaveDType = DType.BF16 });
        run.Run(null, TestContext.Current.CancellationToken);

        var names = Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName).Order().ToList();
        Assert.Equal(["config.json", "loss.svg", "metrics.jsonl", "model.safetensors", "training_state.bin", "training_state.json"], names);
        using var checkpoint = LladaCheckpoint.Open(dir);
        Assert.Equal(DType.BF16, checkpoint.DType);
        Assert.Equal(32, checkpoint.Config.DModel);
        Assert.Equal(Mask, checkpoint.Config.MaskTokenId);
        // BF16 weights are the float32 weights rounded to nearest even.
        var t = run.Model.Tensor("model.transformer.blocks.1.q_proj.weight");
        float[] saved = checkpoint.ReadSingles(t.Name);
        for (int i = 0; i < saved.Length; i++)
            Assert.Equal(DTypes.BF16ToSingle(DTypes.SingleToBF16(run.Model.Parameters[t.Offset + i])), saved[i]);
    }

    [Fact]
    public void Metrics_log_and_loss_curve_record_every_step_and_evaluation()
    {
        var config = Config(steps: 4);
        string dir = TempDir();
        var run = TrainingRun.Open(Options(dir, config));
        var result = run.Run(null, TestContext.Current.CancellationToken);

        var lines = File.ReadAllLines(Path.Combine(dir, MetricsLog.FileName)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var train = lines.Where(e => e.GetProperty("type").GetString() == "train").ToList();
        var eval = lines.Where(e => e.GetProperty("type").GetString() == "eval").ToList();
        Assert.Equal([1L, 2, 3, 4], train.Select(e => e.GetProperty("step").GetInt64()));
        Assert.Equal([0L, 2, 4], eval.Select(e => e.GetProperty("step").GetInt64())); // before training, then every 2 steps
        foreach (var e in eval)
        {
            double loss = e.GetProperty("loss").GetDouble();
            Assert.Equal(loss / Math.Log(2), e.GetProperty("bits_per_token").GetDouble(), 12);
            Assert.Equal(Math.Exp(loss), e.GetProperty("perplexity").GetDouble(), 9);
            Assert.True(e.GetProperty("bound").GetBoolean());
        }
        // The untrained model is close to uniform over the 24 ids: the ELBO is about ln 24 per token (Eq. 3 weights
        // 1/p_mask undo the masking rate), so the first evaluation is near 3.18 nats.
        Assert.InRange(eval[0].GetProperty("loss").GetDouble(), 2.5, 4.0);
        Assert.Equal(result.LastEvaluation!.Loss, eval[^1].GetProperty("loss").GetDouble());

        var svg = XDocument.Load(Path.Combine(dir, MetricsLog.ChartFileName));
        XNamespace ns = "http://www.w3.org/2000/svg";
        var polylines = svg.Descendants(ns + "polyline").ToList();
        Assert.Equal(3, polylines.Count); // train, its moving average, held-out
        Assert.Equal(4, polylines[0].Attribute("points")!.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Equal(3, polylines[2].Attribute("points")!.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public void An_AR_run_marks_its_config_json_as_autoregressive()
    {
        string ar = TempDir(), mdm = TempDir();
        TrainingRun.Open(Options(ar, Config(steps: 4) with { Objective = RunObjective.Ar })).Run(null, TestContext.Current.CancellationToken);
        TrainingRun.Open(Options(mdm, Config(steps: 4))).Run(null, TestContext.Current.CancellationToken);
        using var arConfig = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(ar, "config.json")));
        Assert.Equal("ar", arConfig.RootElement.GetProperty(TrainingRun.ObjectiveConfigKey).GetString());
        Assert.DoesNotContain(TrainingRun.ObjectiveConfigKey, File.ReadAllText(Path.Combine(mdm, "config.json")));
        File.Delete(Path.Combine(ar, TrainingRun.StateFileName));
        Assert.Equal(Llada.Evaluation.ModelKind.Autoregressive, Llada.Evaluation.EvaluatedModel.DetectKind(ar));
    }

    [Fact]
    public void Held_out_AR_loss_is_the_exact_mean_next_token_NLL()
    {
        var config = Config(steps: 4) with { Objective = RunObjective.Ar };
        var options = Options(TempDir(), config);
        var run = TrainingRun.Open(options);
        var evaluator = new HeldOutEvaluator(options.HeldOut, Llada.Diffusion.ObjectiveKind.Autoregressive, Mask, 1);
        var result = evaluator.Evaluate(run.Model, 0, TestContext.Current.CancellationToken);
        Assert.False(result.IsBound);

        // Reference: causal logits at every position through the inference path, log-softmax in double.
        double sum = 0;
        int count = 0;
        var model = run.Model;
        model.Causal = true;
        int[] all = Enumerable.Range(0, config.SeqLen).ToArray();
        foreach (var b in options.HeldOut)
        {
            var logits = new float[b.Batch * b.SeqLen * Vocab];
            model.Forward(b.Tokens.Span, b.Batch, b.SeqLen, default, all, logits, TestContext.Current.CancellationToken);
            double batchSum = 0;
            for (int r = 0; r < b.Batch; r++)
                for (int t = 0; t + 1 < b.SeqLen; t++)
                {
                    var row = logits.AsSpan((r * b.SeqLen + t) * Vocab, Vocab);
                    double max = double.MinValue, z = 0;
                    foreach (float v in row) max = Math.Max(max, v);
                    foreach (float v in row) z += Math.Exp(v - max);
                    batchSum += max + Math.Log(z) - row[b.Tokens.Span[r * b.SeqLen + t + 1]];
                }
            sum += batchSum / (b.Batch * (b.SeqLen - 1));
            count++;
        }
        Assert.Equal(sum / count, result.Loss, 4);
    }

    [Fact]
    public void Resume_refuses_a_changed_configuration_and_a_fresh_run_refuses_an_existing_one()
    {
        var config = Config(steps: 4);
        string dir = TempDir();
        TrainingRun.Open(Options(dir, config, stopAfter: 1)).Run(null, TestContext.Current.CancellationToken);

        var changed = Assert.Throws<InvalidDataException>(() => TrainingRun.Open(Options(dir, config with { LearningRate = 1e-2 }, resume: true)));
        Assert.Contains("lr was 0.003, now 0.01", changed.Message);
        var data = Assert.Throws<InvalidDataException>(() => TrainingRun.Open(Options(dir, config, resume: true) with
        {
            Provenance = new Dictionary<string, string> { ["training data"] = "other" },
        }));
        Assert.Contains("training data", data.Message);
        var fresh = Assert.Throws<InvalidOperationException>(() => TrainingRun.Open(Options(dir, config)));
        Assert.Contains("--resume", fresh.Message);
        var none = Assert.Throws<InvalidOperationException>(() => TrainingRun.Open(Options(TempDir(), config, resume: true)));
        Assert.Contains("no checkpoint", none.Message);
        // Extending the run is allowed.
        Assert.Equal(1, TrainingRun.Open(Options(dir, config with { Steps = 8 }, resume: true)).Step);
    }

    [Fact]
    public void A_checkpoint_whose_files_do_not_match_its_state_is_refused()
    {
        var config = Config(steps: 4);
        string dir = TempDir();
        TrainingRun.Open(Options(dir, config, stopAfter: 1)).Run(null, TestContext.Current.CancellationToken);
        // Simulate a crash between moving the new weights in and writing the new state file.
        File.AppendAllText(Path.Combine(dir, "model.safetensors"), " ");
        var ex = Assert.Throws<InvalidDataException>(() => TrainingRun.Open(Options(dir, config, resume: true)));
        Assert.Contains("model.safetensors does not match", ex.Message);
    }
}

/// <summary>IProgress that reports synchronously on the calling thread.</summary>
internal sealed class RunEvents(Action<RunEvent> report) : IProgress<RunEvent>
{
    public void Report(RunEvent value) => report(value);
}
