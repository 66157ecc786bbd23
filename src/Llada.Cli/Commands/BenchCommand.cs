using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Llada.Diffusion;
using Llada.Evaluation;
using Llada.Model;
using Llada.Numerics;
using Llada.Numerics.Native;
using Llada.Reporting;

namespace Llada.Cli.Commands;

/// <summary>`llada bench`: time a forward pass, like for like with a reference implementation.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = ModelSource.ModelOption();
        var synthetic = new Option<string?>("--synthetic")
        {
            Description = "Benchmark a random model of this shape instead of files: d_model,n_layers,n_heads,mlp,vocab (e.g. 1024,8,16,2816,32000).",
        };
        var moe = new Option<string?>("--moe")
        {
            Description = "Make the --synthetic model a LLaDA-MoE (every layer MoE, QK-norm): experts,top_k,expert_ff " +
                          "(e.g. 64,8,1024 as in LLaDA-MoE-7B-A1B); the mlp field of --synthetic is then unused.",
        };
        var allExperts = new Option<bool>("--all-experts")
        {
            Description = "MoE models: run every expert on every token (unrouted ones weighted 0) instead of only the routed " +
                          "ones. Same logits; shows what sparse execution saves.",
        };
        var dtype = new Option<string>("--dtype") { Description = "Weight dtype of a --synthetic model: f32, bf16, f16 or q8.", DefaultValueFactory = _ => "f32" };
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per sequence.", DefaultValueFactory = _ => 256 };
        var batch = new Option<int>("--batch") { Description = "Sequences per forward pass.", DefaultValueFactory = _ => 1 };
        var repeat = new Option<int>("--repeat") { Description = "Timed repetitions (after one warm-up).", DefaultValueFactory = _ => 5 };
        var activeBlock = new Option<int>("--active-block")
        {
            Description = "Also time a pass that needs logits only for this many positions (a sampler's active block); 0 = skip.",
            DefaultValueFactory = _ => 32,
        };
        var sampling = new Option<string[]>("--sampling")
        {
            Description = "Instead of forward passes, time the reverse process on the prompts of these generation task files: vanilla, " +
                "cache prefix, cache dual, --threshold, --factor, early exit and their combinations (Markdown table; --json for numbers).",
            AllowMultipleArgumentsPerToken = true,
        };
        var limit = new Option<int>("--limit") { Description = "--sampling: prompts per task file.", DefaultValueFactory = _ => 8 };
        var genLength = new Option<int?>("--gen-length") { Description = "--sampling: answer canvas (default: each task's gen_length)." };
        var blockLength = new Option<int?>("--block-length")
        {
            Description = "--sampling: block length (a shorter canvas is one block). Default: the model's generation_config.json block_length, " +
                $"else {SamplingDefaults.BuiltIn.BlockLength}, fitted to divide each gen_length.",
        };
        var threshold = new Option<double>("--threshold") { Description = "--sampling: confidence threshold of the threshold-rule rows.", DefaultValueFactory = _ => 0.9 };
        var factor = new Option<double>("--factor") { Description = "--sampling: f of the factor-rule rows (Fast-dLLM).", DefaultValueFactory = _ => 1.0 };
        var compute = ModelSource.ComputeOption();
        var threads = ModelSource.ThreadsOption();
        var json = ModelSource.JsonOption();
        var command = new Command("bench",
            "Time a full forward pass over --seq-len tokens with logits at every position (the work a reference implementation does) " +
            "and report the median and the achieved GFLOP/s; also a pass with logits for the last --active-block positions only, " +
            "and a KV-cache window pass that runs those positions alone (the later steps of --cache dual).\n" +
            "With --sampling, time whole generations instead (tokens/s, forward passes, agreement with vanilla, task accuracy).\n" +
            "Examples:\n  llada bench --model DIR --seq-len 256 --repeat 5 --json\n  llada bench --synthetic 1024,8,16,2816,32000 --dtype bf16\n" +
            "  llada bench --synthetic 1024,4,16,0,32000 --moe 64,8,512 --dtype bf16 [--all-experts]\n" +
            "  llada bench --synthetic 1024,8,16,2816,32000 --dtype bf16 --compute bf16\n" +
            "  llada bench --sampling data/eval/arith.jsonl data/eval/reverse.jsonl --limit 8 --gen-length 64")
        {
            model, synthetic, moe, allExperts, dtype, seqLen, batch, repeat, activeBlock, sampling, limit, genLength, blockLength, threshold, factor,
            compute, threads, json,
        };
        CliAction.Set(command, (parse, ctx, token) =>
        {
            ModelSource.ApplyThreads(parse.GetValue(threads));
            var arithmetic = ModelSource.ParseCompute(parse.GetValue(compute));
            if (parse.GetValue(sampling) is { Length: > 0 } taskFiles)
                return Task.FromResult(RunSampling(parse, ctx, token, model, taskFiles, limit, genLength, blockLength, threshold, factor,
                    arithmetic, json));
            int t = parse.GetValue(seqLen), b = parse.GetValue(batch), r = parse.GetValue(repeat), active = parse.GetValue(activeBlock);
            if (t < 1 || b < 1 || r < 1) throw new ArgumentException("--seq-len, --batch and --repeat must be at least 1");
            string? shape = parse.GetValue(synthetic);
            string? tempDir = null;
            try
            {
                string dir;
                if (shape is not null)
                {
                    tempDir = Directory.CreateTempSubdirectory("llada-bench-").FullName;
                    dir = Path.Combine(tempDir, "model");
                    var config = ParseShape(shape, Math.Max(t, 256), parse.GetValue(moe));
                    var weightType = ParseDType(parse.GetValue(dtype)!, dtype.Name);
                    ctx.Error.WriteLine($"writing a random {shape} model ({parse.GetValue(dtype)}) to {dir} ...");
                    SyntheticCheckpoint.Write(dir, config, weightType, cancellationToken: token);
                }
                else if (parse.GetValue(moe) is not null) throw new ArgumentException("--moe shapes a --synthetic model; give --synthetic too");
                else dir = ModelSource.Resolve(parse.GetValue(model));

                using var predictor = MaskPredictor.Load(dir);
                predictor.RunAllExperts = parse.GetValue(allExperts);
                string? computeNotice = ModelSource.ApplyCompute(predictor, arithmetic);
                var c = predictor.Config;
                if (t > c.MaxSequenceLength) throw new ArgumentException($"--seq-len {t} exceeds the model's max_sequence_length {c.MaxSequenceLength}");
                var tokens = new int[b * t];
                var rng = new Random(1234);
                for (int i = 0; i < tokens.Length; i++) tokens[i] = rng.Next(c.VocabSize);
                var all = Enumerable.Range(0, t).ToArray();
                var logits = new float[(long)b * t * predictor.VocabSize];

                var (fullWall, fullCpu) = TimeRuns(() => predictor.Forward(tokens, b, t, default, all, logits, token), r);
                double fullMs = Median(fullWall);
                double? fullCpuMs = fullCpu is null ? null : Median(fullCpu);
                double flops = ForwardFlops(c, t, t) * b;
                double? activeMs = null, windowMs = null;
                int activeLen = Math.Min(active, t);
                if (activeLen > 0)
                {
                    var block = Enumerable.Range(t - activeLen, activeLen).ToArray();
                    activeMs = Median(TimeRuns(() => predictor.Forward(tokens, b, t, default, block, logits, token), r).Wall);
                    var cache = predictor.CreateCache(b, t);
                    predictor.ForwardFillingCache(tokens, b, t, default, block, logits, cache, token);
                    windowMs = Median(TimeRuns(() => predictor.ForwardWindow(tokens, b, t, default, cache, t - activeLen, t, block, logits, token), r).Wall);
                }
                double gflops = flops / (fullMs * 1e6);
                if (parse.GetValue(json))
                    ctx.Output.WriteLine(JsonSerializer.Serialize(new
                    {
                        forward_ms_median = Math.Round(fullMs, 2),
                        forward_cpu_ms_median = fullCpuMs is { } cpuMs ? Math.Round(cpuMs, 2) : (double?)null,
                        gflops, // unrounded: a tiny model on a busy machine can be below 0.05
                        active_block = activeLen,
                        active_block_ms_median = activeMs is null ? (double?)null : Math.Round(activeMs.Value, 2),
                        cached_window_ms_median = windowMs is null ? (double?)null : Math.Round(windowMs.Value, 2),
                        seq_len = t,
                        batch = b,
                        repeat = r,
                        threads = Parallelism.ThreadCount,
                        dtype = predictor.Checkpoint.Describe().DTypeSummary,
                        compute = ModelSource.ComputeName(arithmetic),
                        bf16_kernel = predictor.HasBf16Matrices ? Bf16KernelName(arithmetic) : null,
                        compute_notice = computeNotice,
                        q8_kernel = predictor.Checkpoint.Describe().DTypeSummary.Contains("Q8_0") ? NativeKernels.Q8Kernel : null,
                        parameters = predictor.Checkpoint.ParameterCount,
                        active_parameters = predictor.Checkpoint.ActiveParameterCount,
                        moe = c.Moe is null ? null : $"{c.Moe.NumExperts} experts, top-{c.Moe.ExpertsPerToken}, width {c.Moe.ExpertIntermediateSize}",
                        all_experts = predictor.RunAllExperts,
                    }));
                else
                {
                    ctx.Output.WriteLine($"full forward ({b}x{t} tokens, logits everywhere): median {fullMs:0.0} ms, {gflops:0.0} GFLOP/s" +
                        (fullCpuMs is { } cpuMs ? $" ({cpuMs:0.0} ms thread CPU time)" : ""));
                    if (predictor.Checkpoint.Describe().DTypeSummary.Contains("Q8_0")) ctx.Output.WriteLine($"q8 kernel: {NativeKernels.Q8Kernel}");
                    if (predictor.HasBf16Matrices) ctx.Output.WriteLine($"bf16 weights: --compute {ModelSource.ComputeName(arithmetic)}, {Bf16KernelName(arithmetic)}");
                    if (computeNotice is not null) ctx.Output.WriteLine(computeNotice);
                    if (activeMs is not null)
                    {
                        ctx.Output.WriteLine($"active block ({activeLen} logit positions):       median {activeMs:0.0} ms");
                        ctx.Output.WriteLine($"cached window ({activeLen} positions run, KV cache): median {windowMs:0.0} ms");
                    }
                }
                return Task.FromResult(0);
            }
            finally
            {
                if (tempDir is not null) Directory.Delete(tempDir, recursive: true);
            }
        });
        return command;
    }

    private static int RunSampling(ParseResult parse, CommandContext ctx, CancellationToken token, Option<string?> model, string[] taskFiles,
        Option<int> limit, Option<int?> genLength, Option<int?> blockLength, Option<double> threshold, Option<double> factor,
        Bf16Arithmetic arithmetic, Option<bool> json)
    {
        int lim = parse.GetValue(limit);
        int? block = parse.GetValue(blockLength);
        double tau = parse.GetValue(threshold), f = parse.GetValue(factor);
        if (lim < 1) throw new ArgumentException($"--limit must be at least 1 (got {lim})");
        if (block is < 1) throw new ArgumentException($"--block-length must be at least 1 (got {block})");
        if (parse.GetValue(genLength) is < 1) throw new ArgumentException("--gen-length must be at least 1");
        var tasks = taskFiles.Select(f => TaskFile.Load(f)).ToList();
        if (tasks.FirstOrDefault(x => x.Type != EvalTaskType.Generate) is { } wrong)
            throw new ArgumentException($"--sampling needs generation tasks; {wrong.Path} is a {EvalTask.TypeName(wrong.Type)} task");
        tasks = tasks.Select(x => x.Take(lim)).ToList();
        string dir = ModelSource.Resolve(parse.GetValue(model));
        var defaults = SamplingDefaults.FromDirectory(dir);
        using var evaluated = EvaluatedModel.Load(dir, ModelKind.Diffusion);
        ModelSource.ApplyCompute(evaluated.Predictor, arithmetic, ctx.Error);
        var settings = SamplingBench.Settings(tau, f);
        var totals = SamplingBench.Run(evaluated, tasks, settings, parse.GetValue(genLength), block, defaults, ctx.Error, token);
        if (parse.GetValue(json))
            ctx.Output.WriteLine(JsonSerializer.Serialize(new
            {
                model = evaluated.Name,
                tasks = taskFiles,
                limit = lim,
                block_length = block ?? defaults.BlockLength,
                block_length_source = block is null ? defaults.SourceOf("block_length") : "--block-length",
                threads = Parallelism.ThreadCount,
                compute = ModelSource.ComputeName(arithmetic),
                settings = settings.Select((s, i) => new
                {
                    name = s.Name,
                    cache = KvCacheModeNames.Name(s.Cache),
                    threshold = s.Threshold,
                    factor = s.Factor,
                    early_exit = s.EarlyExit,
                    seconds = Math.Round(totals[i].Seconds, 3),
                    canvas_tokens = totals[i].CanvasTokens,
                    tokens_per_second = Math.Round(totals[i].CanvasTokens / totals[i].Seconds, 2),
                    full_passes = totals[i].FullPasses,
                    window_passes = totals[i].WindowPasses,
                    prompts = totals[i].Prompts,
                    same_answer_as_vanilla = totals[i].SameAsVanilla,
                    correct = totals[i].Correct,
                }),
            }));
        else ctx.Output.Write(SamplingBench.Table(settings, totals));
        return 0;
    }

    /// <summary>
    /// Multiply-add FLOPs (2 per MAC) of one sequence of <paramref name="t"/> tokens with logits at <paramref name="logitRows"/>
    /// positions. A MoE layer counts the router and the routed (top-k) and shared experts only: the useful work.
    /// </summary>
    public static double ForwardFlops(LladaConfig c, int t, int logitRows)
    {
        double d = c.DModel, kvd = c.NKvHeads * c.HeadDim;
        double total = 2.0 * logitRows * d * c.EmbeddingSize;
        for (int i = 0; i < c.NLayers; i++)
        {
            double mlpMacs = c.Moe is { } m && m.MoeLayers[i]
                ? 3 * d * ((double)m.ExpertsPerToken * m.ExpertIntermediateSize + m.SharedExpertIntermediateSize) + d * m.NumExperts
                : 3 * d * c.MlpHiddenSize;
            total += 2.0 * t * (2 * d * d + 2 * d * kvd + mlpMacs) + 4.0 * t * t * d;
        }
        return total;
    }

    internal static LladaConfig ParseShape(string shape, int maxSeq, string? moe = null, string option = "--synthetic", string alternatives = "")
    {
        var parts = shape.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length != 5 || parts.Select((p, i) => !int.TryParse(p, out int v) || v < (i == 3 && moe is not null ? 0 : 1)).Any(bad => bad))
            throw new ArgumentException($"{option} '{shape}': expected {alternatives}five {(moe is null ? "positive integers" : "integers")} d_model,n_layers,n_heads,mlp,vocab{(moe is null ? "" : " (mlp may be 0 with --moe)")}");
        int[] v = parts.Select(int.Parse).ToArray();
        if (v[0] % v[2] != 0) throw new ArgumentException($"{option}: d_model {v[0]} is not divisible by n_heads {v[2]}");
        if (moe is null) return SyntheticCheckpoint.Config(v[0], v[1], v[2], v[3], v[4], maxSeq: maxSeq);
        var m = moe.Split(',', StringSplitOptions.TrimEntries);
        if (m.Length != 3 || m.Any(p => !int.TryParse(p, out int x) || x < 1))
            throw new ArgumentException($"--moe '{moe}': expected three positive integers experts,top_k,expert_ff");
        int[] e = m.Select(int.Parse).ToArray();
        if (e[1] > e[0]) throw new ArgumentException($"--moe: top_k {e[1]} exceeds the number of experts {e[0]}");
        return SyntheticCheckpoint.MoeConfig(v[0], v[1], v[2], e[0], e[1], e[2], v[4], maxSeq: maxSeq);
    }

    /// <summary>The kernel that multiplies bf16 weights under <paramref name="arithmetic"/>.</summary>
    private static string Bf16KernelName(Bf16Arithmetic arithmetic) =>
        arithmetic == Bf16Arithmetic.Bf16Activations ? NativeKernels.Bf16Kernel : "widened to float32 in the float32 engine";

    /// <summary>A weight type as --type / --dtype take it; <paramref name="option"/> names the option in the error.</summary>
    internal static DType ParseDType(string name, string option) => name.ToLowerInvariant() switch
    {
        "f32" or "float32" => DType.F32,
        "bf16" or "bfloat16" => DType.BF16,
        "f16" or "float16" => DType.F16,
        "q8" or "q8_0" => DType.Q8_0,
        _ => throw new ArgumentException($"{option} '{name}' is unknown; use f32, bf16, f16 or q8 (Q8_0, the only quantised type)"),
    };

    /// <summary>
    /// Wall milliseconds of each of <paramref name="repeat"/> runs after one warm-up and, with one thread (the kernels then
    /// run on the calling thread) where the OS has the clock, its CPU milliseconds: steadier than wall time on a busy machine.
    /// </summary>
    private static (double[] Wall, double[]? Cpu) TimeRuns(Action run, int repeat)
    {
        run();
        var wall = new double[repeat];
        var cpu = Parallelism.ThreadCount == 1 && ThreadCpuClock.IsAvailable ? new double[repeat] : null;
        for (int i = 0; i < repeat; i++)
        {
            long cpuStart = cpu is null ? 0 : ThreadCpuClock.Nanoseconds();
            var sw = Stopwatch.StartNew();
            run();
            wall[i] = sw.Elapsed.TotalMilliseconds;
            if (cpu is not null) cpu[i] = (ThreadCpuClock.Nanoseconds() - cpuStart) / 1e6;
        }
        return (wall, cpu);
    }

    private static double Median(double[] values)
    {
        Array.Sort(values);
        int n = values.Length;
        return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    }
}
