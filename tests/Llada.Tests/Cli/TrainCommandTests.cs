using Llada.Cli;
using Llada.Tests.Training.Runs;

namespace Llada.Tests.Cli;

public class TrainCommandTests
{
    private static readonly string Tokenizer = SftRunTests.HandmadeTokenizer;
    private const string MetricsLogName = Llada.Training.Runs.MetricsLog.FileName;

    private static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await LladaCli.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static string Temp(string name, string? text = null, byte[]? bytes = null)
    {
        string dir = RunTestSupport.TempDir();
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, name);
        if (text is not null) File.WriteAllText(path, text);
        if (bytes is not null) File.WriteAllBytes(path, bytes);
        return path;
    }

    private static string Corpus() => Temp("train.txt", string.Join("\n\n", Enumerable.Range(0, 40).Select(i =>
        $"Call me Ishmael number {i}. Some years ago, never mind how long precisely, I thought I would sail about a little.")) + "\n");

    private static string TinyConfig(string extra = "") => Temp("tiny.json",
        $$"""{ "d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "mlp_hidden_size": 48, "seq_len": 32, "batch_size": 2, "steps": 3, "warmup_steps": 1, "eval_interval": 2, "eval_batches": 1, "checkpoint_interval": 2 {{extra}} }""");

    [Fact]
    public async Task Train_runs_end_to_end_and_resume_extends_the_run()
    {
        string data = Corpus(), config = TinyConfig(), output = RunTestSupport.TempDir();
        var (code, stdout, stderr) = await Run("train", "--config", config, "--data", data, "--valid", data, "--tokenizer", Tokenizer, "--out", output, "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("finished at step 3/3", stdout);
        Assert.Contains("ELBO perplexity", stdout);
        Assert.Contains("step 3/3  loss", stderr); // plain progress lines when stderr is not a terminal
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));

        (code, stdout, stderr) = await Run("train", "--config", config, "--data", data, "--out", output, "--resume", "--steps", "4");
        Assert.True(code == 0, stderr);
        Assert.Contains("resuming at step 3", stderr);
        Assert.Contains("finished at step 4/4", stdout);

        (code, _, stderr) = await Run("train", "--config", config, "--data", data, "--tokenizer", Tokenizer, "--out", output);
        Assert.Equal(1, code);
        Assert.Contains("already holds a training run; pass --resume", stderr);
        (code, _, stderr) = await Run("train", "--config", config, "--data", data, "--out", output, "--resume", "--seed", "99");
        Assert.Equal(1, code);
        Assert.Contains("error: --resume with a different configuration: seed was 1234, now 99", stderr);
    }

    [Fact]
    public async Task Train_with_MoE_fields_writes_a_LLaDA_MoE_checkpoint_that_info_generate_and_resume_read()
    {
        string data = Corpus(), output = RunTestSupport.TempDir();
        string config = TinyConfig(""", "num_experts": 4, "num_experts_per_tok": 2, "expert_intermediate_size": 16, "first_k_dense_replace": 1, "router_z_loss_coef": 0.001""");
        var (code, stdout, stderr) = await Run("train", "--config", config, "--data", data, "--valid", data, "--tokenizer", Tokenizer, "--out", output, "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("finished at step 3/3", stdout);
        var written = Llada.Model.LladaConfigFile.Load(Path.Combine(output, "config.json"));
        Assert.Equal("lladamoe", written.ModelType);
        Assert.Equal([false, true], written.Moe!.MoeLayers);
        Assert.Equal(0.001, written.Moe.RouterZLossCoef);

        (code, stdout, stderr) = await Run("info", "--model", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("4 per MoE layer, top-2", stdout);
        (code, _, stderr) = await Run("generate", "--model", output, "--prompt-ids", "5,6,7", "--gen-length", "8", "--steps", "4");
        Assert.True(code == 0, stderr);
        (code, stdout, stderr) = await Run("train", "--config", config, "--data", data, "--out", output, "--resume", "--steps", "4");
        Assert.True(code == 0, stderr);
        Assert.Contains("finished at step 4/4", stdout);
        Assert.Contains("'num_experts_per_tok' must be in 1..num_experts (4), found 5",
            (await Run("train", "--config", TinyConfig(""", "num_experts": 4, "num_experts_per_tok": 5, "expert_intermediate_size": 16"""),
                "--data", data, "--tokenizer", Tokenizer, "--out", RunTestSupport.TempDir())).Err);
    }

    [Fact]
    public async Task Bad_inputs_fail_with_one_clear_line_before_training()
    {
        string data = Corpus(), config = TinyConfig(), output = RunTestSupport.TempDir();
        async Task Expect(string expected, params string[] args)
        {
            var (code, stdout, stderr) = await Run(args);
            Assert.Equal(1, code);
            Assert.Equal("", stdout);
            Assert.StartsWith("error: ", stderr);
            Assert.Contains(expected, stderr);
            Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        await Expect("training data '/nonexistent/train.txt' not found", "train", "--config", config, "--data", "/nonexistent/train.txt", "--tokenizer", Tokenizer, "--out", output);
        await Expect("is neither a preset (tiny, small, sft) nor a .json file", "train", "--config", "huge", "--data", data, "--tokenizer", Tokenizer, "--out", output);
        await Expect("'lr' must be a number", "train", "--config", Temp("bad.json", """{ "lr": "fast" }"""), "--data", data, "--tokenizer", Tokenizer, "--out", output);
        await Expect("--tokenizer DIR is required", "train", "--config", config, "--data", data, "--out", output);
        await Expect("has 273 tokens but the config's vocab_size is 100", "train", "--config", TinyConfig(""", "vocab_size": 100"""), "--data", data, "--tokenizer", Tokenizer, "--out", output);
        string empty = Temp("empty.txt", "\n\n");
        await Expect(Path.GetFileName(empty), "train", "--config", config, "--data", empty, "--tokenizer", Tokenizer, "--out", RunTestSupport.TempDir());
        string latin1 = Temp("latin1.txt", bytes: [(byte)'c', (byte)'a', (byte)'f', 0xE9, (byte)'\n']);
        await Expect("UTF-8", "train", "--config", config, "--data", latin1, "--tokenizer", Tokenizer, "--out", RunTestSupport.TempDir());
        await Expect("no checkpoint to resume", "train", "--config", config, "--data", data, "--tokenizer", Tokenizer, "--out", RunTestSupport.TempDir(), "--resume");
        await Expect("no checkpoint to resume", "train", "--config", config, "--data", data, "--out", RunTestSupport.TempDir(), "--resume"); // not "no tokenizer in --out"
        await Expect("is a file; the output must be a directory", "train", "--config", config, "--data", data, "--tokenizer", Tokenizer, "--out", data);
        await Expect("--vocab-size must be at least 262 (256 byte symbols + 6 special tokens), not 10", "tokenizer", "train", "--input", data, "--vocab-size", "10", "--out", RunTestSupport.TempDir());
        await Expect("is empty; there is no text to learn merges from", "tokenizer", "train", "--input", Temp("nothing.txt", ""), "--out", RunTestSupport.TempDir());
        await Expect("--save-dtype must be f32 or bf16", "train", "--config", config, "--data", data, "--tokenizer", Tokenizer, "--out", output, "--save-dtype", "f16");
        await Expect("not a model directory", "sft", "--model", "/nonexistent/model", "--data", data, "--out", output);
    }

    [Fact]
    public async Task Bad_data_leaves_no_empty_output_or_cache_folder_behind()
    {
        var (modelDir, _) = SftRunTests.PretrainedModel();
        string root = RunTestSupport.TempDir(), output = Path.Combine(root, "runs", "new");
        var (code, _, stderr) = await Run("sft", "--model", modelDir, "--data", Temp("bad.jsonl", "{\"messages\": 5}\n"), "--out", output);
        Assert.Equal(1, code);
        Assert.Contains("bad.jsonl:1", stderr);
        Assert.False(Directory.Exists(root), $"{root} was left behind");

        string latin1 = Temp("latin1.txt", bytes: [(byte)'c', (byte)'a', (byte)'f', 0xE9, (byte)'\n']);
        (code, _, stderr) = await Run("train", "--config", TinyConfig(), "--data", latin1, "--tokenizer", Tokenizer, "--out", output);
        Assert.Equal(1, code);
        Assert.Contains("UTF-8", stderr);
        Assert.False(Directory.Exists(root), $"{root} was left behind");

        // A directory that was there before stays, with whatever it held.
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, MetricsLogName), "");
        (code, _, _) = await Run("train", "--config", TinyConfig(), "--data", latin1, "--tokenizer", Tokenizer, "--out", output);
        Assert.Equal(1, code);
        Assert.Equal([Path.Combine(output, MetricsLogName)], Directory.EnumerateFileSystemEntries(output));
    }

    [Fact]
    public async Task Sft_refuses_over_long_pairs_and_help_teaches_with_examples()
    {
        var (modelDir, _) = SftRunTests.PretrainedModel();
        string dialogues = SftRunTests.Dialogues();
        var (code, _, stderr) = await Run("sft", "--model", modelDir, "--data", dialogues, "--out", RunTestSupport.TempDir(),
            "--config", Temp("sft.json", """{ "base": "sft", "seq_len": 128 }"""));
        Assert.Equal(1, code);
        Assert.Contains("longer than seq_len 128 tokens", stderr);

        (code, string help, _) = await Run("train", "--help");
        Assert.Equal(0, code);
        Assert.Contains("llada train --config tiny --data data/corpus/train.txt", help);
        Assert.Contains("--resume", help);
        (_, help, _) = await Run("sft", "--help");
        Assert.Contains("llada sft --model runs/tiny", help);
    }

    [Fact]
    public async Task Prefer_trains_with_vrpo_reports_preference_accuracy_and_rejects_bad_flags()
    {
        var (modelDir, _) = SftRunTests.PretrainedModel();
        string data = PreferenceRunTests.Preferences(), output = RunTestSupport.TempDir();
        string config = Temp("prefer.json", """{ "base": "sft", "seq_len": 128, "batch_size": 2, "steps": 2, "warmup_steps": 0, "eval_batches": 1 }""");
        var (code, stdout, stderr) = await Run("prefer", "--model", modelDir, "--data", data, "--valid", data, "--out", output, "--config", config,
            "--samples", "2", "--allocation", "naive", "--timesteps", "2", "--no-antithetic", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("VRPO: beta 0.1, n 2 = 2 timesteps x 1 masks, independent reference draws", stderr);
        Assert.Contains("finished at step 2/2", stdout);
        Assert.Contains("preference accuracy", stdout);
        Assert.True(File.Exists(Path.Combine(output, "loss.svg")));

        (code, _, stderr) = await Run("prefer", "--model", modelDir, "--data", data, "--out", RunTestSupport.TempDir(), "--config", config, "--samples", "4", "--allocation", "naive", "--timesteps", "3");
        Assert.Equal(1, code);
        Assert.Contains("divides the sampling budget 4", stderr);
        (code, _, stderr) = await Run("prefer", "--model", modelDir, "--data", data, "--out", RunTestSupport.TempDir(), "--allocation", "best");
        Assert.Equal(1, code);
        Assert.Contains("--allocation must be optimal or naive", stderr);
        (_, string help, _) = await Run("prefer", "--help");
        Assert.Contains("llada prefer --model models/llada-tiny-instruct --data data/prefs/train.jsonl", help);
        Assert.Contains("--no-antithetic", help);
    }

    [Fact]
    public async Task Tokenizer_train_writes_a_tokenizer_that_train_can_use()
    {
        string data = Corpus(), tokenizerDir = RunTestSupport.TempDir();
        var (code, stdout, stderr) = await Run("tokenizer", "train", "--input", data, "--vocab-size", "300", "--out", tokenizerDir);
        Assert.True(code == 0, stderr);
        Assert.Contains("300 tokens", stdout);
        var tokenizer = Llada.Tokenization.Tokenizer.FromDirectory(tokenizerDir);
        Assert.Equal(300, tokenizer.VocabSize);
        Assert.NotNull(tokenizer.MaskTokenId);

        (code, stdout, stderr) = await Run("train", "--config", TinyConfig(), "--steps", "2", "--data", data, "--tokenizer", tokenizerDir, "--out", RunTestSupport.TempDir());
        Assert.True(code == 0, stderr);
        Assert.Contains("finished at step 2/2", stdout);
    }
}
