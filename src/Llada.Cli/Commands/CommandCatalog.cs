using System.CommandLine;

namespace Llada.Cli.Commands;

/// <summary>Every `llada` subcommand, in the order `--help` lists them.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All()
    {
        yield return GenerateCommand.Create();
        yield return ChatCommand.Create();
        yield return ServeCommand.Create();
        yield return ScoreCommand.Create();
        yield return EvalCommand.Create();
        yield return InfoCommand.Create();
        yield return TokenizeCommands.Tokenize();
        yield return TokenizeCommands.Detokenize();
        yield return BenchCommand.Create();
        foreach (var command in WeightsCommands.All()) yield return command;
        yield return PlotCommand.Create();
        foreach (var command in TrainCommands.All()) yield return command;
    }
}
