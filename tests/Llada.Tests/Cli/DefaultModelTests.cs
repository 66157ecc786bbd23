namespace Llada.Tests.Cli;

/// <summary>The embedded default model (models/llada-tiny-instruct) travels with the executable and works.</summary>
public class DefaultModelTests
{
    [Fact]
    public async Task Generate_without_model_uses_the_embedded_instruct_model()
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("generate", "--prompt", "Hello, my name is Anna.",
            "--gen-length", "16", "--steps", "16", "--block-length", "8", "--json");
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        Assert.Equal(16, json.GetProperty("token_ids").GetArrayLength());
        // The chat template wraps the prompt: BOS + user header ... + assistant header.
        Assert.True(json.GetProperty("prompt_ids").GetArrayLength() > 8);
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("text").GetString()));
    }

    [Fact]
    public async Task The_readme_quick_start_answers_what_the_readme_says_it_does()
    {
        string readme = File.ReadAllText(Path.Combine(Llada.Tests.Training.Data.TestTokenizers.RepoRoot(), "README.md"));
        var command = System.Text.RegularExpressions.Regex.Match(readme, @"src/Llada.Cli -- generate --prompt ""([^""]+)""((?: --[a-z-]+ [0-9]+)*) --visualize");
        var answer = System.Text.RegularExpressions.Regex.Match(readme, @"It answers `([^`]+)`");
        Assert.True(command.Success && answer.Success, "README quick start not found");
        // --visualize only redraws a terminal; the answer is the same without it.
        string[] options = command.Groups[2].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var (exit, stdout, stderr) = await CliTestHost.Run(["generate", "--prompt", command.Groups[1].Value, .. options]);
        Assert.True(exit == 0, stderr);
        Assert.Equal(answer.Groups[1].Value, stdout.Trim());
        // The model's generation_config.json is what makes the answer whole: the built-in block ends it early, as the README says.
        var shorter = System.Text.RegularExpressions.Regex.Match(readme, @"with `--block-length (\d+)`[^""]*stops after ""([^""]+)""");
        Assert.True(shorter.Success, "README's answer with the built-in block length not found");
        Assert.Equal(Llada.Diffusion.SamplingDefaults.BuiltIn.BlockLength.ToString(), shorter.Groups[1].Value);
        (exit, stdout, stderr) = await CliTestHost.Run(["generate", "--prompt", command.Groups[1].Value, .. options, "--block-length", shorter.Groups[1].Value]);
        Assert.True(exit == 0, stderr);
        Assert.Equal(shorter.Groups[2].Value, stdout.Trim());
    }

    [Fact]
    public async Task Info_describes_the_embedded_model_as_a_bf16_llada()
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("info", "--json");
        Assert.True(exit == 0, stderr);
        var json = CliTestHost.Json(stdout);
        Assert.Equal("BF16", json.GetProperty("dtype").GetString());
        Assert.Equal("LLaDAModelLM", json.GetProperty("architecture").GetString());
        Assert.True(json.GetProperty("has_tokenizer").GetBoolean());
        // Its generation_config.json sets the sampling defaults measured for it (docs/models.md): blocks of 16.
        var sampling = json.GetProperty("sampling_defaults");
        Assert.Equal(16, sampling.GetProperty("block_length").GetInt32());
        Assert.Contains("block_length", sampling.GetProperty("from_file").EnumerateArray().Select(e => e.GetString()));
        Assert.EndsWith(Path.Combine("llada-tiny-instruct", "generation_config.json"), sampling.GetProperty("file").GetString());
    }

    [Fact]
    public async Task Bench_sampling_counts_full_and_window_passes_per_setting()
    {
        string dir = Directory.CreateTempSubdirectory("llada-bench-sampling-").FullName;
        try
        {
            string task = Path.Combine(dir, "rev.jsonl");
            File.WriteAllText(task, """
                {"eval_task":"rev","type":"generate","match":"exact","gen_length":8}
                {"prompt":"Reverse the word cat.","answer":"tac"}
                {"prompt":"Reverse the word dog.","answer":"god"}
                """);
            var (exit, stdout, stderr) = await CliTestHost.Run("bench", "--sampling", task, "--block-length", "4", "--json");
            Assert.True(exit == 0, stderr);
            var settings = CliTestHost.Json(stdout).GetProperty("settings").EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);
            Assert.Equal(12, settings.Count);
            var vanilla = settings["vanilla"];
            Assert.Equal(16, vanilla.GetProperty("full_passes").GetInt32()); // 2 prompts x 8 steps
            Assert.Equal(0, vanilla.GetProperty("window_passes").GetInt32());
            Assert.Equal(2, vanilla.GetProperty("same_answer_as_vanilla").GetInt32());
            foreach (string name in new[] { "cache prefix", "cache dual" })
            {
                Assert.Equal(4, settings[name].GetProperty("full_passes").GetInt32()); // 2 prompts x 2 blocks
                Assert.Equal(12, settings[name].GetProperty("window_passes").GetInt32());
            }
            var both = settings["cache dual + threshold 0.9"];
            Assert.Equal(4, both.GetProperty("full_passes").GetInt32());
            Assert.Equal(16, both.GetProperty("canvas_tokens").GetInt32());
            // Early exit never changes a text answer, only how many passes it takes to get there.
            foreach (var (plain, early) in new[] { ("vanilla", "early exit"), ("threshold 0.9", "threshold 0.9 + early exit"),
                ("cache dual + threshold 0.9", "cache dual + threshold 0.9 + early exit"), ("cache dual + factor 1", "cache dual + factor 1 + early exit") })
            {
                Assert.Equal(settings[plain].GetProperty("same_answer_as_vanilla").GetInt32(), settings[early].GetProperty("same_answer_as_vanilla").GetInt32());
                Assert.True(settings[early].GetProperty("full_passes").GetInt32() + settings[early].GetProperty("window_passes").GetInt32()
                    <= settings[plain].GetProperty("full_passes").GetInt32() + settings[plain].GetProperty("window_passes").GetInt32(), early);
                Assert.True(settings[early].GetProperty("early_exit").GetBoolean());
            }
            Assert.Equal(1.0, settings["cache dual + factor 1"].GetProperty("factor").GetDouble());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Tokenize_lists_each_token_as_the_tokenizer_spells_it_and_round_trips_unicode()
    {
        const string text = "Héllo wörld 👋🏽 日本語";
        var (exit, stdout, stderr) = await CliTestHost.Run("tokenize", "--text", text);
        Assert.True(exit == 0, stderr);
        var tokenizer = Llada.Tokenization.Tokenizer.FromDirectory(Path.Combine(AppContext.BaseDirectory, "models", "llada-tiny-instruct"));
        int[] expected = tokenizer.Encode(text);
        string[] lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(expected.Length, lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            string[] cells = lines[i].Split('\t');
            Assert.Equal(expected[i], int.Parse(cells[0]));
            Assert.Equal(tokenizer.IdToToken(expected[i]), System.Text.Json.JsonSerializer.Deserialize<string>(cells[1]));
        }
        Assert.Contains("\"\u0120w", stdout); // the byte-level space reads as "Ġ", not as the escape \u0120
        Assert.DoesNotContain("\\u", stdout);

        (exit, stdout, _) = await CliTestHost.Run("detokenize", "--ids", string.Join(",", expected));
        Assert.Equal(0, exit);
        Assert.Equal(text, stdout.TrimEnd('\n', '\r'));
    }
}
