using System.CommandLine;

namespace Llada.Cli.Commands;

/// <summary>Every `llada` subcommand, in the order `--help` lists them.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All()
    {
        foreach (var command in TrainCommands.All()) yield return command;
    }
}
