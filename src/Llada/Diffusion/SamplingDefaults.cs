using System.Text.Json;
using Llada.Model;

namespace Llada.Diffusion;

/// <summary>
/// The reverse-process settings used when the caller sets none: answer length, steps, block length, temperature,
/// classifier-free guidance and remasking. <see cref="BuiltIn"/> holds the paper's LLaDA-8B-Instruct choices; a
/// model folder may recommend its own in <c>generation_config.json</c> (<see cref="FromDirectory"/>), as Hugging Face
/// models do. Everywhere the precedence is: what the caller sets &gt; the model's file &gt; <see cref="BuiltIn"/>.
/// </summary>
/// <remarks>
/// generation_config.json keys read (every other key is ignored; Hugging Face files hold many): <c>max_new_tokens</c>
/// (or LLaDA's <c>gen_length</c>), <c>steps</c>, <c>block_length</c>, <c>temperature</c>, <c>cfg_scale</c>,
/// <c>remasking</c> (<c>low_confidence</c> or <c>random</c>), and <c>do_sample</c>: false means greedy whatever the
/// temperature, as in transformers.
/// </remarks>
public sealed record SamplingDefaults
{
    /// <summary>The model folder's file of recommended generation settings.</summary>
    public const string FileName = CheckpointWriter.GenerationConfigFileName;

    /// <summary>The built-in settings: 64 tokens, one step per token, blocks of 32, greedy, no guidance, low-confidence remasking.</summary>
    public static SamplingDefaults BuiltIn { get; } = new();

    /// <summary>gen_length: tokens in the answer canvas.</summary>
    public int GenLength { get; init; } = 64;

    /// <summary>steps at <see cref="GenLength"/> tokens; null is one step per token. Other lengths keep the same steps
    /// per token (<see cref="StepsFor"/>).</summary>
    public int? Steps { get; init; }

    /// <summary>block_length: semi-autoregressive block size (LLaDA-8B-Instruct: 32).</summary>
    public int BlockLength { get; init; } = 32;

    /// <summary>temperature: 0 is greedy.</summary>
    public double Temperature { get; init; }

    /// <summary>cfg_scale: classifier-free guidance, 0 off.</summary>
    public double CfgScale { get; init; }

    /// <summary>remasking rule.</summary>
    public Remasking Remasking { get; init; } = Remasking.LowConfidence;

    /// <summary>The generation_config.json the values were read from, or null when all are built in.</summary>
    public string? SourcePath { get; init; }

    /// <summary>Reference names (gen_length, steps, block_length, temperature, cfg_scale, remasking) of the settings
    /// <see cref="SourcePath"/> sets; the others are built in.</summary>
    public IReadOnlySet<string> FromFile { get; init; } = new HashSet<string>();

    /// <summary>Where a setting (by its reference name) comes from: <see cref="FileName"/> or "built-in".</summary>
    public string SourceOf(string setting) => FromFile.Contains(setting) ? FileName : "built-in";

    /// <summary>The lower-case name of a remasking rule (low_confidence, random), as the reference spells it.</summary>
    public static string RemaskingName(Remasking remasking) => remasking == Remasking.Random ? "random" : "low_confidence";

    /// <summary>
    /// The block length for a canvas of <paramref name="genLength"/> tokens when the caller chose none: the largest
    /// divisor of <paramref name="genLength"/> not above <see cref="BlockLength"/> (the whole canvas when it is shorter),
    /// so a fixed length such as a task file's always splits into equal blocks.
    /// </summary>
    public int FittedBlockLength(int genLength)
    {
        if (genLength < 1) return BlockLength;
        int block = Math.Min(BlockLength, genLength);
        while (genLength % block != 0) block--;
        return block;
    }

    /// <summary>
    /// Steps for <paramref name="genLength"/> tokens in <paramref name="blocks"/> blocks when the caller chose none: one
    /// per token, or <see cref="Steps"/> scaled to the same steps per token and rounded up to a multiple of the blocks.
    /// </summary>
    public int StepsFor(int genLength, int blocks) =>
        Steps is { } steps ? ScaleSteps(steps, GenLength, genLength, blocks) : genLength;

    /// <summary><paramref name="steps"/> at <paramref name="atLength"/> tokens rescaled to <paramref name="genLength"/>
    /// tokens (same steps per token, at least 1), rounded up to a multiple of <paramref name="blocks"/>.</summary>
    internal static int ScaleSteps(int steps, int atLength, int genLength, int blocks)
    {
        int scaled = steps == atLength ? genLength : Math.Max(1, (int)Math.Ceiling((double)steps * genLength / atLength));
        return blocks < 1 ? scaled : (scaled + blocks - 1) / blocks * blocks;
    }

    /// <summary>
    /// Options for <paramref name="genLength"/> tokens (default <see cref="GenLength"/>) with this model's end tokens:
    /// <see cref="FittedBlockLength"/> and <see cref="StepsFor"/> adapt the block and the steps to the length.
    /// </summary>
    public GenerationOptions ToOptions(int eosTokenId, int? endOfTurnTokenId, int? genLength = null)
    {
        int gen = genLength ?? GenLength;
        int block = FittedBlockLength(gen);
        return new GenerationOptions
        {
            GenLength = gen,
            BlockLength = block,
            Steps = StepsFor(gen, gen / Math.Max(1, block)),
            Temperature = Temperature,
            CfgScale = CfgScale,
            Remasking = Remasking,
            EosTokenId = eosTokenId,
            EndOfTurnTokenId = endOfTurnTokenId,
        };
    }

    /// <summary>
    /// The defaults of a model folder: its generation_config.json over <see cref="BuiltIn"/>, or <see cref="BuiltIn"/>
    /// when it has none. Throws <see cref="CheckpointFormatException"/> naming the file and key of a bad value.
    /// </summary>
    public static SamplingDefaults FromDirectory(string directory)
    {
        string path = Path.Combine(directory, FileName);
        return File.Exists(path) ? Parse(File.ReadAllBytes(path), path) : BuiltIn;
    }

    /// <summary>Parses generation_config.json bytes; <paramref name="sourcePath"/> names the file in errors and in
    /// <see cref="SourcePath"/>.</summary>
    public static SamplingDefaults Parse(ReadOnlyMemory<byte> utf8Json, string sourcePath = FileName)
    {
        var keys = LladaConfigFile.ReadKeys(utf8Json, sourcePath);
        var reader = new LladaConfigFile.KeyReader(keys, sourcePath);
        var set = new HashSet<string>(StringComparer.Ordinal);
        bool Has(string key) => keys.TryGetValue(key, out var v) && v.ValueKind != JsonValueKind.Null;
        void Fail(string key, string problem) => throw new CheckpointFormatException(sourcePath, key, problem);

        var d = BuiltIn;
        string? lengthKey = Has("max_new_tokens") ? "max_new_tokens" : Has("gen_length") ? "gen_length" : null;
        if (lengthKey is not null)
        {
            int gen = reader.RequiredInt(lengthKey);
            if (lengthKey == "max_new_tokens" && Has("gen_length") && reader.RequiredInt("gen_length") != gen)
                Fail("gen_length", $"{reader.RequiredInt("gen_length")} disagrees with max_new_tokens {gen}; both name the answer length, keep one");
            if (gen < 1) Fail(lengthKey, $"must be at least 1, found {gen}");
            d = d with { GenLength = gen };
            set.Add("gen_length");
        }
        if (Has("steps"))
        {
            int steps = reader.RequiredInt("steps");
            if (steps < 1) Fail("steps", $"must be at least 1, found {steps}");
            d = d with { Steps = steps };
            set.Add("steps");
        }
        if (Has("block_length"))
        {
            int block = reader.RequiredInt("block_length");
            if (block < 1) Fail("block_length", $"must be at least 1, found {block}");
            d = d with { BlockLength = block };
            set.Add("block_length");
        }
        if (Has("temperature") && reader.NullableBool("do_sample") != false)
        {
            double t = reader.Double("temperature", 0);
            if (t < 0) Fail("temperature", FormattableString.Invariant($"must be >= 0, found {t}"));
            d = d with { Temperature = t };
            set.Add("temperature");
        }
        if (Has("cfg_scale"))
        {
            double cfg = reader.Double("cfg_scale", 0);
            if (cfg < 0) Fail("cfg_scale", FormattableString.Invariant($"must be >= 0, found {cfg}"));
            d = d with { CfgScale = cfg };
            set.Add("cfg_scale");
        }
        if (Has("remasking"))
        {
            d = d with
            {
                Remasking = reader.String("remasking", "") switch
                {
                    "low_confidence" => Remasking.LowConfidence,
                    "random" => Remasking.Random,
                    var other => throw new CheckpointFormatException(sourcePath, "remasking", $"'{other}' is unknown; use low_confidence or random"),
                },
            };
            set.Add("remasking");
        }
        if (set.Count == 0) return BuiltIn with { SourcePath = sourcePath };

        // The file's own length must split into its blocks and steps, or every run without options would fail.
        int blockAtLength = Math.Min(d.BlockLength, d.GenLength), blocks = d.GenLength / blockAtLength;
        string length = lengthKey ?? "the built-in gen_length";
        if (d.GenLength % blockAtLength != 0)
            Fail("block_length", $"{d.BlockLength} does not divide {length} {d.GenLength} (the answer is split into blocks of equal length)");
        if (d.Steps is { } fileSteps && (fileSteps % blocks != 0 || fileSteps > d.GenLength))
            Fail("steps", $"{fileSteps} must be a multiple of the number of blocks, {blocks} ({length} {d.GenLength} / block_length " +
                $"{blockAtLength}), and at most {d.GenLength} (one token per step)");
        return d with { SourcePath = sourcePath, FromFile = set };
    }
}
