using System.Diagnostics;
using System.Globalization;
using System.Text;
using Llada.Diffusion;
using Llada.Model;
using Llada.Reporting;
using Llada.Tokenization;
using Llada.Training;
using Llada.Training.Runs;

namespace Llada.Cli.Training;

/// <summary>`llada vrpo-variance`: the four VRPO settings at several budgets, as a Markdown table.</summary>
internal static class PreferenceVarianceTable
{
    /// <summary>The ablation ladder of the paper: naive, each reduction alone, both.</summary>
    private static readonly (string Name, ElboAllocation Allocation, bool Antithetic)[] Settings =
    [
        ("naive (1 t x n masks, independent)", ElboAllocation.Naive, false),
        ("+ optimal allocation (n t x 1 mask)", ElboAllocation.Optimal, false),
        ("+ antithetic (shared draws)", ElboAllocation.Naive, true),
        ("optimal + antithetic (VRPO)", ElboAllocation.Optimal, true),
    ];

    public static string Run(string policyDir, string referenceDir, IReadOnlyList<string> data, int pairCount, int repeats, int[] budgets,
        double beta, ulong seed, Action<string> log, CancellationToken cancellationToken)
    {
        var shape = ModelShape.FromConfig(LladaConfigFile.Load(Path.Combine(Path.GetFullPath(policyDir), LladaConfigFile.FileName)));
        var tokenizer = Tokenizer.FromDirectory(policyDir);
        var all = RunSetup.EncodePreferences(tokenizer, data, cancellationToken);
        var chosen = all.Where(p => p.Length <= shape.MaxSequenceLength).Take(pairCount).ToList();
        if (chosen.Count < pairCount) throw new InvalidDataException($"only {chosen.Count} pairs fit in the model's {shape.MaxSequenceLength} tokens; lower --pairs");
        int width = chosen.Max(p => p.Length), eos = tokenizer.EosTokenId ?? shape.EosTokenId;
        // One pair per batch: each pair is padded only to its own longer answer.
        var batches = HeldOutBatches.Take(new PreferenceBatches(chosen, 1, width, eos, 0, shuffle: false), chosen.Count);
        int rows = 2 * budgets.Max();
        var policy = new TrainableModel(shape, rows, width, 0);
        var reference = new TrainableModel(shape, rows, width, 0);
        ModelWeights.Load(policy, policyDir);
        ModelWeights.Load(reference, referenceDir);

        var text = new StringBuilder();
        text.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"VRPO estimator variance: {Quantity.Of(chosen.Count, "pair")}, {Quantity.Of(repeats, "repeat")}, beta {beta}, seed {seed}; policy {Path.GetFullPath(policyDir)}, reference {Path.GetFullPath(referenceDir)}"));
        text.AppendLine();
        text.AppendLine("| setting | n | Var[score] | E‖g − ḡ‖² | mean score | ‖ḡ‖² |");
        text.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: |");
        var clock = Stopwatch.StartNew();
        foreach (int n in budgets)
            foreach (var (name, allocation, antithetic) in Settings)
            {
                var options = new VrpoOptions { Beta = beta, Samples = n, Allocation = allocation, Timesteps = 1, Antithetic = antithetic };
                var r = PreferenceVariance.Measure(policy, reference, options, batches, repeats, seed, cancellationToken);
                string line = string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {n} | {r.ScoreVariance:0.000e+00} | {r.GradientVariance:0.000e+00} | {r.MeanScore:0.0000} | {r.MeanGradientNormSquared:0.000e+00} |");
                text.AppendLine(line);
                log(string.Create(CultureInfo.InvariantCulture, $"{clock.Elapsed.TotalSeconds,6:F0}s  {line}"));
            }
        return text.ToString();
    }
}
