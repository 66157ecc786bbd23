using System.CommandLine;
using System.Globalization;
using Llada.Cli.Training;
using Llada.Numerics;
using Llada.Tokenization;
using Llada.Diffusion;
using Llada.Training.Runs;

namespace Llada.Cli.Commands;

/// <summary>`llada train`, `llada sft`, `llada prefer`, `llada vrpo-variance` and `llada tokenizer train`.</summary>
public static class TrainCommands
{
    /// <summary>The training commands, in `--help` order.</summary>
    public static IEnumerable<Command> All() => [Train(), Sft(), Prefer(), VrpoVariance(), Tokenizer()];

    private static Option<string> OutOption(string what) => new("--out", "-o")
    {
        Description = $"Output directory: {what}. Must be new or empty unless --resume.",
        Required = true,
    };

    private static readonly string SaveDTypeHelp =
        "Dtype of model.safetensors: f32 (default, exact) or bf16 (half the size; the exact float32 weights still go into training_state.bin so --resume stays exact).";

    private static Option<string[]> DataOption(string description) => new("--data")
    {
        Description = description, Required = true, AllowMultipleArgumentsPerToken = true, Arity = ArgumentArity.OneOrMore,
    };

    private static Option<string[]> ValidOption(string description) => new("--valid")
    {
        Description = description, AllowMultipleArgumentsPerToken = true, Arity = ArgumentArity.OneOrMore,
    };

    /// <summary>--tokenizer of the commands that continue from a --model (sft, prefer).</summary>
    private static Option<string?> ModelTokenizerOption() =>
        new("--tokenizer") { Description = "Tokenizer directory (default: --model). Its chat template formats the prompts." };

    private static Option<bool> SkipLongOption() =>
        new("--skip-long") { Description = "Leave out pairs longer than seq_len instead of stopping with an error." };

    private sealed class Common
    {
        public readonly Option<bool> Resume = new("--resume")
        {
            Description = "Continue the run saved in --out from its last checkpoint, bit for bit as if it had never stopped. " +
                "The configuration must match (only --steps may grow).",
        };
        public readonly Option<int?> Steps = new("--steps") { Description = "Total optimiser steps (overrides the config's `steps`)." };
        public readonly Option<string?> Objective = new("--objective")
        {
            Description = "mdm (masked diffusion, the default) or ar (autoregressive baseline with causal attention).",
        };
        public readonly Option<int?> Threads = ModelSource.ThreadsOption();
        public readonly Option<ulong?> Seed;
        public readonly Option<string> SaveDType = new("--save-dtype") { Description = SaveDTypeHelp, DefaultValueFactory = _ => "f32" };
        public readonly Option<long?> StopAfter = new("--stop-after")
        {
            Description = "Stop after this many steps with a checkpoint (the schedule still targets --steps); continue later with --resume.",
        };

        /// <param name="seeded">What --seed drives besides the config's `seed`: the initial weights only for a new model.</param>
        public Common(string seeded = "the initial weights, data order and masks") =>
            Seed = new("--seed") { Description = $"Seed of {seeded} (overrides the config's `seed`)." };

        public void AddTo(Command command, bool objective = true)
        {
            foreach (var o in new Option[] { Resume, Steps, Objective, Threads, Seed, SaveDType, StopAfter })
                if (objective || o != Objective) command.Options.Add(o);
        }

        public RunConfig Apply(ParseResult parse, RunConfig config)
        {
            if (parse.GetValue(Steps) is { } steps) config = config with { Steps = steps };
            if (parse.GetValue(Seed) is { } seed) config = config with { Seed = seed };
            if (parse.GetValue(Objective) is { } objective)
                config = config with
                {
                    Objective = RunConfig.ParseObjective(objective)
                        ?? throw new ArgumentException($"--objective must be mdm or ar, not '{objective}'"),
                };
            config.Validate("--config with command-line overrides");
            return config;
        }

        public DType ParseSaveDType(ParseResult parse) => parse.GetValue(SaveDType)?.ToLowerInvariant() switch
        {
            "f32" or "float32" => DType.F32,
            "bf16" or "bfloat16" => DType.BF16,
            var other => throw new ArgumentException($"--save-dtype must be f32 or bf16, not '{other}'"),
        };

        public void ApplyThreads(ParseResult parse) => ModelSource.ApplyThreads(parse.GetValue(Threads));
    }

    private static Command Train()
    {
        var common = new Common();
        var config = new Option<string>("--config", "-c")
        {
            Description = "Model size and optimiser: a preset (tiny: d_model 256, 6 layers; small: d_model 384, 8 layers) or a JSON " +
                "file such as {\"base\": \"tiny\", \"n_layers\": 4, \"lr\": 5e-4, \"steps\": 500, \"batch_size\": 16}. " +
                "Keys: d_model n_layers n_heads n_kv_heads mlp_hidden_size seq_len vocab_size rope_theta weight_tying objective " +
                "lr min_lr warmup_steps decay_fraction weight_decay beta1 beta2 max_grad_norm batch_size grad_accumulation steps " +
                "eval_interval eval_batches checkpoint_interval seed.",
            DefaultValueFactory = _ => "tiny",
        };
        var data = DataOption("Training text: .txt files (paragraph per line, documents separated by a blank line), .jsonl files with " +
            "{\"text\": ...}, or directories of them. Example: --data data/corpus/train.txt");
        var valid = ValidOption("Held-out text for periodic evaluation (held-out loss, bits/token and ELBO perplexity in metrics.jsonl " +
            "and loss.svg). Example: --valid data/corpus/valid.txt");
        var tokenizer = new Option<string?>("--tokenizer")
        {
            Description = "Directory with tokenizer.json (must define a mask and an EOS token; make one with `llada tokenizer train`). " +
                "Default with --resume: the tokenizer saved in --out.",
        };
        var output = OutOption("a Hugging Face model directory (config.json, model.safetensors, tokenizer files) plus training_state.*, metrics.jsonl and loss.svg");
        var command = new Command("train",
            "Pre-train a LLaDA mask predictor from scratch on plain text (Eq. 3 masked-diffusion loss, or --objective ar for the autoregressive baseline), " +
            "with Warmup-Stable-Decay AdamW, periodic held-out evaluation and atomic checkpoints. Ctrl-C saves a checkpoint first.\n\n" +
            "Examples:\n" +
            "  llada tokenizer train --input data/corpus/train.txt --vocab-size 8192 --out tok\n" +
            "  llada train --config tiny --data data/corpus/train.txt --valid data/corpus/valid.txt --tokenizer tok --out runs/tiny\n" +
            "  llada train --config tiny --data data/corpus/train.txt --valid data/corpus/valid.txt --tokenizer tok --out runs/tiny --resume");
        foreach (var o in new Option[] { config, data, valid, tokenizer, output }) command.Options.Add(o);
        common.AddTo(command);
        CliAction.Set(command, async (parse, ctx, token) =>
        {
            var runConfig = common.Apply(parse, RunConfig.Resolve(parse.GetValue(config)!));
            common.ApplyThreads(parse);
            string outDir = parse.GetValue(output)!;
            bool resume = parse.GetValue(common.Resume);
            OutputPaths.CheckDirectory(outDir, "--out");
            // Before the tokenizer default (--out with --resume), so a resume of nothing says so instead of "no tokenizer".
            TrainingRun.CheckOutputDirectory(outDir, resume, runConfig, "pretrain");
            string tokenizerDir = parse.GetValue(tokenizer) ?? (resume ? outDir
                : throw new ArgumentException("--tokenizer DIR is required for a new run (train one with `llada tokenizer train --input FILES --vocab-size 8192 --out DIR`)"));
            var request = new PretrainRequest
            {
                Config = runConfig, Data = parse.GetValue(data)!, Valid = parse.GetValue(valid) ?? [], TokenizerDirectory = tokenizerDir,
                OutputDirectory = outDir, Resume = resume, SaveDType = common.ParseSaveDType(parse), StopAfterStep = parse.GetValue(common.StopAfter),
            };
            return await Task.Run(() => Execute(ctx, $"train {runConfig.Name}", token, () => RunSetup.Prepare(request, null, token)), CancellationToken.None);
        });
        return command;
    }

    private static Command Sft()
    {
        var common = new Common("the data order and masks");
        var model = new Option<string>("--model", "-m")
        {
            Description = "Pretrained model directory to start from (the --out of `llada train`): config.json, model.safetensors and tokenizer files.",
            Required = true,
        };
        var config = new Option<string>("--config", "-c")
        {
            Description = "Optimiser settings: the preset `sft` (lr 2e-4, 20 warm-up steps, constant, linear decay over the last 10%, " +
                "batch 16, 128-token pairs) or a JSON file such as {\"base\": \"sft\", \"steps\": 300, \"seq_len\": 192}. Model-size keys are taken from --model.",
            DefaultValueFactory = _ => "sft",
        };
        var data = DataOption("Dialogues as JSON lines: {\"messages\": [{\"role\": \"user\", \"content\": ...}, {\"role\": \"assistant\", \"content\": ...}, ...]} " +
            "or {\"prompt\": ..., \"response\": ...}. A dialogue with n answers becomes n pairs (earlier turns in the prompt). Example: --data data/sft/train.jsonl");
        var valid = ValidOption("Held-out dialogues for periodic evaluation of the Eq. 5 loss. Example: --valid data/sft/valid.jsonl");
        var tokenizer = ModelTokenizerOption();
        var skipLong = SkipLongOption();
        var output = OutOption("the fine-tuned Hugging Face model directory plus training state, metrics.jsonl and loss.svg");
        var command = new Command("sft",
            "Supervised fine-tuning of a pretrained LLaDA model on prompt/response pairs (Eq. 5: the prompt is never masked, responses are " +
            "padded with EOS which is trained like any token). Prompts are rendered with the tokenizer's chat template.\n\n" +
            "Examples:\n" +
            "  llada sft --model runs/tiny --data data/sft/train.jsonl --valid data/sft/valid.jsonl --out runs/tiny-sft\n" +
            "  llada sft --model runs/tiny --data data/sft/train.jsonl --out runs/tiny-sft --resume");
        foreach (var o in new Option[] { model, config, data, valid, tokenizer, skipLong, output }) command.Options.Add(o);
        common.AddTo(command);
        CliAction.Set(command, async (parse, ctx, token) =>
        {
            var runConfig = common.Apply(parse, RunConfig.Resolve(parse.GetValue(config)!, RunConfig.Sft));
            common.ApplyThreads(parse);
            OutputPaths.CheckDirectory(parse.GetValue(output)!, "--out");
            var request = new SftRequest
            {
                Config = runConfig, ModelDirectory = parse.GetValue(model)!, Data = parse.GetValue(data)!, Valid = parse.GetValue(valid) ?? [],
                TokenizerDirectory = parse.GetValue(tokenizer), OutputDirectory = parse.GetValue(output)!, Resume = parse.GetValue(common.Resume),
                SaveDType = common.ParseSaveDType(parse), StopAfterStep = parse.GetValue(common.StopAfter), SkipLong = parse.GetValue(skipLong),
            };
            return await Task.Run(() => Execute(ctx, "sft", token, () => RunSetup.Prepare(request, null, token)), CancellationToken.None);
        });
        return command;
    }

    /// <summary>Optimiser defaults of `llada prefer`: a short constant-rate run on small pair batches.</summary>
    private static readonly RunConfig PreferDefaults = RunConfig.Sft with
    {
        Name = "prefer", SeqLen = 64, LearningRate = 2e-5, WarmupSteps = 5, DecayFraction = 0.1, BatchSize = 4, Steps = 100,
        EvalInterval = 25, EvalBatches = 8, CheckpointInterval = 25,
    };

    private sealed class VrpoFlags
    {
        public readonly Option<double> Beta = new("--beta") { Description = "DPO temperature beta.", DefaultValueFactory = _ => 0.1 };
        public readonly Option<int> Samples = new("--samples")
        {
            Description = "Sampling budget n: masked copies per response for each ELBO estimate (policy and reference each).", DefaultValueFactory = _ => 8,
        };
        public readonly Option<string> Allocation = new("--allocation")
        {
            Description = "optimal: n distinct timesteps with one mask each (LLaDA 1.5); naive: --timesteps timesteps with n / timesteps masks each.",
            DefaultValueFactory = _ => "optimal",
        };
        public readonly Option<int> Timesteps = new("--timesteps") { Description = "Timesteps of --allocation naive (must divide --samples).", DefaultValueFactory = _ => 1 };
        public readonly Option<bool> NoAntithetic = new("--no-antithetic")
        {
            Description = "Draw the reference's timesteps and masks independently of the policy's (ablation; by default both share them).",
        };

        public void AddTo(Command command)
        {
            foreach (var o in new Option[] { Beta, Samples, Allocation, Timesteps, NoAntithetic }) command.Options.Add(o);
        }

        public VrpoOptions Parse(ParseResult parse)
        {
            var allocation = parse.GetValue(Allocation)?.ToLowerInvariant() switch
            {
                "optimal" => Llada.Diffusion.ElboAllocation.Optimal,
                "naive" => Llada.Diffusion.ElboAllocation.Naive,
                var other => throw new ArgumentException($"--allocation must be optimal or naive, not '{other}'"),
            };
            var options = new VrpoOptions
            {
                Beta = parse.GetValue(Beta), Samples = parse.GetValue(Samples), Allocation = allocation, Timesteps = parse.GetValue(Timesteps),
                Antithetic = !parse.GetValue(NoAntithetic),
            };
            options.Validate();
            return options;
        }
    }

    private static Command Prefer()
    {
        var common = new Common("the data order, timesteps and masks");
        var vrpo = new VrpoFlags();
        var model = new Option<string>("--model", "-m")
        {
            Description = "Fine-tuned model directory to start from (the --out of `llada sft`); it is also the frozen reference model.",
            Required = true,
        };
        var config = new Option<string?>("--config", "-c")
        {
            Description = "Optimiser settings as a JSON file, e.g. {\"base\": \"sft\", \"lr\": 1e-5, \"steps\": 200, \"batch_size\": 4, \"seq_len\": 64}. " +
                "batch_size counts pairs. Default: lr 2e-5, 5 warm-up steps, batch 4 pairs, 64-token rows, 100 steps, evaluation and checkpoint every 25.",
        };
        var lr = new Option<double?>("--lr") { Description = "Peak learning rate (overrides the config's `lr`)." };
        var data = DataOption("Preference pairs as JSON lines: {\"prompt\": ..., \"chosen\": ..., \"rejected\": ...} or " +
            "{\"messages\": [...history ending with the user...], \"chosen\": ..., \"rejected\": ...}. Example: --data data/prefs/train.jsonl");
        var valid = ValidOption("Held-out pairs: each evaluation reports the DPO loss and the share of pairs whose chosen answer has the higher ELBO. Example: --valid data/prefs/valid.jsonl");
        var tokenizer = ModelTokenizerOption();
        var skipLong = SkipLongOption();
        var output = OutOption("the preference-tuned Hugging Face model directory plus training state, metrics.jsonl and loss.svg");
        var command = new Command("prefer",
            "Preference optimisation with VRPO (LLaDA 1.5): DPO where log-likelihoods are ELBO estimates, " +
            "-log sigmoid(beta [(B(y_w) - B_ref(y_w)) - (B(y_l) - B_ref(y_l))]), against the frozen starting model. " +
            "Variance reduction: sampling budget --samples, optimal allocation (n timesteps x 1 mask) and antithetic sampling " +
            "(policy and reference share timesteps and masks); --allocation naive and --no-antithetic switch them off. " +
            "Progress, metrics.jsonl, loss.svg, atomic checkpoints, Ctrl-C save and exact --resume work as in `llada sft`.\n\n" +
            "Examples:\n" +
            "  llada prefer --model models/llada-tiny-instruct --data data/prefs/train.jsonl --valid data/prefs/valid.jsonl --out runs/vrpo\n" +
            "  llada prefer --model models/llada-tiny-instruct --data data/prefs/train.jsonl --out runs/vrpo-naive --allocation naive --no-antithetic\n" +
            "  llada prefer --model models/llada-tiny-instruct --data data/prefs/train.jsonl --out runs/vrpo --resume");
        foreach (var o in new Option[] { model, config, lr, data, valid, tokenizer, skipLong, output }) command.Options.Add(o);
        vrpo.AddTo(command);
        common.AddTo(command, objective: false);
        CliAction.Set(command, async (parse, ctx, token) =>
        {
            var runConfig = parse.GetValue(config) is { } path ? RunConfig.Resolve(path, PreferDefaults) : PreferDefaults;
            if (parse.GetValue(lr) is { } rate) runConfig = runConfig with { LearningRate = rate };
            runConfig = common.Apply(parse, runConfig);
            common.ApplyThreads(parse);
            OutputPaths.CheckDirectory(parse.GetValue(output)!, "--out");
            var request = new PreferenceRequest
            {
                Config = runConfig, Vrpo = vrpo.Parse(parse), ModelDirectory = parse.GetValue(model)!, Data = parse.GetValue(data)!,
                Valid = parse.GetValue(valid) ?? [], TokenizerDirectory = parse.GetValue(tokenizer), OutputDirectory = parse.GetValue(output)!,
                Resume = parse.GetValue(common.Resume), SaveDType = common.ParseSaveDType(parse), StopAfterStep = parse.GetValue(common.StopAfter),
                SkipLong = parse.GetValue(skipLong),
            };
            return await Task.Run(() => Execute(ctx, "prefer (VRPO)", token, () => RunSetup.Prepare(request, token)), CancellationToken.None);
        });
        return command;
    }

    private static Command VrpoVariance()
    {
        var model = new Option<string>("--model", "-m") { Description = "Policy model directory (e.g. the --out of `llada prefer`).", Required = true };
        var reference = new Option<string?>("--reference") { Description = "Frozen reference model directory (default: --model, where antithetic scores are exactly 0)." };
        var data = DataOption("Preference pairs (.jsonl, as for `llada prefer`); the first --pairs are used. Example: --data data/prefs/valid.jsonl");
        var pairs = new Option<int>("--pairs") { Description = "Pairs whose mean loss is estimated.", DefaultValueFactory = _ => 8 };
        var repeats = new Option<int>("--repeats") { Description = "Independent estimates per setting and budget.", DefaultValueFactory = _ => 32 };
        var budgets = new Option<string>("--budgets") { Description = "Comma-separated sampling budgets n.", DefaultValueFactory = _ => "1,2,4,8" };
        var beta = new Option<double>("--beta") { Description = "DPO temperature beta.", DefaultValueFactory = _ => 0.1 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the timesteps and masks.", DefaultValueFactory = _ => 1 };
        var threads = ModelSource.ThreadsOption();
        var command = new Command("vrpo-variance",
            "Measure the variance reduction of VRPO: for each sampling budget n, estimate the preference score " +
            "beta [(B(y_w) - B_ref(y_w)) - (B(y_l) - B_ref(y_l))] and the DPO loss gradient --repeats times and print their variance for " +
            "naive (1 timestep x n masks, independent policy/reference draws), +optimal allocation (n timesteps x 1 mask), +antithetic " +
            "(shared draws), and both.\n\n" +
            "Example:\n  llada vrpo-variance --model runs/vrpo --reference models/llada-tiny-instruct --data data/prefs/valid.jsonl");
        foreach (var o in new Option[] { model, reference, data, pairs, repeats, budgets, beta, seed, threads }) command.Options.Add(o);
        CliAction.Set(command, async (parse, ctx, token) =>
        {
            ModelSource.ApplyThreads(parse.GetValue(threads));
            int[] ns = parse.GetValue(budgets)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(x => int.TryParse(x, CultureInfo.InvariantCulture, out int n) && n >= 1 ? n : throw new ArgumentException($"--budgets must list positive integers, not '{x}'"))
                .ToArray();
            int pairCount = parse.GetValue(pairs), repeatCount = parse.GetValue(repeats);
            if (pairCount < 1) throw new ArgumentException($"--pairs must be at least 1, not {pairCount}");
            if (repeatCount < 2) throw new ArgumentException($"--repeats must be at least 2, not {repeatCount}");
            string policyDir = parse.GetValue(model)!, referenceDir = parse.GetValue(reference) ?? policyDir;
            return await Task.Run(() =>
            {
                var table = PreferenceVarianceTable.Run(policyDir, referenceDir, parse.GetValue(data)!, pairCount, repeatCount, ns, parse.GetValue(beta), parse.GetValue(seed),
                    line => ctx.Error.WriteLine(line), token);
                ctx.Output.Write(table);
                return 0;
            }, CancellationToken.None);
        });
        return command;
    }

    private static int Execute(CommandContext ctx, string title, CancellationToken token, Func<PreparedRun> prepare)
    {
        using var prepared = prepare();
        foreach (string note in prepared.Notes) ctx.Error.WriteLine(note);
        var run = prepared.Run;
        var result = new TrainingProgressView(ctx.Error).Run(title, progress => run.Run(progress, token));
        string outDir = Path.GetFullPath(run.Options.OutputDirectory);
        ctx.Output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{(result.Completed ? "finished" : "stopped")} at step {result.Step}/{run.Options.Config.Steps}: model in {outDir} ({result.AverageTokensPerSecond:N0} training tokens/s)"));
        if (result.LastEvaluation is { } eval)
            ctx.Output.WriteLine(TrainingProgressView.EvalLine(new RunEvaluated(eval.Step, run.Options.Config.Steps, eval)));
        ctx.Output.WriteLine($"metrics: {Path.Combine(outDir, MetricsLog.FileName)}, loss curve: {Path.Combine(outDir, MetricsLog.ChartFileName)}");
        return 0;
    }

    private static Command Tokenizer()
    {
        var input = new Option<string[]>("--input", "-i")
        {
            Description = "UTF-8 text files to learn the merges from. Example: --input data/corpus/train.txt",
            Required = true, AllowMultipleArgumentsPerToken = true, Arity = ArgumentArity.OneOrMore,
        };
        var vocab = new Option<int>("--vocab-size")
        {
            Description = "Total vocabulary: 256 bytes + learned merges + LLaDA's special tokens (BOS, EOS, mask, chat headers, end of turn).",
            DefaultValueFactory = _ => 8192,
        };
        var minFrequency = new Option<int>("--min-frequency") { Description = "Only merge pairs seen at least this often.", DefaultValueFactory = _ => 2 };
        var output = new Option<string>("--out", "-o") { Description = "Directory for tokenizer.json, tokenizer_config.json and special_tokens_map.json.", Required = true };
        var train = new Command("train",
            "Train a byte-level BPE tokenizer (Hugging Face tokenizer.json format, LLaDA's special tokens and chat template).\n\n" +
            "Example:\n  llada tokenizer train --input data/corpus/train.txt --vocab-size 8192 --out tok");
        foreach (var o in new Option[] { input, vocab, minFrequency, output }) train.Options.Add(o);
        CliAction.Set(train, async (parse, ctx, token) =>
        {
            string[] files = parse.GetValue(input)!;
            foreach (string f in files)
                if (!File.Exists(f)) throw new FileNotFoundException($"tokenizer training file '{f}' not found", f);
            if (files.All(f => new FileInfo(f).Length == 0))
                throw new InvalidDataException($"--input: {string.Join(", ", files)} {(files.Length == 1 ? "is" : "are")} empty; there is no text to learn merges from");
            int size = parse.GetValue(vocab), minFreq = parse.GetValue(minFrequency);
            var options = new BpeTrainerOptions { VocabSize = size, MinFrequency = minFreq };
            if (size < options.MinimumVocabSize)
                throw new ArgumentException($"--vocab-size must be at least {options.MinimumVocabSize} (256 byte symbols + {options.SpecialTokens.Count} special tokens), not {size}");
            if (minFreq < 1) throw new ArgumentException($"--min-frequency must be at least 1, not {minFreq}");
            string outDir = parse.GetValue(output)!;
            OutputPaths.CheckDirectory(outDir, "--out");
            var result = await Task.Run(() => BpeTrainer.TrainFiles(files, outDir, options, null, token), CancellationToken.None);
            ctx.Output.WriteLine($"wrote {Path.GetFullPath(outDir)}: {result.VocabSize} tokens ({result.LearnedCount} byte-level tokens and merges + {result.Options.SpecialTokens.Count} special)");
            return 0;
        });
        var command = new Command("tokenizer", "Tokenizer tools.");
        command.Subcommands.Add(train);
        return command;
    }
}
