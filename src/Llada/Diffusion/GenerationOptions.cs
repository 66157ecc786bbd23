using Llada.Model;

namespace Llada.Diffusion;

/// <summary>
/// Settings of the reverse process, named after the reference <c>generate()</c> arguments.
/// <see cref="Validate"/> checks them against a predictor and the prompts.
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>gen_length: number of tokens generated after the prompt (the answer canvas).</summary>
    public required int GenLength { get; init; }

    /// <summary>steps: total sampling steps, split evenly over the blocks. Unused by the parallel-decoding rules
    /// (<see cref="Threshold"/>, <see cref="Factor"/>), whose blocks run until they have no masks.</summary>
    public required int Steps { get; init; }

    /// <summary>block_length: <see cref="GenLength"/> is pure diffusion, smaller is semi-autoregressive.</summary>
    public required int BlockLength { get; init; }

    /// <summary>Temperature of the candidate sampling; 0 takes the argmax.</summary>
    public double Temperature { get; init; }

    /// <summary>cfg_scale: classifier-free guidance strength; 0 disables it.</summary>
    public double CfgScale { get; init; }

    /// <summary>Which rule orders the candidates of a step.</summary>
    public Remasking Remasking { get; init; } = Remasking.LowConfidence;

    /// <summary>logits_eos_inf: the EOS logit is set to -inf before choosing candidates.</summary>
    public bool LogitsEosInf { get; init; }

    /// <summary>confidence_eos_eot_inf: EOS and end-of-turn candidates get confidence -inf, so they are committed
    /// only when nothing else is left (at every temperature, for both tokens).</summary>
    public bool ConfidenceEosEotInf { get; init; }

    /// <summary>End-of-text token id (eos_token_id).</summary>
    public required int EosTokenId { get; init; }

    /// <summary>End-of-turn token id (&lt;|eot_id|&gt; for chat models), or null.</summary>
    public int? EndOfTurnTokenId { get; init; }

    /// <summary>Token placed left of shorter prompts in a batch (hidden by the key mask). Null: <see cref="EosTokenId"/>.</summary>
    public int? PadTokenId { get; init; }

    /// <summary>Seed of every random draw; the same seed gives the same output on any thread count.</summary>
    public int Seed { get; init; }

    /// <summary>Parallel decoding (Fast-dLLM, beyond the paper): commit every candidate with confidence at least
    /// this, and at least one per step. Range (0, 1]. Needs <see cref="Remasking.LowConfidence"/>.</summary>
    public double? Threshold { get; init; }

    /// <summary>Parallel decoding (Fast-dLLM, beyond the paper): factor rule, see <see cref="FactorCommit"/>.
    /// Positive. Needs <see cref="Remasking.LowConfidence"/>.</summary>
    public double? Factor { get; init; }

    /// <summary>Approximate KV cache (Fast-dLLM, beyond the paper): reuse keys and values computed at the first step of
    /// each block in its later steps. Needs a predictor implementing <see cref="IKvCachePredictor"/>. Changes results
    /// (the cached keys and values are stale once tokens are committed) in exchange for cheaper steps.</summary>
    public KvCacheMode Cache { get; init; } = KvCacheMode.None;

    /// <summary>
    /// Beyond the paper, off by default: as soon as a row's first EOS or end-of-turn token is committed with no mask
    /// before it, its text answer is fixed (committed tokens never change, and the answer is cut there), so every
    /// still-masked position of that row is filled with EOS and no more steps run for it. The text answer is the
    /// one the same settings give without early exit; only the uncut canvas after the answer differs (the reference
    /// keeps sampling there and may put non-EOS tokens after an EOS).
    /// </summary>
    public bool EarlyExit { get; init; }

    /// <summary>Number of blocks, gen_length / block_length.</summary>
    public int Blocks => GenLength / BlockLength;

    /// <summary>The autoregressive extreme as a schedule: blocks of one token, one step each, left to right.</summary>
    public GenerationOptions AsAutoregressive() =>
        this with { BlockLength = 1, Steps = GenLength, Threshold = null, Factor = null };

    /// <summary>The commit rule these options select.</summary>
    public ICommitRule CommitRule() =>
        Threshold is { } t ? new ThresholdCommit(t) : Factor is { } f ? new FactorCommit(f) : ScheduledCommit.Instance;

    /// <summary>The remasking rule these options select.</summary>
    public IRemaskingRule RemaskingRule() => Remasking switch
    {
        Remasking.LowConfidence => LowConfidenceRemasking.Instance,
        Remasking.Random => RandomRemasking.Instance,
        _ => throw new ArgumentOutOfRangeException(nameof(Remasking), Remasking, "unknown remasking rule"),
    };

    /// <summary>
    /// Throws <see cref="ArgumentException"/> (an <see cref="InvalidSettingException"/> for a setting) naming the first
    /// problem: lengths that do not divide, a canvas longer than the model accepts, token ids outside the vocabulary,
    /// or out-of-range settings.
    /// </summary>
    /// <param name="predictor">The model the options will run on.</param>
    /// <param name="prompts">The prompts of the batch.</param>
    /// <param name="settingName">How the caller spells a setting in messages, given its reference name (gen_length,
    /// block_length, steps, temperature, cfg_scale, remasking, threshold, factor, cache), e.g. "--gen-length" on a
    /// command line; null keeps the reference names. <see cref="ArgumentException.ParamName"/> is always the reference
    /// name.</param>
    public void Validate(IMaskPredictor predictor, IReadOnlyList<int[]> prompts, Func<string, string>? settingName = null)
    {
        ArgumentNullException.ThrowIfNull(predictor);
        ArgumentNullException.ThrowIfNull(prompts);
        ValidateSettings(settingName);
        string N(string setting) => settingName?.Invoke(setting) ?? setting;
        if (Cache != KvCacheMode.None && predictor is not IKvCachePredictor)
            Fail("cache", $"{N("cache")} {KvCacheModeNames.Name(Cache)} needs a predictor with a KV cache; {predictor.GetType().Name} has none (use {N("cache")} none)");
        CheckId("eos_token_id", EosTokenId, predictor);
        if (EndOfTurnTokenId is { } eot) CheckId("end-of-turn token id", eot, predictor);
        if (PadTokenId is { } pad) CheckId("pad token id", pad, predictor);

        int vocab = predictor.VocabSize;
        if (prompts.Count == 0) Bad("at least one prompt is needed");
        for (int r = 0; r < prompts.Count; r++)
        {
            int[] prompt = prompts[r] ?? throw new ArgumentException($"prompt {r} is null");
            if ((long)prompt.Length + GenLength > predictor.MaxSequenceLength)
                Fail("gen_length", $"prompt {r} ({prompt.Length} tokens) + {N("gen_length")} {GenLength} = {prompt.Length + GenLength} exceeds the model's max_sequence_length {predictor.MaxSequenceLength}");
            for (int i = 0; i < prompt.Length; i++)
            {
                if ((uint)prompt[i] >= (uint)vocab) Bad($"prompt {r} token {i} is {prompt[i]}, outside the vocabulary [0, {vocab})");
                if (prompt[i] == predictor.MaskTokenId)
                    Bad($"prompt {r} token {i} is the mask token {prompt[i]}; the reverse process only fills the generated canvas");
            }
        }

        static void CheckId(string name, int id, IMaskPredictor p)
        {
            if ((uint)id >= (uint)p.VocabSize) Bad($"{name} {id} is outside the vocabulary [0, {p.VocabSize})");
            if (id == p.MaskTokenId) Bad($"{name} {id} is the mask token");
        }
    }

    /// <summary>
    /// The checks of <see cref="Validate"/> that need no model or prompt: lengths and steps that split into blocks
    /// (the reference's rule: block_length divides gen_length, the number of blocks divides steps), and settings in
    /// range. More steps than tokens are allowed as in the reference; the steps that would commit nothing are skipped. Messages suggest the nearest valid
    /// values. Throws <see cref="InvalidSettingException"/> naming the setting at fault.
    /// </summary>
    /// <param name="settingName">How the caller spells a setting, as for <see cref="Validate"/>.</param>
    public void ValidateSettings(Func<string, string>? settingName = null)
    {
        string N(string setting) => settingName?.Invoke(setting) ?? setting;
        if (GenLength < 1) Fail("gen_length", $"{N("gen_length")} must be at least 1 (got {GenLength})");
        if (BlockLength < 1) Fail("block_length", $"{N("block_length")} must be at least 1 (got {BlockLength})");
        if (GenLength % BlockLength != 0)
            Fail("gen_length", $"{N("gen_length")} {GenLength} is not a multiple of {N("block_length")} {BlockLength} (the answer is split into " +
                $"blocks of equal length): use {N("gen_length")} {Either(Multiples(GenLength, BlockLength))}, or {N("block_length")} " +
                $"{Either(Divisors(GenLength, BlockLength))}");
        bool scheduled = Threshold is null && Factor is null;
        if (scheduled)
        {
            if (Steps < 1) Fail("steps", $"{N("steps")} must be at least 1 (got {Steps})");
            if (Steps % Blocks != 0)
                Fail("steps", $"{N("steps")} {Steps} is not a multiple of the number of blocks, {Blocks} ({N("gen_length")} {GenLength} / " +
                    $"{N("block_length")} {BlockLength}; each block gets the same steps): use {N("steps")} {Either(Multiples(Steps, Blocks))}");
        }
        if (!double.IsFinite(Temperature) || Temperature < 0)
            Fail("temperature", $"{N("temperature")} must be finite and >= 0 (got {Temperature})");
        if (!double.IsFinite(CfgScale) || CfgScale < 0) Fail("cfg_scale", $"{N("cfg_scale")} must be finite and >= 0 (got {CfgScale})");
        if (!Enum.IsDefined(Remasking)) Fail("remasking", $"unknown remasking rule {(int)Remasking}");
        if (Threshold is not null && Factor is not null) Fail("factor", $"set at most one of {N("threshold")} and {N("factor")}");
        if (Threshold is { } t && !(t > 0 && t <= 1)) Fail("threshold", $"{N("threshold")} must be in (0, 1] (got {t})");
        if (Factor is { } f && !(f > 0 && double.IsFinite(f))) Fail("factor", $"{N("factor")} must be positive and finite (got {f})");
        if (!Enum.IsDefined(Cache)) Fail("cache", $"unknown cache mode {(int)Cache}");
        if (!scheduled && Remasking != Remasking.LowConfidence)
            Fail(Threshold is null ? "factor" : "threshold",
                $"{N("threshold")} and {N("factor")} compare model confidences; they need {N("remasking")} low_confidence");
    }

    /// <summary>The positive multiples of <paramref name="of"/> nearest <paramref name="value"/>, below and above.</summary>
    private static int[] Multiples(int value, int of)
    {
        int below = value / of * of;
        return below > 0 ? [below, below + of] : [of];
    }

    /// <summary>The divisors of <paramref name="value"/> nearest <paramref name="near"/>, below and above.</summary>
    private static int[] Divisors(int value, int near)
    {
        int below = Math.Min(near, value);
        while (value % below != 0) below--;
        int above = near;
        while (above <= value && value % above != 0) above++;
        return above <= value && above != below ? [below, above] : [below];
    }

    private static string Either(int[] values) => string.Join(" or ", values);

    private static void Bad(string message) => throw new ArgumentException(message);

    private static void Fail(string setting, string message) => throw new InvalidSettingException(setting, message);
}
