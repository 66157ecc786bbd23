using System.CommandLine;
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
        // The chat REPL handles Ctrl-C itself: it cancels one answer, not the process.
        if (parse.CommandResult.Command.Name == ChatCommand.Name) config.ProcessTerminationTimeout = null;
        return await parse.InvokeAsync(config);
    }
}
