using System.Text.Json;

namespace Llada.Tests.Cli;

public sealed class CliCommandTests(CliTestHost host) : IClassFixture<CliTestHost>
{
    [Fact]
    public async Task Generate_json_reports_the_uncut_canvas_and_one_forward_pass_per_step()
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("generate", "--model", host.ModelDir, "--prompt-ids", "1,2,3",
            "--gen-length", "8", "--steps", "4", "--block-length", "4", "--json");
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        Assert.Equal([1, 2, 3], json.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()));
        var canvas = json.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(8, canvas.Length);
        Assert.DoesNotContain(63, canvas); // the mask id never survives
        Assert.Equal(4, json.GetProperty("forward_passes").GetInt32());
    }

    [Theory]
    [InlineData("prefix")]
    [InlineData("dual")]
    public async Task Generate_with_a_cache_matches_the_library_sampler_and_counts_window_passes(string cache)
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("generate", "--model", host.ModelDir, "--prompt-ids", "1,2,3",
            "--gen-length", "16", "--steps", "8", "--block-length", "4", "--cache", cache, "--json");
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        using var model = Llada.Model.MaskPredictor.Load(host.ModelDir);
        var options = new Llada.Diffusion.GenerationOptions
        {
            GenLength = 16, Steps = 8, BlockLength = 4, EosTokenId = model.Config.EosTokenId,
            Cache = Llada.Diffusion.KvCacheModeNames.Parse(cache),
        };
        var expected = new Llada.Diffusion.ReverseProcess(model).Generate([1, 2, 3], options, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(expected.Sequences[0], json.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(8, json.GetProperty("forward_passes").GetInt32());
        Assert.Equal(4, json.GetProperty("window_passes").GetInt32()); // 4 blocks of 2 steps: the second step of each
    }

    [Fact]
    public async Task Generate_is_reproducible_for_a_seed()
    {
        string[] args = ["generate", "--model", host.ModelDir, "--prompt-ids", "5,6", "--gen-length", "8", "--temperature", "1", "--seed", "3", "--json"];
        var a = await CliTestHost.Run(args);
        var b = await CliTestHost.Run(args);
        Assert.Equal(CliTestHost.Json(a.Out).GetProperty("token_ids").ToString(), CliTestHost.Json(b.Out).GetProperty("token_ids").ToString());
    }

    [Theory]
    [InlineData("--gen-length 10 is not a multiple of --block-length 4", "--gen-length", "10", "--block-length", "4")]
    [InlineData("--steps 3 is not a multiple of the number of blocks, 2", "--gen-length", "8", "--block-length", "4", "--steps", "3")]
    [InlineData("'sideways' is unknown", "--remasking", "sideways")]
    [InlineData("max_sequence_length", "--gen-length", "200", "--block-length", "200")]
    [InlineData("--cache 'triple' is unknown; use none, prefix or dual", "--cache", "triple")]
    public async Task Generate_rejects_bad_arguments_with_one_clear_line(string expected, params string[] extra)
    {
        var (exit, stdout, stderr) = await CliTestHost.Run(["generate", "--model", host.ModelDir, "--prompt-ids", "1,2", .. extra]);
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
    }

    [Fact]
    public async Task Generate_rejects_ids_outside_the_vocabulary()
    {
        var (exit, _, stderr) = await CliTestHost.Run("generate", "--model", host.ModelDir, "--prompt-ids", "1,999", "--gen-length", "4");
        Assert.Equal(1, exit);
        Assert.Contains("999", stderr);
        Assert.DoesNotContain("   at ", stderr); // no stack trace without --verbose
    }

    [Fact]
    public async Task Missing_model_directory_is_a_clear_error()
    {
        var (exit, _, stderr) = await CliTestHost.Run("info", "--model", "/nonexistent/model");
        Assert.Equal(1, exit);
        Assert.Contains("'/nonexistent/model' does not exist", stderr);
    }

    [Fact]
    public async Task Info_json_counts_parameters()
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("info", "--model", host.ModelDir, "--json");
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        // wte + lm head 2*64*32, per layer: norms 2*32, q/o 2*32*32, k/v 2*16*32, mlp 3*48*32; ln_f 32
        long expected = 2 * 64 * 32 + 2 * (2 * 32 + 2 * 32 * 32 + 2 * 16 * 32 + 3 * 48 * 32) + 32;
        Assert.Equal(expected, json.GetProperty("parameters").GetInt64());
        Assert.Equal("BF16", json.GetProperty("dtype").GetString());
        Assert.Equal(2, json.GetProperty("n_kv_heads").GetInt32());
    }

    [Fact]
    public async Task Score_json_reports_estimate_error_and_sample_count()
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("score", "--model", host.ModelDir, "--prompt-ids", "1,2,3",
            "--answer-ids", "4,5,6", "--mc-num", "32", "--batch-size", "8", "--json");
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        double ll = json.GetProperty("log_likelihood").GetDouble();
        Assert.True(ll < 0 && ll > -3 * Math.Log(64) * 3, $"log-likelihood {ll}");
        Assert.True(json.GetProperty("std_error").GetDouble() >= 0);
        Assert.Equal(32, json.GetProperty("mc_num").GetInt32());
    }

    [Theory]
    [InlineData("4", "1", "(standard error; 1 sample, 1 answer token)")]
    [InlineData("4,5", "2", "(standard error; 2 samples, 2 answer tokens)")]
    public async Task Score_text_counts_samples_and_answer_tokens_in_words_that_agree(string answer, string mcNum, string expected)
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("score", "--model", host.ModelDir, "--prompt-ids", "1,2,3",
            "--answer-ids", answer, "--mc-num", mcNum);
        Assert.True(exit == 0, stderr);
        Assert.EndsWith(expected, stdout.Trim());
    }

    [Fact]
    public async Task Bench_json_reports_the_median_forward_time()
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("bench", "--model", host.ModelDir, "--seq-len", "16", "--repeat", "2", "--active-block", "4", "--json");
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        Assert.True(json.GetProperty("forward_ms_median").GetDouble() > 0);
        Assert.True(json.GetProperty("gflops").GetDouble() > 0);
        Assert.Equal(4, json.GetProperty("active_block").GetInt32());
        Assert.True(json.GetProperty("cached_window_ms_median").GetDouble() > 0);
    }

    [Fact]
    public async Task Text_prompt_without_a_tokenizer_says_to_use_ids()
    {
        var (exit, _, stderr) = await CliTestHost.Run("generate", "--model", host.ModelDir, "--prompt", "hello", "--gen-length", "4");
        Assert.Equal(1, exit);
        Assert.Contains("--prompt-ids", stderr);
    }

    [Fact]
    public async Task An_autoregressive_baseline_run_is_refused_by_the_diffusion_sampler()
    {
        string dir = Path.Combine(Path.GetTempPath(), "llada-ar-" + Guid.NewGuid().ToString("N"));
        try
        {
            Directory.CreateDirectory(dir);
            foreach (var f in Directory.GetFiles(host.ModelDir)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
            File.WriteAllText(Path.Combine(dir, "training_state.json"), "{\"config\":{\"objective\":\"ar\"}}");
            var (exit, _, stderr) = await CliTestHost.Run("chat", "--model", dir);
            Assert.Equal(1, exit);
            Assert.Contains("autoregressive baseline", stderr);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
