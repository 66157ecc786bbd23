using Llada.Cli.Commands;
using Spectre.Console;

namespace Llada.Tests.Serving;

public sealed class ChatReplTests
{
    private static (ChatRepl Repl, StringWriter Output) Repl(Llada.Serving.TextGenerator g, string? system = null)
    {
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No,
        });
        console.Profile.Width = 400; // one line per message, so the assertions see whole sentences
        return (new ChatRepl(g, g.DefaultOptions(16), system, console, visualize: false), output);
    }

    [Fact]
    public async Task The_repl_answers_keeps_history_and_runs_slash_commands()
    {
        using var g = ServingTestModels.Scripted("Hi there");
        var (repl, output) = Repl(g, "Be brief.");
        var input = new StringReader("hello\n/set steps 8\nagain\n/set block_length 5\n/set bogus 1\n/set cache triple\n/reset\n/frobnicate\n/exit\nnever read\n");
        Assert.Equal(0, await repl.RunAsync(input, installCtrlC: false, TestContext.Current.CancellationToken));
        string text = output.ToString();
        Assert.Equal(2, text.Split("llada> Hi there").Length - 1);
        Assert.Contains("steps 8,", text);
        Assert.Contains("gen_length 16 is not a multiple of block_length 5 (the answer is split into blocks of equal length): use gen_length 15 or 20, or block_length 4 or 8", text);
        Assert.Contains("unknown setting 'bogus'", text);
        Assert.Contains("cache 'triple' is unknown; use none, prefix or dual", text);
        Assert.Contains("history cleared", text);
        Assert.Contains("unknown command", text);
        Assert.Equal(8, repl.Options.Steps);
        Assert.Empty(repl.Session.History);
        Assert.Equal("Be brief.", repl.Session.SystemPrompt);
    }

    [Fact]
    public async Task A_mistyped_set_says_which_setting_wanted_what_and_changes_nothing()
    {
        using var g = ServingTestModels.Scripted("ok");
        var (repl, output) = Repl(g);
        var before = repl.Options;
        await repl.RunAsync(new StringReader("/set steps abc\n/set temperature warm\n/set visualize maybe\n/set steps\n"), installCtrlC: false,
            TestContext.Current.CancellationToken);
        string[] errors = output.ToString().Split('\n').Select(l => l.Trim()).Where(l => l.Contains("error:")).ToArray();
        Assert.Equal(4, errors.Length);
        Assert.EndsWith("error: steps: expected an integer, got 'abc'", errors[0]);
        Assert.EndsWith("error: temperature: expected a number, got 'warm'", errors[1]);
        Assert.EndsWith("error: visualize: expected on or off, got 'maybe'", errors[2]);
        Assert.Contains("error: /set needs a setting and a value, e.g. /set steps 32 (steps, gen_length,", errors[3]);
        Assert.Equal(before, repl.Options);
    }

    [Fact]
    public async Task End_of_input_ends_the_chat_on_a_fresh_line()
    {
        using var g = ServingTestModels.Scripted("ok");
        var (repl, output) = Repl(g);
        Assert.Equal(0, await repl.RunAsync(new StringReader(""), installCtrlC: false, TestContext.Current.CancellationToken));
        Assert.EndsWith("you> " + Environment.NewLine, output.ToString());
    }

    [Fact]
    public async Task Set_gen_length_carries_default_steps_along_but_keeps_steps_the_user_chose()
    {
        using var g = ServingTestModels.Scripted("ok");
        var (repl, output) = Repl(g); // 16 tokens, 16 steps
        await repl.RunAsync(new StringReader("/set gen_length 32\n"), installCtrlC: false, TestContext.Current.CancellationToken);
        Assert.DoesNotContain("error", output.ToString());
        Assert.Equal((32, 32), (repl.Options.GenLength, repl.Options.Steps));
        await repl.RunAsync(new StringReader("/set steps 8\n/set gen_length 16\n"), installCtrlC: false, TestContext.Current.CancellationToken);
        Assert.Equal((16, 8), (repl.Options.GenLength, repl.Options.Steps));
        await repl.RunAsync(new StringReader("/set gen_length 4\n"), installCtrlC: false, TestContext.Current.CancellationToken);
        Assert.Equal((4, 4), (repl.Options.GenLength, repl.Options.Steps)); // 8 steps cannot fill 4 tokens
    }

    [Fact]
    public async Task Set_steps_beyond_one_per_token_is_refused_naming_the_most()
    {
        using var g = ServingTestModels.Scripted("ok");
        var (repl, output) = Repl(g); // 16 tokens, 16 steps
        var before = repl.Options;
        await repl.RunAsync(new StringReader("/set steps 100\n"), installCtrlC: false, TestContext.Current.CancellationToken);
        Assert.Contains("error: steps 100 is more than gen_length 16: a step unmasks at least one token, so 16 steps (one token per step) is the most",
            output.ToString());
        Assert.Equal(before, repl.Options);
    }

    [Fact]
    public async Task Show_names_the_remasking_rule_as_it_was_set()
    {
        using var g = ServingTestModels.Scripted("ok");
        var (repl, output) = Repl(g);
        await repl.RunAsync(new StringReader("/set remasking ar\n/show\n/set remasking random\n/show\n"), installCtrlC: false,
            TestContext.Current.CancellationToken);
        // The console wraps long lines at word boundaries; undo that before reading the settings lines.
        string text = System.Text.RegularExpressions.Regex.Replace(output.ToString(), @"\s+", " ");
        string[] shown = System.Text.RegularExpressions.Regex.Matches(text, @"gen_length \d+, steps.*?visualize o(n|ff)")
            .Select(m => m.Value).ToArray();
        Assert.Equal(4, shown.Length); // each /set echoes the settings, then /show prints them
        Assert.All(shown[..2], l => Assert.Contains("remasking ar,", l));
        Assert.Contains("block_length 1,", shown[1]);
        Assert.All(shown[2..], l => Assert.Contains("remasking random,", l));
    }

    [Fact]
    public async Task The_repl_shows_a_notice_when_history_is_trimmed()
    {
        int userTurn = ByteTokenizer.Tokenizer().EncodeChat([new("user", "q1")]).Length - 1;
        int max = 1 + (userTurn + 3) + userTurn + 16 + 2; // one old exchange fits, two do not
        using var g = ServingTestModels.Scripted("ok", maxSequenceLength: max);
        var (repl, output) = Repl(g);
        await repl.RunAsync(new StringReader("q1\nq2\nq3\n"), installCtrlC: false, TestContext.Current.CancellationToken);
        Assert.Contains("(history trimmed: dropped the oldest exchange", output.ToString());
        Assert.Equal(["q2", "q3"], repl.Session.History.Select(h => h.User));
    }
}

public sealed class ChatCliTests
{
    [Theory]
    [InlineData("chat", "/reset")]
    [InlineData("serve", "/v1/chat/completions")]
    public async Task Chat_and_serve_are_listed_with_help(string command, string expected)
    {
        var (exit, stdout, _) = await Llada.Tests.Cli.CliTestHost.Run(command, "--help");
        Assert.Equal(0, exit);
        Assert.Contains(expected, stdout);
        Assert.Contains("--temperature", stdout); // the shared sampling options
    }

    [Fact]
    public async Task Chat_without_a_tokenizer_is_a_clear_error()
    {
        using var host = new Llada.Tests.Cli.CliTestHost();
        var (exit, _, stderr) = await Llada.Tests.Cli.CliTestHost.Run("chat", "--model", host.ModelDir, "--no-visualize");
        Assert.Equal(1, exit);
        Assert.Contains("has no tokenizer.json; chat needs text", stderr);
    }
}
