using System.CommandLine;
using Llada.Diffusion;

namespace Llada.Cli.Commands;

/// <summary>The reverse-process options of `generate` (and of chat/serve), with their help texts.</summary>
internal sealed class SamplingOptions
{
    // Unset options fall back to the model's generation_config.json, then to SamplingDefaults.BuiltIn (docs/sampling.md, "Defaults").
    private const string FromModel = "the model's generation_config.json, else";

    public readonly Option<int?> GenLength = new("--gen-length", "-n")
    {
        Description = $"Tokens in the answer canvas (all start masked). Default: {FromModel} {SamplingDefaults.BuiltIn.GenLength}.",
    };
    public readonly Option<int?> Steps = new("--steps", "-s")
    {
        Description = $"Denoising steps in total. Default: {FromModel} gen-length (one token per step). Fewer steps commit several tokens per step: faster, usually worse.",
    };
    public readonly Option<int?> BlockLength = new("--block-length", "-b")
    {
        Description = $"Semi-autoregressive block size; gen-length = pure diffusion. Must divide gen-length. Default: {FromModel} " +
            $"{SamplingDefaults.BuiltIn.BlockLength} (or gen-length if smaller).",
    };
    public readonly Option<double?> Temperature = new("--temperature")
    {
        Description = $"0 = greedy; > 0 samples the candidates (Gumbel-max). Default: {FromModel} 0.",
    };
    public readonly Option<double?> CfgScale = new("--cfg-scale")
    {
        Description = $"Classifier-free guidance (0 = off): logits = u + (cfg+1)(c - u), u from a run with the prompt masked. Default: {FromModel} 0.",
    };
    public readonly Option<string?> Remasking = new("--remasking")
    {
        Description = "Which masked positions to commit each step: low_confidence (most confident first), random, or ar (left to right, " +
            $"one per step). Default: {FromModel} low_confidence.",
    };
    public readonly Option<bool> LogitsEosInf = new("--logits-eos-inf") { Description = "Never propose EOS (its logit is -inf)." };
    public readonly Option<bool> ConfidenceEosEotInf = new("--confidence-eos-eot-inf")
    {
        Description = "Commit EOS / end-of-turn candidates only when nothing else is left.",
    };
    public readonly Option<double?> Threshold = new("--threshold")
    {
        Description = "Parallel decoding (Fast-dLLM): commit every masked position whose confidence >= this (at least one per step).",
    };
    public readonly Option<double?> Factor = new("--factor")
    {
        Description = "Parallel decoding (Fast-dLLM factor rule): commit the n most confident while c_n >= 1 - f/(n+1).",
    };
    public readonly Option<string> Cache = new("--cache")
    {
        Description = "Approximate KV cache (Fast-dLLM): none; prefix = later steps of a block rerun only the block and what follows, " +
            "reusing the prompt's keys/values from the block's first step; dual = rerun only the block. Faster, slightly different output.",
        DefaultValueFactory = _ => "none",
    };
    public readonly Option<bool> EarlyExit = new("--early-exit")
    {
        Description = "Stop as soon as the answer is fixed: an EOS / end-of-turn is committed with no mask before it; the rest is filled " +
            "with EOS (beyond the paper; the text answer is the same as without it, only the padding after it differs).",
    };
    public readonly Option<int> Seed = new("--seed") { Description = "Random seed (same seed, same output).", DefaultValueFactory = _ => 0 };

    public IEnumerable<Option> All() =>
        [GenLength, Steps, BlockLength, Temperature, CfgScale, Remasking, LogitsEosInf, ConfidenceEosEotInf, Threshold, Factor, Cache, EarlyExit, Seed];

    public void AddTo(Command command)
    {
        foreach (var o in All()) command.Options.Add(o);
    }

    /// <summary>
    /// Builds generation options from the parsed command line over the model's <paramref name="defaults"/>, with the
    /// model's special ids. With
    /// <paramref name="validate"/> the settings are checked here, so a mistake is reported in the options' names
    /// (--gen-length, not gen_length) with the nearest valid values.
    /// </summary>
    public GenerationOptions Build(ParseResult parse, SamplingDefaults defaults, int eosId, int? endOfTurnId, bool validate = true)
    {
        int gen = parse.GetValue(GenLength) ?? defaults.GenLength;
        string remaskingName = parse.GetValue(Remasking) ?? SamplingDefaults.RemaskingName(defaults.Remasking);
        int block = parse.GetValue(BlockLength) ?? Math.Min(defaults.BlockLength, gen);
        int steps = parse.GetValue(Steps) ?? defaults.StepsFor(gen, block < 1 ? 0 : gen / block);
        var remasking = remaskingName switch
        {
            "low_confidence" or "ar" => Diffusion.Remasking.LowConfidence,
            "random" => Diffusion.Remasking.Random,
            _ => throw new ArgumentException($"--remasking '{remaskingName}' is unknown; use low_confidence, random or ar"),
        };
        var options = new GenerationOptions
        {
            GenLength = gen,
            Steps = steps,
            BlockLength = block,
            Temperature = parse.GetValue(Temperature) ?? defaults.Temperature,
            CfgScale = parse.GetValue(CfgScale) ?? defaults.CfgScale,
            Remasking = remasking,
            LogitsEosInf = parse.GetValue(LogitsEosInf),
            ConfidenceEosEotInf = parse.GetValue(ConfidenceEosEotInf),
            EosTokenId = eosId,
            EndOfTurnTokenId = endOfTurnId,
            Seed = parse.GetValue(Seed),
            Threshold = parse.GetValue(Threshold),
            Factor = parse.GetValue(Factor),
            EarlyExit = parse.GetValue(EarlyExit),
            Cache = KvCacheModeNames.Parse(parse.GetValue(Cache), "--cache"),
        };
        if (remaskingName == "ar")
        {
            if (parse.GetValue(BlockLength) is { } b && b != 1) throw new ArgumentException("--remasking ar decodes one token per step; drop --block-length");
            if (parse.GetValue(Steps) is { } s && s != gen) throw new ArgumentException($"--remasking ar takes one step per token (--gen-length {gen}); drop --steps");
            options = options.AsAutoregressive();
        }
        if (!validate) return options;
        try
        {
            options.ValidateSettings(OptionName);
            CheckStepsAtMostTokens(options, OptionName);
        }
        catch (InvalidSettingException ex) when (parse.GetValue(BlockLength) is null && ex.Message.Contains(BlockLength.Name, StringComparison.Ordinal))
        {
            // The user may not know a block length is in play at all.
            throw new InvalidSettingException(ex.ParamName!, $"{ex.Message} ({BlockLength.Name} {block} is {DefaultSource(defaults, "block_length")})");
        }
        return options;
    }

    /// <summary>
    /// Refuses more steps than answer tokens. The sampler accepts them as the reference does, but a step past one token
    /// per step unmasks nothing and is skipped, so the run would report fewer steps than were asked for.
    /// </summary>
    public static void CheckStepsAtMostTokens(GenerationOptions options, Func<string, string> settingName)
    {
        if (options.CommitRule().FollowsSchedule && options.Steps > options.GenLength)
            throw new InvalidSettingException("steps", $"{settingName("steps")} {options.Steps} is more than {settingName("gen_length")} " +
                $"{options.GenLength}: a step unmasks at least one token, so {options.GenLength} steps (one token per step) is the most");
    }

    /// <summary>"the built-in default", or "the model's default (PATH)" when its generation_config.json sets <paramref name="setting"/>.</summary>
    public static string DefaultSource(SamplingDefaults defaults, string setting) =>
        defaults.FromFile.Contains(setting) ? $"the model's default ({defaults.SourcePath})" : "the built-in default";

    /// <summary>The command-line option of a reverse-process setting named as in the reference (gen_length -> --gen-length).</summary>
    public static string OptionName(string setting) => "--" + setting.Replace('_', '-');
}
