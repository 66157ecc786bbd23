using System.CommandLine;

namespace Llada.Cli;

/// <summary>
/// Wraps a command body with the CLI's error policy: a failure is one clear line on stderr and a non-zero exit
/// code; --verbose adds the stack trace. Ctrl-C cancels the token the body receives (exit code 130).
/// </summary>
public static class CliAction
{
    /// <summary>Exit code for a failure the user can fix (bad input, missing file).</summary>
    public const int Failure = 1;
    /// <summary>Exit code after Ctrl-C.</summary>
    public const int Cancelled = 130;

    /// <summary>Sets <paramref name="body"/> as the action of <paramref name="command"/>.</summary>
    public static void Set(Command command, Func<ParseResult, CommandContext, CancellationToken, Task<int>> body)
    {
        command.SetAction(async (parse, token) =>
        {
            var ctx = new CommandContext(parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error);
            try
            {
                return await body(parse, ctx, token);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                ctx.Error.WriteLine("cancelled.");
                return Cancelled;
            }
            catch (Exception ex)
            {
                bool verbose = parse.GetValue(LladaCli.Verbose);
                ctx.Error.WriteLine(verbose ? $"error: {ex}" : $"error: {Describe(ex)}");
                if (!verbose && IsInternal(ex))
                    ctx.Error.WriteLine("(this looks like a bug in llada; rerun with --verbose for details and report it)");
                return Failure;
            }
        });
    }

    private static string Describe(Exception ex)
    {
        var message = ex.Message;
        for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException)
            if (!message.Contains(inner.Message, StringComparison.Ordinal)) message += $" ({inner.Message})";
        return message;
    }

    private static bool IsInternal(Exception ex) =>
        ex is NullReferenceException or IndexOutOfRangeException or InvalidCastException or AccessViolationException
            or DivideByZeroException;
}

/// <summary>Where a command writes: stdout for results, stderr for progress and errors.</summary>
public sealed record CommandContext(TextWriter Output, TextWriter Error);
