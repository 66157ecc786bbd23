using Llada.Cli.Commands;
using Llada.Tests.Model;
using Spectre.Console;

namespace Llada.Tests.Cli;

/// <summary>What a new user trips over: mistyped options, output paths that would fail only at the end, pipes.</summary>
public sealed class CliUsabilityTests(CliTestHost host) : IClassFixture<CliTestHost>
{
    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [Theory]
    [InlineData("'abc'", "generate", "--gen-length", "abc")]
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
