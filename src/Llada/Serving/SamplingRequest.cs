using Llada.Diffusion;

namespace Llada.Serving;

/// <summary>
/// The reverse-process knobs a chat or completion request may set (null: keep the default), in the names of the
/// reference <c>generate()</c>. <see cref="Resolve"/> turns them into <see cref="GenerationOptions"/>.
/// </summary>
public sealed record SamplingRequest
{
    /// <summary>max_tokens: the answer canvas, rounded up to a multiple of the block length.</summary>
    public int? MaxTokens { get; init; }
    /// <summary>steps: total denoising steps.</summary>
    public int? Steps { get; init; }
    /// <summary>block_length: semi-autoregressive block size.</summary>
    public int? BlockLength { get; init; }
    /// <summary>temperature: 0 is greedy.</summary>
    public double? Temperature { get; init; }
    /// <summary>cfg_scale: classifier-free guidance, 0 off.</summary>
    public double? CfgScale { get; init; }
    /// <summary>threshold: parallel decoding confidence threshold.</summary>
    public double? Threshold { get; init; }
    /// <summary>remasking: low_confidence, random or ar.</summary>
    public string? Remasking { get; init; }
    /// <summary>cache: approximate KV cache, none, prefix or dual.</summary>
    public string? Cache { get; init; }
    /// <summary>seed of the random draws.</summary>
    public int? Seed { get; init; }

    /// <summary>
    /// Options for this request on top of <paramref name="defaults"/>. gen_length is max_tokens rounded up to a
    /// multiple of the block length (the default block shrinks to fit a short canvas); unless given, steps keep the
    /// defaults' steps-per-token ratio, rounded up to a multiple of the number of blocks. Throws
    /// <see cref="InvalidSettingException"/> naming the request field at fault.
    /// </summary>
    public GenerationOptions Resolve(GenerationOptions defaults)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        int wanted = MaxTokens ?? defaults.GenLength;
        if (wanted < 1) throw new InvalidSettingException("max_tokens", $"max_tokens must be at least 1 (got {wanted})");
        if (BlockLength is < 1) throw new InvalidSettingException("block_length", $"block_length must be at least 1 (got {BlockLength})");
        string remasking = Remasking ?? (defaults.Remasking == Diffusion.Remasking.Random ? "random" : "low_confidence");
        bool ar = remasking == "ar";
        int block = ar ? 1 : BlockLength ?? Math.Min(defaults.BlockLength, wanted);
        int gen = checked((wanted + block - 1) / block * block);
        int blocks = gen / block;
        int steps = Steps ?? SamplingDefaults.ScaleSteps(defaults.Steps, defaults.GenLength, gen, blocks);
        var options = defaults with
        {
            GenLength = gen,
            BlockLength = block,
            Steps = steps,
            Temperature = Temperature ?? defaults.Temperature,
            CfgScale = CfgScale ?? defaults.CfgScale,
            Threshold = Threshold ?? defaults.Threshold,
            Seed = Seed ?? defaults.Seed,
            Cache = Cache is null ? defaults.Cache
                : KvCacheModeNames.TryParse(Cache, out var cache) ? cache : throw new InvalidSettingException("cache", KvCacheModeNames.UnknownMessage(Cache, "cache")),
            Remasking = remasking switch
            {
                "low_confidence" or "ar" => Diffusion.Remasking.LowConfidence,
                "random" => Diffusion.Remasking.Random,
                _ => throw new InvalidSettingException("remasking", $"remasking '{remasking}' is unknown; use low_confidence, random or ar"),
            },
        };
        if (ar) options = options.AsAutoregressive();
        options.ValidateSettings(); // the request's fields have the reference names
        return options;
    }
}
