using Llada.Cli.Commands;
using Llada.Tests.Model;
using Llada.Tests.Training.Runs;
using Spectre.Console;

namespace Llada.Tests.Cli;

/// <summary>What a new user trips over: mistyped options, output paths that would fail only at the end, pipes.</summary>
public sealed class CliUsabilityTests(CliTestHost host) : IClassFixture<CliTestHost>
{
    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [Theory]
    [InlineData("Cannot parse argument 'abc' for option '--gen-length': expected an integer.", "generate", "--gen-length", "abc")]
    [InlineData("Cannot parse argument 'warm' for option '--temperature': expected a number.", "generate", "--temperature", "warm")]
    [InlineData("Cannot parse argument '1e3' for option '--limit': expected an integer.", "eval", "--limit", "1e3")]
    [InlineData("Cannot parse argument '-1' for option '--seed': expected a non-negative integer.", "vrpo-variance", "--model", "m", "--data", "d", "--seed", "-1")]
    [InlineData("--frobnicate", "info", "--frobnicate")]
    public async Task A_parse_error_is_an_error_line_and_a_pointer_to_help_not_the_whole_help_text(string expected, params string[] args)
    {
        var (exit, stdout, stderr) = await CliTestHost.Run(args);
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        var lines = Lines(stderr);
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.Equal($"(see 'llada {args[0]} --help')", lines[1]);
    }

    [Theory]
    [InlineData("--out", "report.json")]
    [InlineData("--markdown", "report.md")]
    public async Task Eval_refuses_a_report_path_that_is_a_directory_before_evaluating(string option, string example)
    {
        using var dir = new TempDir();
        string tasks = dir.File("t.jsonl");
        File.WriteAllText(tasks, "{\"eval_task\":\"t\",\"type\":\"perplexity\"}\n{\"text\":\"1 2 3\"}\n");
        var (exit, stdout, stderr) = await CliTestHost.Run("eval", "--model", host.ModelDir, "--tasks", tasks, option, dir.Path);
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        var line = Assert.Single(Lines(stderr));
        Assert.Equal($"error: {option} '{dir.Path}' is a directory; give a file name, e.g. {Path.Combine(dir.Path, example)}", line);
        Assert.False(File.Exists(dir.Path + ".tmp"));
    }

    [Fact]
    public async Task Eval_refuses_an_existing_report_unless_overwrite_as_quantize_synth_and_plot_do()
    {
        using var dir = new TempDir();
        string tasks = dir.File("t.jsonl"), report = dir.File("r.json"), summary = dir.File("r.md");
        File.WriteAllText(tasks, "{\"eval_task\":\"t\",\"type\":\"perplexity\"}\n{\"text\":\"1 2 3\"}\n");
        File.WriteAllText(report, "earlier report");
        File.WriteAllText(summary, "earlier summary");
        string[] args = ["eval", "--tasks", tasks, "--mc-num", "2", "--no-chat-template"]; // the embedded model: tasks are text

        var (exit, stdout, stderr) = await CliTestHost.Run([.. args, "--out", report]);
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        Assert.Equal($"error: --out '{report}' already exists (use --overwrite to replace it)", Assert.Single(Lines(stderr)));
        (exit, _, stderr) = await CliTestHost.Run([.. args, "--markdown", summary]);
        Assert.Equal(1, exit);
        Assert.Equal($"error: --markdown '{summary}' already exists (use --overwrite to replace it)", Assert.Single(Lines(stderr)));
        Assert.Equal("earlier report", File.ReadAllText(report));
        Assert.Equal("earlier summary", File.ReadAllText(summary));

        (exit, stdout, stderr) = await CliTestHost.Run([.. args, "--out", report, "--markdown", summary, "--overwrite"]);
        Assert.True(exit == 0, stderr);
        Assert.Equal("t", CliTestHost.Json(File.ReadAllText(report)).GetProperty("tasks")[0].GetProperty("name").GetString());
        Assert.Equal(stdout, File.ReadAllText(summary));
    }

    [Theory]
    [InlineData("eval", "r.json")]
    [InlineData("eval-markdown", "r.md")]
    [InlineData("quantize", "q8")]
    [InlineData("synth", "m")]
    [InlineData("plot", "c.svg")]
    [InlineData("train", "run")]
    [InlineData("sft", "run")]
    [InlineData("tokenizer", "tok")]
    public async Task An_out_below_a_file_fails_first_naming_the_option_and_the_file(string command, string leaf)
    {
        using var dir = new TempDir();
        string blocker = dir.File("blocker");
        File.WriteAllText(blocker, "x");
        string target = Path.Combine(blocker, leaf), text = dir.File("t.txt"), tasks = dir.File("t.jsonl"), csv = dir.File("c.csv");
        File.WriteAllText(text, "one two three four five six seven eight nine ten\n");
        File.WriteAllText(tasks, "{\"eval_task\":\"t\",\"type\":\"perplexity\"}\n{\"text\":\"1 2 3\"}\n");
        File.WriteAllText(csv, "a,b\n1,2\n2,3\n");
        string option = command == "eval-markdown" ? "--markdown" : "--out";
        string[] args = command switch
        {
            "eval" or "eval-markdown" => ["eval", "--model", host.ModelDir, "--tasks", tasks, option, target],
            "quantize" => ["quantize", "--model", host.ModelDir, "--type", "q8", "--out", target],
            "synth" => ["synth", "--shape", "32,1,4,48,64", "--out", target],
            "plot" => ["plot", "--csv", csv, "--x", "a", "--y", "b", "--out", target],
            "train" => ["train", "--data", text, "--tokenizer", SftRunTests.HandmadeTokenizer, "--out", target],
            "sft" => ["sft", "--model", host.ModelDir, "--data", tasks, "--out", target],
            _ => ["tokenizer", "train", "--input", text, "--vocab-size", "300", "--out", target],
        };
        var (exit, stdout, stderr) = await CliTestHost.Run(args);
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        // One line, before any work (no progress lines), naming the option, the path and what is in the way.
        Assert.Equal($"error: {option} '{target}': '{blocker}' is a file, not a folder", Assert.Single(Lines(stderr)));
        Assert.Equal("x", File.ReadAllText(blocker));
        Assert.Equal(["blocker", "c.csv", "t.jsonl", "t.txt"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task Quantize_checks_out_before_converting_anything()
    {
        using var dir = new TempDir();
        string file = dir.File("taken.svg");
        File.WriteAllText(file, "x");
        async Task Expect(string expected, string outDir, params string[] extra)
        {
            var (exit, stdout, stderr) = await CliTestHost.Run(["quantize", "--model", host.ModelDir, "--type", "q8", "--out", outDir, .. extra]);
            Assert.Equal(1, exit);
            Assert.Equal("", stdout);
            var line = Assert.Single(Lines(stderr)); // no per-tensor progress lines: nothing was converted
            Assert.Equal($"error: {expected}", line);
        }
        await Expect($"--out '{file}' is a file; give a directory to create", file);
        await Expect($"--out '{dir.Path}' already exists (use --overwrite to replace it)", dir.Path);
        await Expect($"--out '{host.ModelDir}/' is the --model directory; write the copy somewhere else", host.ModelDir + "/", "--overwrite");
        Assert.Equal("x", File.ReadAllText(file));
    }

    [Theory]
    [InlineData("llada-9b", "error: --shape 'llada-9b': expected llada-8b, llada-moe-7b-a1b or five positive integers d_model,n_layers,n_heads,mlp,vocab")]
    [InlineData("64,1,3,128,300", "error: --shape: d_model 64 is not divisible by n_heads 3")]
    public async Task Synth_names_its_own_option_in_shape_errors(string shape, string expected)
    {
        using var dir = new TempDir();
        var (exit, _, stderr) = await CliTestHost.Run("synth", "--shape", shape, "--out", dir.File("m"));
        Assert.Equal(1, exit);
        Assert.Equal(expected, Assert.Single(Lines(stderr)));
    }

    [Theory]
    [InlineData("--steps 1000 is more than --gen-length 64: a step unmasks at least one token, so 64 steps (one token per step) is the most",
        "--steps", "1000")]
    [InlineData("--gen-length 40 is not a multiple of --block-length 32 (the answer is split into blocks of equal length): " +
        "use --gen-length 32 or 64, or --block-length 20 or 40 (--block-length 32 is the built-in default)", "--gen-length", "40")]
    [InlineData("--gen-length 40 is not a multiple of --block-length 16 (the answer is split into blocks of equal length): " +
        "use --gen-length 32 or 48, or --block-length 10 or 20", "--gen-length", "40", "--block-length", "16")]
    [InlineData("--steps 6 is not a multiple of the number of blocks, 4 (--gen-length 16 / --block-length 4; each block gets the same steps): " +
        "use --steps 4 or 8", "--gen-length", "16", "--block-length", "4", "--steps", "6")]
    [InlineData("--threshold must be in (0, 1] (got 1.5)", "--threshold", "1.5")]
    [InlineData("--cfg-scale must be finite and >= 0 (got -1)", "--cfg-scale", "-1")]
    [InlineData("--threshold and --factor compare model confidences; they need --remasking low_confidence", "--factor", "1", "--remasking", "random")]
    [InlineData("--remasking ar takes one step per token (--gen-length 64); drop --steps", "--remasking", "ar", "--steps", "8")]
    public async Task Generate_names_the_options_at_fault_and_the_nearest_valid_values(string expected, params string[] options)
    {
        var (exit, stdout, stderr) = await CliTestHost.Run(["generate", "--model", host.ModelDir, "--prompt-ids", "1,2,3", .. options]);
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        Assert.Equal($"error: {expected}", Assert.Single(Lines(stderr)));
    }

    [Theory]
    [InlineData("--type", "quantize", "--type", "q4")]
    [InlineData("--dtype", "synth", "--shape", "64,1,2,128,300", "--dtype", "q4")]
    [InlineData("--dtype", "bench", "--synthetic", "64,1,2,128,300", "--dtype", "q4")]
    public async Task An_unknown_weight_type_names_the_option_and_the_valid_types(string option, params string[] args)
    {
        using var dir = new TempDir();
        string[] full = args[0] == "bench" ? args : [.. args, "--out", dir.File("x")];
        if (args[0] == "quantize") full = [.. full, "--model", host.ModelDir];
        var (exit, stdout, stderr) = await CliTestHost.Run(full);
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        Assert.Equal($"error: {option} 'q4' is unknown; use f32, bf16, f16 or q8 (Q8_0, the only quantised type)", Assert.Single(Lines(stderr)));
        Assert.False(Path.Exists(dir.File("x")));
    }

    [Fact]
    public async Task Generate_visualize_into_a_redirected_output_prints_only_the_answer_and_says_why()
    {
        string[] args = ["generate", "--model", host.ModelDir, "--prompt-ids", "1,2,3", "--gen-length", "8", "--block-length", "4"];
        var plain = await CliTestHost.Run(args);
        var (exit, stdout, stderr) = await CliTestHost.Run([.. args, "--visualize"]);
        Assert.Equal(0, exit);
        Assert.Equal(plain.Out, stdout);
        Assert.DoesNotContain('\u001b', stdout);
        Assert.Contains("--visualize draws only on a terminal", stderr);
    }

    [Theory]
    [InlineData(100, 64, "error: --prompt-ids has 100 tokens; with --gen-length 64 that is 164 positions, more than the model's context of 128 " +
                         "(max_sequence_length): shorten the prompt to at most 64 tokens or lower --gen-length to 28")]
    [InlineData(60, 96, "error: --prompt-ids has 60 tokens; with --gen-length 96 that is 156 positions, more than the model's context of 128 " +
                        "(max_sequence_length): shorten the prompt to at most 32 tokens or lower --gen-length to 64")] // a multiple of block 32
    [InlineData(128, 64, "error: --prompt-ids has 128 tokens, more than the model's context of 128 tokens (max_sequence_length); shorten the prompt")]
    public async Task A_prompt_too_long_for_the_context_says_which_option_to_change_and_by_how_much(int promptLength, int genLength, string expected)
    {
        string ids = string.Join(",", Enumerable.Range(0, promptLength).Select(i => i % 60));
        var (exit, stdout, stderr) = await CliTestHost.Run("generate", "--model", host.ModelDir, "--prompt-ids", ids, "--gen-length", $"{genLength}");
        Assert.Equal(1, exit);
        Assert.Equal("", stdout);
        Assert.Equal(expected, Assert.Single(Lines(stderr)));
        if (promptLength >= 128) return;
        // The --gen-length it suggests fits, with the default block length.
        string suggested = expected[(expected.LastIndexOf(' ') + 1)..];
        (exit, _, stderr) = await CliTestHost.Run("generate", "--model", host.ModelDir, "--prompt-ids", ids, "--gen-length", suggested);
        Assert.True(exit == 0, stderr);
    }

    [Fact]
    public void An_eval_task_cancelled_before_its_first_item_has_a_tidy_summary_line()
    {
        var cancelled = new Llada.Evaluation.TaskResult("verse", Llada.Evaluation.EvalTaskType.Generate, "verse.jsonl", 20, [], Complete: false, Bound: false, 3.9);
        Assert.Equal("verse: 0/20 items (cancelled), 3.9 s", EvalCommand.EvalProgressView.Summary(cancelled));
    }

    [Theory]
    [InlineData("generate")]
    [InlineData("chat")]
    [InlineData("serve")]
    [InlineData("score")]
    [InlineData("eval")]
    [InlineData("bench")]
    [InlineData("train")]
    [InlineData("sft")]
    [InlineData("prefer")]
    [InlineData("vrpo-variance")]
    public async Task Shared_options_read_the_same_in_every_command(string command)
    {
        var (exit, help, _) = await CliTestHost.Run(command, "--help");
        Assert.Equal(0, exit);
        var lines = Lines(help);
        Assert.Contains(lines, l => l.StartsWith("--threads <threads>") && l.EndsWith("Threads for the numeric kernels (default: all cores)."));
        // -n is the answer length wherever it exists, never another count
        Assert.All(lines.Where(l => l.StartsWith("-n,")), l => Assert.StartsWith("-n, --gen-length", l));
        if (command is "sft" or "prefer") Assert.DoesNotContain("initial weights", help); // they start from --model
    }

    [Fact]
    public void The_chat_console_writes_no_escape_codes_into_a_pipe_even_on_a_colour_terminal_type()
    {
        string? term = Environment.GetEnvironmentVariable("TERM");
        try
        {
            Environment.SetEnvironmentVariable("TERM", "xterm-256color"); // what a terminal session exports, redirected or not
            var output = new StringWriter();
            var console = ChatCommand.ConsoleFor(output, terminal: false);
            console.MarkupLine("[green]you>[/] [blue]llada>[/] 7");
            Assert.Equal("you> llada> 7", output.ToString().TrimEnd());
        }
        finally
        {
            Environment.SetEnvironmentVariable("TERM", term);
        }
    }
}
