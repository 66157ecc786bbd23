using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Llada.Training.Runs;

/// <summary>Which loss a run optimises.</summary>
public enum RunObjective
{
    /// <summary>Masked diffusion (Eq. 3 for pre-training, Eq. 5 for SFT), bidirectional attention.</summary>
    Mdm,
    /// <summary>Autoregressive next-token prediction with causal attention (the baseline).</summary>
    Ar,
}

/// <summary>A configuration file or preset that cannot be used; names the source and the key.</summary>
public sealed class RunConfigException(string source, string? key, string problem)
    : Exception(key is null ? $"{source}: {problem}" : $"{source}: '{key}' {problem}")
{
    /// <summary>File or preset the problem is in.</summary>
    public string ConfigSource { get; } = source;
    /// <summary>The offending key, when there is one.</summary>
    public string? Key { get; } = key;
}

/// <summary>
/// Everything that decides a training run except the data and the tokenizer: the model size (the vocabulary comes
/// from the tokenizer) and the optimiser. Built from a preset (<see cref="Tiny"/>, <see cref="Small"/>,
/// <see cref="Sft"/>) or a JSON file of snake_case keys (see <see cref="Parse"/>); JSON is also how a run records
/// its configuration, so <see cref="ToJson"/> and <see cref="Parse"/> round-trip.
/// </summary>
public sealed record RunConfig
{
    /// <summary>Name shown in logs (the preset or file name).</summary>
    public string Name { get; init; } = "custom";

    /// <summary>d_model.</summary>
    public int DModel { get; init; } = 256;
    /// <summary>n_layers.</summary>
    public int NLayers { get; init; } = 6;
    /// <summary>n_heads.</summary>
    public int NHeads { get; init; } = 4;
    /// <summary>n_kv_heads (fewer than n_heads: grouped-query attention).</summary>
    public int NKvHeads { get; init; } = 2;
    /// <summary>mlp_hidden_size (SwiGLU width).</summary>
    public int MlpHiddenSize { get; init; } = 704;
    /// <summary>Training sequence length; also the model's max_sequence_length.</summary>
    public int SeqLen { get; init; } = 256;
    /// <summary>Model vocabulary; null = the tokenizer's vocabulary size.</summary>
    public int? VocabSize { get; init; }
    /// <summary>rope_theta.</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>weight_tying (LM head shares the embedding).</summary>
    public bool WeightTying { get; init; }

    /// <summary>Loss.</summary>
    public RunObjective Objective { get; init; } = RunObjective.Mdm;
    /// <summary>num_experts: null for a dense model; set, the model is a LLaDA-MoE (saved in its layout).</summary>
    public int? NumExperts { get; init; }
    /// <summary>num_experts_per_tok (top-k) of a MoE model.</summary>
    public int ExpertsPerToken { get; init; } = 2;
    /// <summary>expert_intermediate_size (SwiGLU width of one expert); required with num_experts.</summary>
    public int? ExpertIntermediateSize { get; init; }
    /// <summary>norm_topk_prob: renormalise the top-k routing weights.</summary>
    public bool NormTopKProb { get; init; }
    /// <summary>first_k_dense_replace: this many first layers stay dense SwiGLU layers of width mlp_hidden_size.</summary>
    public int FirstKDenseReplace { get; init; }
    /// <summary>router_aux_loss_coef: weight of the load-balancing loss.</summary>
    public double RouterAuxLossCoef { get; init; } = 0.01;
    /// <summary>router_z_loss_coef: weight of the router z-loss (0 = off).</summary>
    public double RouterZLossCoef { get; init; }
    /// <summary>qk_layernorm: RMSNorm on q and k per head (LLaDA-MoE has it).</summary>
    public bool QkNorm { get; init; } = true;

    /// <summary>The MoE settings of this configuration, or null for a dense model.</summary>
    public Llada.Model.MoeConfig? CreateMoe() => NumExperts is not { } experts ? null : new Llada.Model.MoeConfig
    {
        NumExperts = experts,
        ExpertsPerToken = ExpertsPerToken,
        ExpertIntermediateSize = ExpertIntermediateSize ?? 0,
        NormTopKProb = NormTopKProb,
        RouterAuxLossCoef = RouterAuxLossCoef,
        RouterZLossCoef = RouterZLossCoef,
        QkNorm = QkNorm,
        MoeLayers = Enumerable.Range(0, NLayers).Select(i => i >= FirstKDenseReplace).ToArray(),
    };
    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>Rate the final decay heads for.</summary>
    public double MinLearningRate { get; init; }
    /// <summary>Linear warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 100;
    /// <summary>Share of the steps spent in the final linear decay (Warmup-Stable-Decay).</summary>
    public double DecayFraction { get; init; } = 0.1;
    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay { get; init; } = 0.1;
    /// <summary>AdamW beta1.</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>AdamW beta2.</summary>
    public double Beta2 { get; init; } = 0.95;
    /// <summary>Global gradient-norm clip (0 = off).</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Sequences per micro-batch.</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Micro-batches per optimiser step.</summary>
    public int GradAccumulation { get; init; } = 1;
    /// <summary>Total optimiser steps.</summary>
    public int Steps { get; init; } = 2000;
    /// <summary>Held-out evaluation every this many steps (0 = only at the end).</summary>
    public int EvalInterval { get; init; } = 200;
    /// <summary>Held-out micro-batches per evaluation.</summary>
    public int EvalBatches { get; init; } = 8;
    /// <summary>Checkpoint every this many steps (0 = only at the end and on cancellation).</summary>
    public int CheckpointInterval { get; init; } = 500;
    /// <summary>Seed of the initial weights, the data order and the masks.</summary>
    public ulong Seed { get; init; } = 1234;

    /// <summary>Preset `tiny`: d_model 256, 6 layers, 4 heads (2 KV heads), SwiGLU 704, 256 tokens; a few million
    /// parameters plus the embeddings, trainable on a laptop CPU in hours.</summary>
    public static RunConfig Tiny { get; } = new() { Name = "tiny" };

    /// <summary>Preset `small`: d_model 384, 8 layers, 6 heads (2 KV heads), SwiGLU 1024, 256 tokens.</summary>
    public static RunConfig Small { get; } = new()
    {
        Name = "small", DModel = 384, NLayers = 8, NHeads = 6, NKvHeads = 2, MlpHiddenSize = 1024,
        LearningRate = 6e-4, GradAccumulation = 2, Steps = 4000, WarmupSteps = 200, EvalInterval = 250,
    };

    /// <summary>Preset `sft` (optimiser only; the model comes from the pretrained directory): short warm-up, constant,
    /// linear decay over the last 10% (paper), 128-token pairs.</summary>
    public static RunConfig Sft { get; } = new()
    {
        Name = "sft", SeqLen = 128, LearningRate = 2e-4, WarmupSteps = 20, DecayFraction = 0.1, WeightDecay = 0.1,
        BatchSize = 16, Steps = 1000, EvalInterval = 100, CheckpointInterval = 250,
    };

    /// <summary>Names accepted by <see cref="Preset"/>.</summary>
    public static IReadOnlyList<string> PresetNames { get; } = ["tiny", "small", "sft"];

    /// <summary>The preset called <paramref name="name"/>, or null.</summary>
    public static RunConfig? Preset(string name) => name switch
    {
        "tiny" => Tiny,
        "small" => Small,
        "sft" => Sft,
        _ => null,
    };

    /// <summary>
    /// A preset name or the path of a JSON file. A file may start from a preset with "base": "tiny" and override
    /// keys; unknown keys and wrong types are errors.
    /// </summary>
    /// <exception cref="RunConfigException">Unknown preset, missing or malformed file, bad key or value.</exception>
    public static RunConfig Resolve(string presetOrPath, RunConfig? fallbackBase = null)
    {
        ArgumentNullException.ThrowIfNull(presetOrPath);
        if (Preset(presetOrPath) is { } preset) return preset;
        if (!presetOrPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && !File.Exists(presetOrPath))
            throw new RunConfigException(presetOrPath, null,
                $"is neither a preset ({string.Join(", ", PresetNames)}) nor a .json file");
        if (!File.Exists(presetOrPath)) throw new RunConfigException(Path.GetFullPath(presetOrPath), null, "file not found");
        byte[] bytes = File.ReadAllBytes(presetOrPath);
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw new RunConfigException(Path.GetFullPath(presetOrPath), null, "is not valid UTF-8");
        var config = Parse(Encoding.UTF8.GetString(bytes), Path.GetFullPath(presetOrPath), fallbackBase);
        return config.Name == "custom" ? config with { Name = Path.GetFileNameWithoutExtension(presetOrPath) } : config;
    }

    /// <summary>
    /// Parses a JSON object. Keys: name, base (a preset to start from), d_model, n_layers, n_heads, n_kv_heads,
    /// mlp_hidden_size, seq_len, vocab_size, rope_theta, weight_tying, objective ("mdm" or "ar"), lr, min_lr,
    /// warmup_steps, decay_fraction, weight_decay, beta1, beta2, max_grad_norm, batch_size, grad_accumulation, steps,
    /// eval_interval, eval_batches, checkpoint_interval, seed; for a LLaDA-MoE model num_experts, num_experts_per_tok,
    /// expert_intermediate_size, norm_topk_prob, first_k_dense_replace, router_aux_loss_coef, router_z_loss_coef,
    /// qk_layernorm. Missing keys keep the base's (or the default's) value.
    /// </summary>
    /// <exception cref="RunConfigException">Invalid JSON, unknown key, wrong type, or a value <see cref="Validate"/> rejects.</exception>
    public static RunConfig Parse(string json, string source = "run config", RunConfig? fallbackBase = null)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException ex)
        {
            throw new RunConfigException(source, null, $"is not valid JSON: {ex.Message}");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new RunConfigException(source, null, "must be a JSON object");
            var keys = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
                if (!keys.TryAdd(p.Name, p.Value)) throw new RunConfigException(source, p.Name, "appears twice");
            var unknown = keys.Keys.Where(k => !KnownKeys.Contains(k)).ToList();
            if (unknown.Count > 0)
                throw new RunConfigException(source, unknown[0], $"is not a known key (known: {string.Join(", ", KnownKeys)})");

            var r = new Reader(keys, source);
            RunConfig c = fallbackBase ?? new RunConfig();
            if (r.String("base") is { } baseName)
                c = Preset(baseName) ?? throw new RunConfigException(source, "base", $"must be one of {string.Join(", ", PresetNames)}, found \"{baseName}\"");
            c = c with
            {
                Name = r.String("name") ?? (keys.ContainsKey("base") ? c.Name : "custom"),
                DModel = r.Int("d_model") ?? c.DModel,
                NLayers = r.Int("n_layers") ?? c.NLayers,
                NHeads = r.Int("n_heads") ?? c.NHeads,
                NKvHeads = r.Int("n_kv_heads") ?? c.NKvHeads,
                MlpHiddenSize = r.Int("mlp_hidden_size") ?? c.MlpHiddenSize,
                SeqLen = r.Int("seq_len") ?? c.SeqLen,
                VocabSize = keys.ContainsKey("vocab_size") ? r.Int("vocab_size") : c.VocabSize,
                RopeTheta = r.Double("rope_theta") ?? c.RopeTheta,
                WeightTying = r.Bool("weight_tying") ?? c.WeightTying,
                Objective = r.String("objective") is { } o ? ParseObjective(o) ?? throw new RunConfigException(source, "objective", $"must be \"mdm\" or \"ar\", found \"{o}\"") : c.Objective,
                LearningRate = r.Double("lr") ?? c.LearningRate,
                MinLearningRate = r.Double("min_lr") ?? c.MinLearningRate,
                WarmupSteps = r.Int("warmup_steps") ?? c.WarmupSteps,
                DecayFraction = r.Double("decay_fraction") ?? c.DecayFraction,
                WeightDecay = r.Double("weight_decay") ?? c.WeightDecay,
                Beta1 = r.Double("beta1") ?? c.Beta1,
                Beta2 = r.Double("beta2") ?? c.Beta2,
                MaxGradNorm = r.Double("max_grad_norm") ?? c.MaxGradNorm,
                BatchSize = r.Int("batch_size") ?? c.BatchSize,
                GradAccumulation = r.Int("grad_accumulation") ?? c.GradAccumulation,
                Steps = r.Int("steps") ?? c.Steps,
                EvalInterval = r.Int("eval_interval") ?? c.EvalInterval,
                EvalBatches = r.Int("eval_batches") ?? c.EvalBatches,
                CheckpointInterval = r.Int("checkpoint_interval") ?? c.CheckpointInterval,
                Seed = r.ULong("seed") ?? c.Seed,
                NumExperts = keys.ContainsKey("num_experts") ? r.Int("num_experts") : c.NumExperts,
                ExpertsPerToken = r.Int("num_experts_per_tok") ?? c.ExpertsPerToken,
                ExpertIntermediateSize = r.Int("expert_intermediate_size") ?? c.ExpertIntermediateSize,
                NormTopKProb = r.Bool("norm_topk_prob") ?? c.NormTopKProb,
                FirstKDenseReplace = r.Int("first_k_dense_replace") ?? c.FirstKDenseReplace,
                RouterAuxLossCoef = r.Double("router_aux_loss_coef") ?? c.RouterAuxLossCoef,
                RouterZLossCoef = r.Double("router_z_loss_coef") ?? c.RouterZLossCoef,
                QkNorm = r.Bool("qk_layernorm") ?? c.QkNorm,
            };
            c.Validate(source);
            return c;
        }
    }

    /// <summary>"mdm" or "ar" (case-insensitive); null for anything else.</summary>
    public static RunObjective? ParseObjective(string text) => text.ToLowerInvariant() switch
    {
        "mdm" or "diffusion" => RunObjective.Mdm,
        "ar" or "autoregressive" => RunObjective.Ar,
        _ => null,
    };

    private static readonly string[] KnownKeys =
    [
        "name", "base", "d_model", "n_layers", "n_heads", "n_kv_heads", "mlp_hidden_size", "seq_len", "vocab_size",
        "rope_theta", "weight_tying", "objective", "lr", "min_lr", "warmup_steps", "decay_fraction", "weight_decay",
        "beta1", "beta2", "max_grad_norm", "batch_size", "grad_accumulation", "steps", "eval_interval", "eval_batches",
        "checkpoint_interval", "seed", "num_experts", "num_experts_per_tok", "expert_intermediate_size", "norm_topk_prob",
        "first_k_dense_replace", "router_aux_loss_coef", "router_z_loss_coef", "qk_layernorm",
    ];

    /// <summary>Throws <see cref="RunConfigException"/> naming the first value that cannot work.</summary>
    public void Validate(string source = "run config")
    {
        void Positive(string key, double value)
        {
            if (!(value > 0)) throw new RunConfigException(source, key, $"must be positive, found {value.ToString(CultureInfo.InvariantCulture)}");
        }
        void NonNegative(string key, double value)
        {
            if (!(value >= 0)) throw new RunConfigException(source, key, $"must not be negative, found {value.ToString(CultureInfo.InvariantCulture)}");
        }
        Positive("d_model", DModel); Positive("n_layers", NLayers); Positive("n_heads", NHeads); Positive("n_kv_heads", NKvHeads);
        Positive("mlp_hidden_size", MlpHiddenSize); Positive("seq_len", SeqLen); Positive("rope_theta", RopeTheta);
        if (VocabSize is { } v) Positive("vocab_size", v);
        if (DModel % NHeads != 0) throw new RunConfigException(source, "d_model", $"({DModel}) must be divisible by n_heads ({NHeads})");
        if (DModel / NHeads % 2 != 0) throw new RunConfigException(source, "n_heads", $"gives head_dim {DModel / NHeads}; RoPE needs an even head_dim");
        if (NHeads % NKvHeads != 0) throw new RunConfigException(source, "n_kv_heads", $"({NKvHeads}) must divide n_heads ({NHeads})");
        if (SeqLen < 2) throw new RunConfigException(source, "seq_len", $"must be at least 2, found {SeqLen}");
        Positive("lr", LearningRate); NonNegative("min_lr", MinLearningRate);
        if (MinLearningRate > LearningRate) throw new RunConfigException(source, "min_lr", $"({MinLearningRate}) exceeds lr ({LearningRate})");
        NonNegative("warmup_steps", WarmupSteps);
        if (DecayFraction is < 0 or > 1) throw new RunConfigException(source, "decay_fraction", $"must be in [0, 1], found {DecayFraction}");
        NonNegative("weight_decay", WeightDecay);
        if (Beta1 is < 0 or >= 1) throw new RunConfigException(source, "beta1", $"must be in [0, 1), found {Beta1}");
        if (Beta2 is < 0 or >= 1) throw new RunConfigException(source, "beta2", $"must be in [0, 1), found {Beta2}");
        NonNegative("max_grad_norm", MaxGradNorm);
        Positive("batch_size", BatchSize); Positive("grad_accumulation", GradAccumulation); Positive("steps", Steps);
        NonNegative("eval_interval", EvalInterval); NonNegative("eval_batches", EvalBatches); NonNegative("checkpoint_interval", CheckpointInterval);
        if (NumExperts is { } experts)
        {
            Positive("num_experts", experts);
            if (ExpertsPerToken < 1 || ExpertsPerToken > experts)
                throw new RunConfigException(source, "num_experts_per_tok", $"must be in 1..num_experts ({experts}), found {ExpertsPerToken}");
            if (ExpertIntermediateSize is not > 0)
                throw new RunConfigException(source, "expert_intermediate_size", $"must be a positive integer with num_experts, found {ExpertIntermediateSize?.ToString() ?? "nothing"}");
            if (FirstKDenseReplace < 0 || FirstKDenseReplace > NLayers)
                throw new RunConfigException(source, "first_k_dense_replace", $"must be in 0..n_layers ({NLayers}), found {FirstKDenseReplace}");
            NonNegative("router_aux_loss_coef", RouterAuxLossCoef);
            NonNegative("router_z_loss_coef", RouterZLossCoef);
        }
        long decayStart = DecayStart(Steps);
        if (WarmupSteps > decayStart)
        {
            // Say both ways out: fewer warm-up steps, or a run long enough for this warm-up.
            long enough = WarmupSteps;
            while (DecayStart(enough) < WarmupSteps && enough < 1000L * WarmupSteps) enough++;
            string longer = DecayStart(enough) >= WarmupSteps ? $" or raise steps to at least {enough}" : "";
            throw new RunConfigException(source, "warmup_steps",
                $"({WarmupSteps}) runs into the decay, which starts at step {decayStart} of {Steps}; lower warmup_steps to at most {decayStart}{longer}");
        }
    }

    private long DecayStart(long steps) => steps - (long)Math.Round(DecayFraction * steps);

    /// <summary>The Warmup-Stable-Decay schedule of this configuration.</summary>
    public LearningRateSchedule CreateSchedule() =>
        new WarmupStableDecay(LearningRate, WarmupSteps, Steps, DecayFraction, MinLearningRate);

    /// <summary>The AdamW options of this configuration.</summary>
    public AdamWOptions CreateOptimizerOptions() => new() { Beta1 = Beta1, Beta2 = Beta2, WeightDecay = WeightDecay };

    /// <summary>Tokens one optimiser step consumes.</summary>
    public long TokensPerStep => (long)BatchSize * GradAccumulation * SeqLen;

    /// <summary>This configuration as JSON accepted by <see cref="Parse"/> (every key written).</summary>
    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("name", Name);
            w.WriteNumber("d_model", DModel); w.WriteNumber("n_layers", NLayers); w.WriteNumber("n_heads", NHeads);
            w.WriteNumber("n_kv_heads", NKvHeads); w.WriteNumber("mlp_hidden_size", MlpHiddenSize); w.WriteNumber("seq_len", SeqLen);
            if (VocabSize is { } v) w.WriteNumber("vocab_size", v); else w.WriteNull("vocab_size");
            w.WriteNumber("rope_theta", RopeTheta); w.WriteBoolean("weight_tying", WeightTying);
            w.WriteString("objective", Objective == RunObjective.Mdm ? "mdm" : "ar");
            w.WriteNumber("lr", LearningRate); w.WriteNumber("min_lr", MinLearningRate); w.WriteNumber("warmup_steps", WarmupSteps);
            w.WriteNumber("decay_fraction", DecayFraction); w.WriteNumber("weight_decay", WeightDecay);
            w.WriteNumber("beta1", Beta1); w.WriteNumber("beta2", Beta2); w.WriteNumber("max_grad_norm", MaxGradNorm);
            w.WriteNumber("batch_size", BatchSize); w.WriteNumber("grad_accumulation", GradAccumulation); w.WriteNumber("steps", Steps);
            w.WriteNumber("eval_interval", EvalInterval); w.WriteNumber("eval_batches", EvalBatches);
            w.WriteNumber("checkpoint_interval", CheckpointInterval); w.WriteNumber("seed", Seed);
            if (NumExperts is { } experts)
            {
                w.WriteNumber("num_experts", experts); w.WriteNumber("num_experts_per_tok", ExpertsPerToken);
                w.WriteNumber("expert_intermediate_size", ExpertIntermediateSize ?? 0); w.WriteBoolean("norm_topk_prob", NormTopKProb);
                w.WriteNumber("first_k_dense_replace", FirstKDenseReplace); w.WriteNumber("router_aux_loss_coef", RouterAuxLossCoef);
                w.WriteNumber("router_z_loss_coef", RouterZLossCoef); w.WriteBoolean("qk_layernorm", QkNorm);
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Typed access with errors naming the key.</summary>
    private readonly struct Reader(Dictionary<string, JsonElement> keys, string source)
    {
        private bool TryGet(string key, out JsonElement value) =>
            keys.TryGetValue(key, out value) && value.ValueKind != JsonValueKind.Null;

        public int? Int(string key) =>
            !TryGet(key, out var v) ? null
            : v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i
            : throw new RunConfigException(source, key, $"must be an integer, found {Show(v)}");

        public ulong? ULong(string key) =>
            !TryGet(key, out var v) ? null
            : v.ValueKind == JsonValueKind.Number && v.TryGetUInt64(out ulong u) ? u
            : throw new RunConfigException(source, key, $"must be a non-negative integer, found {Show(v)}");

        public double? Double(string key) =>
            !TryGet(key, out var v) ? null
            : v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d) ? d
            : throw new RunConfigException(source, key, $"must be a number, found {Show(v)}");

        public bool? Bool(string key) =>
            !TryGet(key, out var v) ? null
            : v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new RunConfigException(source, key, $"must be true or false, found {Show(v)}"),
            };

        public string? String(string key) =>
            !TryGet(key, out var v) ? null
            : v.ValueKind == JsonValueKind.String ? v.GetString()
            : throw new RunConfigException(source, key, $"must be a string, found {Show(v)}");

        private static string Show(JsonElement v)
        {
            string text = v.GetRawText();
            return text.Length > 40 ? text[..40] + "..." : text;
        }
    }
}
