using System.Diagnostics;
using System.Globalization;
using System.Text;
using Llada.Diffusion;
using Llada.Evaluation;
using Llada.Reporting;

namespace Llada.Cli.Commands;

/// <summary>
/// `llada bench --sampling`: the reverse process's speed settings side by side on the prompts of generation task
/// files: vanilla (one token per step), the prefix and dual KV caches, the threshold and factor rules, early exit,
/// and the combinations users run. Greedy decoding; the settings run interleaved prompt by prompt so a load change
/// on the machine hits them alike.
/// </summary>
internal static class SamplingBench
{
    /// <summary>One sampler setting of the table.</summary>
    public sealed record Setting(string Name, KvCacheMode Cache, double? Threshold, double? Factor = null, bool EarlyExit = false);

    /// <summary>What one setting did over all prompts.</summary>
    public sealed class Totals
    {
        public double Seconds;
        public long CanvasTokens, FullPasses, WindowPasses;
        public int Prompts, SameAsVanilla, Correct;
    }

    /// <summary>The table's rows: vanilla first (the baseline of speed-up and agreement), then each speed-up alone and combined.</summary>
    public static IReadOnlyList<Setting> Settings(double threshold, double factor)
    {
        string t = $"threshold {threshold.ToString(CultureInfo.InvariantCulture)}", f = $"factor {factor.ToString(CultureInfo.InvariantCulture)}";
        return
        [
            new("vanilla", KvCacheMode.None, null),
            new("cache prefix", KvCacheMode.Prefix, null),
            new("cache dual", KvCacheMode.Dual, null),
            new(t, KvCacheMode.None, threshold),
            new(f, KvCacheMode.None, null, factor),
            new($"cache prefix + {t}", KvCacheMode.Prefix, threshold),
            new($"cache dual + {t}", KvCacheMode.Dual, threshold),
            new($"cache dual + {f}", KvCacheMode.Dual, null, factor),
            new("early exit", KvCacheMode.None, null, EarlyExit: true),
            new($"{t} + early exit", KvCacheMode.None, threshold, EarlyExit: true),
            new($"cache dual + {t} + early exit", KvCacheMode.Dual, threshold, EarlyExit: true),
            new($"cache dual + {f} + early exit", KvCacheMode.Dual, null, factor, EarlyExit: true),
        ];
    }

    /// <summary>
    /// Runs every setting on the first <paramref name="limit"/> prompts of each generation task. gen_length is the
    /// task's own unless <paramref name="genLength"/> is given; the block is <paramref name="blockLength"/> (at most
    /// gen_length), else the model's default fitted to gen_length (<see cref="SamplingDefaults.FittedBlockLength"/>);
    /// vanilla takes one step per token.
    /// </summary>
    public static Totals[] Run(EvaluatedModel model, IReadOnlyList<EvalTask> tasks, IReadOnlyList<Setting> settings,
        int? genLength, int? blockLength, SamplingDefaults defaults, TextWriter progress, CancellationToken cancellationToken)
    {
        var sampler = new ReverseProcess(model.Predictor);
        var totals = settings.Select(_ => new Totals()).ToArray();
        bool warmedUp = false;
        foreach (var task in tasks)
        {
            int gen = genLength ?? task.GenLength ?? 64;
            int block = blockLength is { } b ? Math.Min(b, gen) : defaults.FittedBlockLength(gen);
            if (gen % block != 0) throw new ArgumentException($"task {task.Name}: gen_length {gen} is not divisible by --block-length {block}");
            var vanilla = new GenerationOptions
            {
                GenLength = gen, Steps = gen, BlockLength = block, EosTokenId = model.EosTokenId, EndOfTurnTokenId = model.EndOfTurnTokenId,
            };
            foreach (var item in task.Items.Cast<GenerateItem>())
            {
                int[] prompt = model.EncodePrompt(item.Prompt, chatTemplate: true);
                if (!warmedUp)
                {
                    sampler.Generate(prompt, vanilla, cancellationToken: cancellationToken);
                    warmedUp = true;
                }
                string? vanillaAnswer = null;
                for (int s = 0; s < settings.Count; s++)
                {
                    var setting = settings[s];
                    var options = vanilla with
                    {
                        Cache = setting.Cache, Threshold = setting.Threshold, Factor = setting.Factor, EarlyExit = setting.EarlyExit,
                    };
                    var watch = Stopwatch.StartNew();
                    var result = sampler.Generate(prompt, options, cancellationToken: cancellationToken);
                    double seconds = watch.Elapsed.TotalSeconds;
                    string answer = model.Tokenizer.Decode(result.Answer(), skipSpecialTokens: true);
                    vanillaAnswer ??= answer;
                    var t = totals[s];
                    t.Seconds += seconds;
                    t.CanvasTokens += gen;
                    t.FullPasses += result.FullPasses;
                    t.WindowPasses += result.WindowPasses;
                    t.Prompts++;
                    if (answer == vanillaAnswer) t.SameAsVanilla++;
                    if (Evaluator.Matches(item, answer)) t.Correct++;
                }
                progress.Write($"\r{task.Name}: {Quantity.Of(totals[0].Prompts, "prompt")} done ");
            }
        }
        progress.WriteLine();
        return totals;
    }

    /// <summary>The Markdown table of <see cref="Run"/>'s totals.</summary>
    public static string Table(IReadOnlyList<Setting> settings, IReadOnlyList<Totals> totals)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("| setting | tokens/s | speed-up | forward passes (full + window) | ms / pass | same answer as vanilla | correct |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        double baseRate = totals[0].CanvasTokens / totals[0].Seconds;
        for (int s = 0; s < settings.Count; s++)
        {
            var t = totals[s];
            double rate = t.CanvasTokens / t.Seconds;
            long passes = t.FullPasses + t.WindowPasses;
            sb.AppendLine(string.Create(inv,
                $"| {settings[s].Name} | {rate:0.0} | {rate / baseRate:0.00}x | {passes} ({t.FullPasses} + {t.WindowPasses}) | {1000 * t.Seconds / passes:0.00} | {t.SameAsVanilla}/{t.Prompts} | {t.Correct}/{t.Prompts} |"));
        }
        return sb.ToString();
    }
}
