using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Llada.Model;
using Llada.Numerics;

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
        var dtype = new Option<string>("--dtype") { Description = "Weight dtype of a --synthetic model: f32, bf16 or f16.", DefaultValueFactory = _ => "f32" };
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per sequence.", DefaultValueFactory = _ => 256 };
        var batch = new Option<int>("--batch") { Description = "Sequences per forward pass.", DefaultValueFactory = _ => 1 };
        var repeat = new Option<int>("--repeat") { Description = "Timed repetitions (after one warm-up).", DefaultValueFactory = _ => 5 };
        var activeBlock = new Option<int>("--active-block")
        {
            Description = "Also time a pass that needs logits only for this many positions (a sampler's active block); 0 = skip.",
            DefaultValueFactory = _ => 32,
        };
        var threads = ModelSource.ThreadsOption();
        var json = ModelSource.JsonOption();
        var command = new Command("bench",
            "Time a full forward pass over --seq-len tokens with logits at every position (the work a reference implementation does) " +
            "and report the median and the achieved GFLOP/s.\n" +
            "Examples:\n  llada bench --model DIR --seq-len 256 --repeat 5 --json\n  llada bench --synthetic 1024,8,16,2816,32000 --dtype bf16\n" +
            "  llada bench --synthetic 1024,4,16,0,32000 --moe 64,8,512 --dtype bf16 [--all-experts]")
        {
            model, synthetic, moe, allExperts, dtype, seqLen, batch, repeat, activeBlock, threads, json,
        };
        CliAction.Set(command, (parse, ctx, token) =>
        {
            ModelSource.ApplyThreads(parse.GetValue(threads));
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
                    var config = ParseShape(shape, parse.GetValue(moe), Math.Max(t, 256));
                    ctx.Error.WriteLine($"writing a random {shape} model ({parse.GetValue(dtype)}) to {dir} ...");
                    SyntheticCheckpoint.Write(dir, config, ParseDType(parse.GetValue(dtype)!), cancellationToken: token);
                }
                else if (parse.GetValue(moe) is not null) throw new ArgumentException("--moe shapes a --synthetic model; give --synthetic too");
                else dir = ModelSource.Resolve(parse.GetValue(model));

                using var predictor = MaskPredictor.Load(dir);
                predictor.RunAllExperts = parse.GetValue(allExperts);
                var c = predictor.Config;
                if (t > c.MaxSequenceLength) throw new ArgumentException($"--seq-len {t} exceeds the model's max_sequence_length {c.MaxSequenceLength}");
                var tokens = new int[b * t];
                var rng = new Random(1234);
                for (int i = 0; i < tokens.Length; i++) tokens[i] = rng.Next(c.VocabSize);
                var all = Enumerable.Range(0, t).ToArray();
                var logits = new float[(long)b * t * predictor.VocabSize];

                double fullMs = Median(TimeRuns(() => predictor.Forward(tokens, b, t, default, all, logits, token), r));
                double flops = ForwardFlops(c, t, t) * b;
                double? activeMs = null;
                int activeLen = Math.Min(active, t);
                if (activeLen > 0)
                {
                    var block = Enumerable.Range(t - activeLen, activeLen).ToArray();
                    activeMs = Median(TimeRuns(() => predictor.Forward(tokens, b, t, default, block, logits, token), r));
                }
                double gflops = flops / (fullMs * 1e6);
                if (parse.GetValue(json))
                    ctx.Output.WriteLine(JsonSerializer.Serialize(new
                    {
                        forward_ms_median = Math.Round(fullMs, 2),
                        gflops, // unrounded: a tiny model on a busy machine can be below 0.05
                        active_block = activeLen,
                        active_block_ms_median = activeMs is null ? (double?)null : Math.Round(activeMs.Value, 2),
                        seq_len = t,
                        batch = b,
                        repeat = r,
                        threads = Parallelism.ThreadCount,
                        dtype = predictor.Checkpoint.DType?.ToString(),
                        parameters = predictor.Checkpoint.ParameterCount,
                        active_parameters = predictor.Checkpoint.ActiveParameterCount,
                        moe = c.Moe is null ? null : $"{c.Moe.NumExperts} experts, top-{c.Moe.ExpertsPerToken}, width {c.Moe.ExpertIntermediateSize}",
                        all_experts = predictor.RunAllExperts,
                    }));
                else
                {
                    ctx.Output.WriteLine($"full forward ({b}x{t} tokens, logits everywhere): median {fullMs:0.0} ms, {gflops:0.0} GFLOP/s");
                    if (activeMs is not null)
                        ctx.Output.WriteLine($"active block ({activeLen} logit positions):       median {activeMs:0.0} ms");
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

    private static LladaConfig ParseShape(string shape, string? moe, int maxSeq)
    {
        var parts = shape.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length != 5 || parts.Select((p, i) => !int.TryParse(p, out int v) || v < (i == 3 && moe is not null ? 0 : 1)).Any(bad => bad))
            throw new ArgumentException($"--synthetic '{shape}': expected five integers d_model,n_layers,n_heads,mlp,vocab (mlp may be 0 with --moe)");
        int[] v = parts.Select(int.Parse).ToArray();
        if (v[0] % v[2] != 0) throw new ArgumentException($"--synthetic: d_model {v[0]} is not divisible by n_heads {v[2]}");
        if (moe is null) return SyntheticCheckpoint.Config(v[0], v[1], v[2], v[3], v[4], maxSeq: maxSeq);
        var m = moe.Split(',', StringSplitOptions.TrimEntries);
        if (m.Length != 3 || m.Any(p => !int.TryParse(p, out int x) || x < 1))
            throw new ArgumentException($"--moe '{moe}': expected three positive integers experts,top_k,expert_ff");
        int[] e = m.Select(int.Parse).ToArray();
        if (e[1] > e[0]) throw new ArgumentException($"--moe: top_k {e[1]} exceeds the number of experts {e[0]}");
        return SyntheticCheckpoint.MoeConfig(v[0], v[1], v[2], e[0], e[1], e[2], v[4], maxSeq: maxSeq);
    }

    internal static DType ParseDType(string name) => name.ToLowerInvariant() switch
    {
        "f32" or "float32" => DType.F32,
        "bf16" or "bfloat16" => DType.BF16,
        "f16" or "float16" => DType.F16,
        _ => throw new ArgumentException($"dtype '{name}' is unknown; use f32, bf16 or f16"),
    };

    private static double[] TimeRuns(Action run, int repeat)
    {
        run();
        var times = new double[repeat];
        for (int i = 0; i < repeat; i++)
        {
            var sw = Stopwatch.StartNew();
            run();
            times[i] = sw.Elapsed.TotalMilliseconds;
        }
        return times;
    }

    private static double Median(double[] values)
    {
        Array.Sort(values);
        int n = values.Length;
        return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    }
}
