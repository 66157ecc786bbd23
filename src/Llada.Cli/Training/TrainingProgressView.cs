using System.Diagnostics;
using System.Globalization;
using Llada.Reporting;
using Llada.Training.Runs;
using Spectre.Console;

namespace Llada.Cli.Training;

/// <summary>
/// Shows a run's progress on stderr: a live Spectre.Console progress bar (step, loss, learning rate, tokens/s, ETA)
/// when stderr is an interactive terminal, otherwise plain lines at most every few seconds (CI logs stay short).
/// Evaluations and checkpoints are always printed as lines.
/// </summary>
internal sealed class TrainingProgressView
{
    private readonly TextWriter _error;
    private readonly bool _live;
    private readonly TimeSpan _plainInterval;

    /// <summary>Creates the view; <paramref name="live"/> null decides from whether stderr is a terminal.</summary>
    public TrainingProgressView(TextWriter error, bool? live = null, TimeSpan? plainInterval = null)
    {
        _error = error;
        _live = live ?? (ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive);
        _plainInterval = plainInterval ?? TimeSpan.FromSeconds(10);
    }

    /// <summary>Runs <paramref name="train"/>, which reports through the progress it is given.</summary>
    public T Run<T>(string title, Func<IProgress<RunEvent>, T> train)
    {
        if (!_live) return train(new PlainProgress(_error, _plainInterval));
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(_error) });
        return console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), autoStart: true);
                return train(new LiveProgress(console, task));
            });
    }

    /// <summary>"step 120/2000  loss 5.1234  lr 3.00e-04  1,234 tok/s".</summary>
    internal static string StepLine(RunStepDone e) => string.Create(CultureInfo.InvariantCulture,
        $"step {e.Step}/{e.TotalSteps}  loss {e.Metrics.Loss:F4}  lr {e.Metrics.LearningRate:0.00e+00}  {e.AverageTokensPerSecond:N0} tok/s");

    internal static string EvalLine(RunEvaluated e) => e.Result.Accuracy is { } accuracy
        ? string.Create(CultureInfo.InvariantCulture,
            $"eval @ step {e.Step}: held-out DPO loss {e.Result.Loss:F4}, preference accuracy {accuracy:P1} (ELBO(chosen) > ELBO(rejected))")
        : e.Result.IsBound
        ? string.Create(CultureInfo.InvariantCulture,
            $"eval @ step {e.Step}: held-out loss {e.Result.Loss:F4} nats/token (ELBO bound), {e.Result.BitsPerToken:F3} bits/token, ELBO perplexity <= {e.Result.Perplexity:F2}")
        : string.Create(CultureInfo.InvariantCulture,
            $"eval @ step {e.Step}: held-out NLL {e.Result.Loss:F4} nats/token, {e.Result.BitsPerToken:F3} bits/token, perplexity {e.Result.Perplexity:F2}");

    internal static string Describe(RunEvent e) => e switch
    {
        RunStarted s => string.Create(CultureInfo.InvariantCulture,
            $"{(s.Resumed ? $"resuming at step {s.Step}" : "starting")}: {s.ParameterCount:N0} parameters, {s.TokensPerStep:N0} tokens per step, {Quantity.Of(s.TotalSteps, "step")}"),
        RunEvaluated v => EvalLine(v),
        RunCheckpointed c => $"checkpoint @ step {c.Step} -> {c.Directory}",
        RunStepDone d => StepLine(d),
        _ => e.ToString(),
    };

    private static string Eta(RunStepDone e, long firstStep)
    {
        long done = e.Step - firstStep;
        if (done <= 0) return "?";
        var left = TimeSpan.FromSeconds(e.Elapsed.TotalSeconds / done * (e.TotalSteps - e.Step));
        return left.TotalHours >= 1 ? $"{(int)left.TotalHours}h{left.Minutes:00}m" : $"{left.Minutes}m{left.Seconds:00}s";
    }

    private sealed class PlainProgress(TextWriter error, TimeSpan interval) : IProgress<RunEvent>
    {
        private readonly Stopwatch _sinceLine = Stopwatch.StartNew();
        private long _firstStep = -1;
        private bool _any;

        public void Report(RunEvent value)
        {
            if (value is RunStarted s) _firstStep = s.Step;
            if (value is RunStepDone d)
            {
                // The first step, then at most one line per interval, and always the last step.
                if (_any && _sinceLine.Elapsed < interval && d.Step != d.TotalSteps) return;
                _any = true;
                _sinceLine.Restart();
                error.WriteLine($"{StepLine(d)}  ETA {Eta(d, _firstStep)}");
                return;
            }
            error.WriteLine(Describe(value));
        }
    }

    private sealed class LiveProgress(IAnsiConsole console, ProgressTask task) : IProgress<RunEvent>
    {
        private long _firstStep;

        public void Report(RunEvent value)
        {
            switch (value)
            {
                case RunStarted s:
                    _firstStep = s.Step;
                    task.MaxValue = s.TotalSteps;
                    task.Value = s.Step;
                    console.MarkupLine(Markup.Escape(Describe(s)));
                    break;
                case RunStepDone d:
                    task.Value = d.Step;
                    task.Description = Markup.Escape($"{StepLine(d)}  ETA {Eta(d, _firstStep)}");
                    break;
                default:
                    console.MarkupLine(Markup.Escape(Describe(value)));
                    break;
            }
        }
    }
}
