using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Text.RegularExpressions;
using Llada.Cli.Commands;

namespace Llada.Cli;

/// <summary>The `llada` command line: builds the command tree and runs it with one error policy.</summary>
public static class LladaCli
{
    /// <summary>--verbose: show stack traces on errors.</summary>
    public static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "Show full exception details (stack traces) when something fails.",
        Recursive = true,
    };

    /// <summary>Builds the root command with every subcommand.</summary>
    public static RootCommand CreateRoot()
    {
        var root = new RootCommand(
            "Llada: LLaDA large language diffusion models for .NET — run, score, train and serve masked diffusion LMs on a CPU.");
        root.Options.Add(Verbose);
        foreach (var command in CommandCatalog.All()) root.Subcommands.Add(command);
        return root;
    }

    /// <summary>Parses and runs; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        var root = CreateRoot();
        // Ctrl-C cancels the action's token; training then finishes its step and saves a checkpoint, which takes
        // longer than System.CommandLine's default 2 s grace period before it gives up on the action.
        var config = new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromMinutes(2) };
        if (output is not null) config.Output = output;
        if (error is not null) config.Error = error;
        var parse = root.Parse(args);
        if (parse.Action is ParseErrorAction) return ReportParseErrors(parse, error ?? Console.Error);
        // The chat REPL handles Ctrl-C itself: it cancels one answer, not the process.
        if (parse.CommandResult.Command.Name == ChatCommand.Name) config.ProcessTerminationTimeout = null;
        return await parse.InvokeAsync(config);
    }

    private static readonly Regex ExpectedType = new(@" as expected type 'System\.(?:Nullable`1\[System\.)?(\w+)\]?'\.?$", RegexOptions.CultureInvariant);

    /// <summary>"... as expected type 'System.Nullable`1[System.Int32]'." reads "...: expected an integer." on a command line.</summary>
    internal static string Plain(string message) => ExpectedType.Replace(message, m => m.Groups[1].Value switch
    {
        "Int32" or "Int64" => ": expected an integer.",
        "UInt32" or "UInt64" => ": expected a non-negative integer.",
        "Double" or "Single" or "Decimal" => ": expected a number.",
        "Boolean" => ": expected true or false.",
        _ => m.Value,
    });

    /// <summary>
    /// A mistyped command line gets the same treatment as any other bad input: one "error:" line per problem and a
    /// pointer to --help, instead of System.CommandLine's default of printing the whole help text after the error.
    /// </summary>
    private static int ReportParseErrors(ParseResult parse, TextWriter error)
    {
        foreach (var e in parse.Errors) error.WriteLine($"error: {Plain(e.Message)}");
        var names = new List<string>();
        for (var c = parse.CommandResult; c.Parent is CommandResult parent; c = parent) names.Insert(0, c.Command.Name);
        error.WriteLine($"(see 'llada {string.Join(' ', names.Append("--help"))}')");
        return CliAction.Failure;
    }
}
