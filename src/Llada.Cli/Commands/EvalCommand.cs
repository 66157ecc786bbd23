using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Llada.Diffusion;
using Llada.Evaluation;
using Llada.Model;
using Llada.Reporting;
using Spectre.Console;

namespace Llada.Cli.Commands;

/// <summary>`llada eval`: run task files on a model and write JSON / Markdown reports; or compare saved reports.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = ModelSource.ModelOption();
        var tasks = new Option<string[]>("--tasks", "-t")
        {
            Description = "Task files (JSONL; see docs/evaluation.md), e.g. data/eval/*.jsonl.", AllowMultipleArgumentsPerToken = true,
        };
        var compare = new Option<string[]>("--compare")
        {
            Description = "Instead of evaluating, print the shared tasks' metrics of these JSON reports side by side.",
            AllowMultipleArgumentsPerToken = true,
        };
        var limit = new Option<int?>("--limit") { Description = "Evaluate only the first N items of each task." };
        var mcNum = new Option<int>("--mc-num") { Description = "Monte Carlo samples per likelihood bound (diffusion models).", DefaultValueFactory = _ => 128 };
        var batchSize = new Option<int>("--batch-size")
        {
            Description = "Rows per forward pass: Monte Carlo samples of a likelihood, or prompts generated together.", DefaultValueFactory = _ => 16,
        };
        var estimator = new Option<string>("--estimator")
        {
            Description = "Mask draws of the diffusion likelihood bounds: eq6 (default: l ~ U{1..L} masks, weight L/l, l's stratified within " +
                "a batch), eq6-unstratified (each l drawn independently), or mask-rate (t ~ U(0,1), each token masked with probability t, " +
                "weight 1/t: the Eq. 3 form, same expectation, much higher variance).",
            DefaultValueFactory = _ => "eq6",
        };
        var kind = new Option<string>("--model-kind")
        {
            Description = "auto (default: training_state.json's objective, else diffusion), diffusion, or ar (autoregressive baseline).",
            DefaultValueFactory = _ => "auto",
        };
        var noTemplate = new Option<bool>("--no-chat-template") { Description = "Encode prompts as plain text (for base models)." };
        var maxContext = new Option<int?>("--max-context") { Description = "Longest window (tokens) of a perplexity task; default: the model's limit." };
        var output = new Option<string?>("--out", "-o")
        {
            Description = "Write the JSON report (settings, metrics, per-item results) here. Must not exist unless --overwrite.",
        };
        var markdown = new Option<string?>("--markdown") { Description = "Write a Markdown summary here. Must not exist unless --overwrite." };
        var overwrite = ModelSource.OverwriteOption();
        overwrite.Description = "Replace --out and --markdown if they exist.";
        var threads = ModelSource.ThreadsOption();
        var compute = ModelSource.ComputeOption();
        var sampling = new SamplingOptions();
        var command = new Command("eval",
            "Evaluate a model on task files: perplexity (ELBO bound for diffusion models, exact NLL for AR), multiple choice " +
            "(Eq. 6 likelihood) and generation (exact / contains / regex match). Prints a summary table; Ctrl-C stops and " +
            "writes what finished, marked incomplete.\n" +
            "Examples:\n  llada eval --model DIR --tasks data/eval/arith.jsonl data/eval/arith-choice.jsonl --limit 50 --out arith.json\n" +
            "  llada eval --model DIR --tasks data/eval/corpus-valid.jsonl --mc-num 32 --markdown ppl.md\n" +
            "  llada eval --compare mdm.json ar.json")
        {
            model, tasks, compare, limit, mcNum, batchSize, estimator, kind, noTemplate, maxContext, output, markdown, overwrite, threads, compute,
        };
        sampling.AddTo(command);
        CliAction.Set(command, (parse, ctx, token) =>
        {
            string[] reports = parse.GetValue(compare) ?? [];
            string[] files = parse.GetValue(tasks) ?? [];
            if (reports.Length > 0)
            {
                if (files.Length > 0) throw new ArgumentException("give either --tasks (evaluate) or --compare (compare reports), not both");
                ctx.Output.Write(EvalReport.CompareTable(reports.Select(EvalReport.ReadSummary).ToList()));
                return Task.FromResult(0);
            }
            if (files.Length == 0) throw new ArgumentException("give --tasks FILE... to evaluate, or --compare a.json b.json to compare reports");
            int? lim = parse.GetValue(limit);
            if (lim is < 1) throw new ArgumentException($"--limit must be at least 1 (got {lim})");
            if (parse.GetValue(mcNum) is var mc and < 1) throw new ArgumentException($"--mc-num must be at least 1 (got {mc})");
            if (parse.GetValue(batchSize) is var bs and < 1) throw new ArgumentException($"--batch-size must be at least 1 (got {bs})");
            if (parse.GetValue(maxContext) is { } context and < 2) throw new ArgumentException($"--max-context must be at least 2 tokens (got {context})");
            ModelSource.ApplyThreads(parse.GetValue(threads));
            var arithmetic = ModelSource.ParseCompute(parse.GetValue(compute));
            // Report paths are checked up front: a long evaluation must not end in "Is a directory" or "Permission denied".
            OutputPaths.CheckFile(parse.GetValue(output), "--out", parse.GetValue(overwrite), "report.json");
            OutputPaths.CheckFile(parse.GetValue(markdown), "--markdown", parse.GetValue(overwrite), "report.md");
            ModelKind? modelKind = parse.GetValue(kind) switch
            {
                "auto" or null => null,
                "diffusion" or "mdm" => ModelKind.Diffusion,
                "ar" or "autoregressive" => ModelKind.Autoregressive,
                var other => throw new ArgumentException($"--model-kind '{other}' is unknown; use auto, diffusion or ar"),
            };
            // Parse every task file before loading the model, so a typo fails fast.
            var loadedTasks = files.Select(f => TaskFile.Load(f).Take(lim)).ToList();
            var duplicate = loadedTasks.GroupBy(t => t.Name).FirstOrDefault(g => g.Count() > 1);
            if (duplicate is not null)
                throw new ArgumentException($"two task files are both named '{duplicate.Key}' ({string.Join(", ", duplicate.Select(t => t.Path))}); rename one (header \"eval_task\")");

            string dir = ModelSource.Resolve(parse.GetValue(model));
            var defaults = SamplingDefaults.FromDirectory(dir);
            using var evaluated = EvaluatedModel.Load(dir, modelKind);
            ModelSource.ApplyCompute(evaluated.Predictor, arithmetic, ctx.Error);
            // Tasks with their own gen_length replace the lengths, so the command line alone is checked per task, not here.
            var baseGeneration = sampling.Build(parse, defaults, evaluated.EosTokenId, evaluated.EndOfTurnTokenId, validate: false);
            bool genLengthGiven = parse.GetValue(sampling.GenLength) is not null;
            int? blockGiven = parse.GetValue(sampling.BlockLength), stepsGiven = parse.GetValue(sampling.Steps);
            GenerationOptions GenerationFor(EvalTask task)
            {
                if (task.GenLength is not { } g || genLengthGiven) return baseGeneration;
                // A task's canvas is fixed by its file: a given block longer than it is one block, the model's default
                // block is fitted to divide it.
                int block = blockGiven is { } b ? Math.Min(b, g) : defaults.FittedBlockLength(g);
                var options = baseGeneration with
                {
                    GenLength = g,
                    BlockLength = block,
                    Steps = stepsGiven ?? defaults.StepsFor(g, block >= 1 && g % block == 0 ? g / block : 0),
                };
                return parse.GetValue(sampling.Remasking) == "ar" ? options.AsAutoregressive() : options;
            }
            // The AR baseline decodes left to right and uses only the length and temperature of these settings.
            if (evaluated.Kind == ModelKind.Diffusion) CheckGenerationSettings(loadedTasks, GenerationFor);
            string estimatorName = parse.GetValue(estimator)!;
            var (estimatorKind, stratified) = estimatorName switch
            {
                "eq6" => (LikelihoodEstimator.MaskCount, true),
                "eq6-unstratified" => (LikelihoodEstimator.MaskCount, false),
                "mask-rate" => (LikelihoodEstimator.MaskRate, false),
                _ => throw new ArgumentException($"--estimator must be eq6, eq6-unstratified or mask-rate, not '{estimatorName}'"),
            };
            var evalOptions = new EvaluationOptions
            {
                Estimator = estimatorKind, Stratified = stratified,
                McNum = parse.GetValue(mcNum), BatchSize = parse.GetValue(batchSize), CfgScale = baseGeneration.CfgScale,
                Seed = parse.GetValue(sampling.Seed), ChatTemplate = !parse.GetValue(noTemplate), Generation = GenerationFor,
                MaxContext = parse.GetValue(maxContext),
            };
            var evaluator = new Evaluator(evaluated, evalOptions);

            var results = new List<TaskResult>();
            var view = new EvalProgressView(ctx.Error);
            foreach (var task in loadedTasks)
            {
                var result = view.Run(task, p => evaluator.Run(task, p, token));
                results.Add(result);
                if (!result.Complete) break;
            }
            bool complete = results.Count == loadedTasks.Count && results.All(r => r.Complete);
            var settings = new Dictionary<string, object?>
            {
                ["tasks"] = files, ["limit"] = lim, ["seed"] = evalOptions.Seed, ["mc_num"] = evalOptions.McNum, ["estimator"] = estimatorName,
                ["batch_size"] = evalOptions.BatchSize, ["cfg_scale"] = evalOptions.CfgScale, ["chat_template"] = evalOptions.ChatTemplate,
                ["max_context"] = evalOptions.MaxContext, ["gen_length"] = genLengthGiven ? baseGeneration.GenLength : null,
                ["steps"] = stepsGiven, ["block_length"] = blockGiven,
                ["temperature"] = baseGeneration.Temperature, ["remasking"] = parse.GetValue(sampling.Remasking) ?? SamplingDefaults.RemaskingName(baseGeneration.Remasking),
                ["sampling_defaults"] = defaults.SourcePath ?? "built-in",
                ["threshold"] = baseGeneration.Threshold, ["factor"] = baseGeneration.Factor,
                ["logits_eos_inf"] = baseGeneration.LogitsEosInf, ["confidence_eos_eot_inf"] = baseGeneration.ConfidenceEosEotInf,
                ["early_exit"] = baseGeneration.EarlyExit, ["cache"] = KvCacheModeNames.Name(baseGeneration.Cache),
                ["compute"] = ModelSource.ComputeName(arithmetic),
            };
            foreach (var task in loadedTasks.Where(t => t.Type == EvalTaskType.Generate))
            {
                var generation = GenerationFor(task);
                settings[$"gen_length.{task.Name}"] = generation.GenLength;
                settings[$"block_length.{task.Name}"] = generation.BlockLength;
                settings[$"steps.{task.Name}"] = generation.Steps;
            }
            var report = new EvalReport(evaluated.Name, evaluated.Kind, settings, results, complete);
            if (parse.GetValue(output) is { } jsonPath) WriteAtomically(jsonPath, s => report.WriteJson(s));
            if (parse.GetValue(markdown) is { } mdPath) WriteAtomically(mdPath, s => s.Write(System.Text.Encoding.UTF8.GetBytes(report.ToMarkdown())));
            ctx.Output.Write(report.ToMarkdown());
            if (!complete)
            {
                ctx.Error.WriteLine("cancelled: the report holds the finished items only and is marked \"complete\": false.");
                return Task.FromResult(CliAction.Cancelled);
            }
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>
    /// Checks the sampler settings of every generation task before the first one runs (a bad --block-length or --steps
    /// would otherwise fail only when its task's turn comes), and reports every task at fault in one error.
    /// </summary>
    internal static void CheckGenerationSettings(IEnumerable<EvalTask> tasks, Func<EvalTask, GenerationOptions> generationFor)
    {
        var problems = new List<string>();
        foreach (var task in tasks.Where(t => t.Type == EvalTaskType.Generate))
        {
            try
            {
                var options = generationFor(task);
                options.ValidateSettings(SamplingOptions.OptionName);
                SamplingOptions.CheckStepsAtMostTokens(options, SamplingOptions.OptionName);
            }
            catch (InvalidSettingException ex)
            {
                problems.Add($"task {task.Name} ({task.Path}, gen_length {generationFor(task).GenLength}): {ex.Message}");
            }
        }
        if (problems.Count == 1) throw new ArgumentException($"{problems[0]}; nothing was evaluated");
        if (problems.Count > 1)
            throw new ArgumentException($"{problems.Count} generation tasks cannot run with these settings, so nothing was evaluated:" +
                Environment.NewLine + "  " + string.Join(Environment.NewLine + "  ", problems));
    }

    /// <summary>A report file written atomically (see <see cref="SafetensorsWriter.WriteAtomically"/>), its folder created if needed.</summary>
    private static void WriteAtomically(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        if (Path.GetDirectoryName(full) is { } dir) Directory.CreateDirectory(dir);
        SafetensorsWriter.WriteAtomically(full, write);
    }

    /// <summary>Live Spectre.Console progress when stderr is a terminal, else plain lines at most every few seconds.</summary>
    internal sealed class EvalProgressView(TextWriter error)
    {
        private readonly bool _live = ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive;

        public TaskResult Run(EvalTask task, Func<IProgress<EvalProgress>, TaskResult> run)
        {
            string title = $"{task.Name} ({EvalTask.TypeName(task.Type)})";
            TaskResult result;
            if (_live)
            {
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(error) });
                result = console.Progress().AutoClear(false)
                    .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                        new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx =>
                    {
                        var bar = ctx.AddTask(Markup.Escape(title), maxValue: Math.Max(1, task.Items.Count));
                        return run(new Callback(p =>
                        {
                            bar.Value = p.Done;
                            bar.Description = Markup.Escape($"{title} {Running(p)}");
                        }));
                    });
            }
            else
            {
                var since = Stopwatch.StartNew();
                result = run(new Callback(p =>
                {
                    string running = Running(p);
                    if (since.Elapsed < TimeSpan.FromSeconds(5) || p.Done == p.Total) return;
                    since.Restart();
                    error.WriteLine($"{title}: {p.Done}/{p.Total} {running}");
                }));
            }
            error.WriteLine(Summary(result));
            return result;
        }

        private double _nll;
        private long _tokens;

        private string Running(EvalProgress p)
        {
            if (p.Correct is { } c) return string.Create(CultureInfo.InvariantCulture, $"accuracy {(double)c / p.Done:0.000}");
            if (p.Done == 1) (_nll, _tokens) = (0, 0);
            _nll += p.Last?.Nll ?? 0;
            _tokens += p.Last?.Tokens ?? 0;
            return _tokens == 0 ? "" : string.Create(CultureInfo.InvariantCulture, $"{_nll / _tokens:0.000} nats/token");
        }

        internal static string Summary(TaskResult r)
        {
            string metrics = string.Join(", ", r.Metrics().Select(m =>
                $"{m.Name} {EvalReport.Format(m.Value)}{(m.StandardError is { } se && double.IsFinite(se) ? $" ± {EvalReport.Format(se)}" : "")}"));
            return $"{r.Name}: {r.Count}/{Quantity.Of(r.Total, "item")}{(r.Complete ? "" : " (cancelled)")}, {(metrics.Length > 0 ? metrics + ", " : "")}{r.ElapsedSeconds:0.0} s";
        }

        private sealed class Callback(Action<EvalProgress> report) : IProgress<EvalProgress>
        {
            public void Report(EvalProgress value) => report(value);
        }
    }
}
