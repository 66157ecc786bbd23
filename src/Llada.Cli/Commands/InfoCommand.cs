using System.CommandLine;
using System.Text.Json;
using System.Globalization;
using Llada.Diffusion;
using Llada.Model;
using Llada.Numerics.Native;

namespace Llada.Cli.Commands;

/// <summary>`llada info`: what a checkpoint is, how big, and what it needs in memory.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var model = ModelSource.ModelOption();
        var json = ModelSource.JsonOption();
        var command = new Command("info", "Show a model's architecture, parameter count, dtype, memory needs and sampling defaults " +
                                          "(its generation_config.json over the built-in ones, each marked with where it comes from).\n" +
                                          "Example: llada info --model ./LLaDA-8B-Instruct");
        command.Options.Add(model);
        command.Options.Add(json);
        CliAction.Set(command, (parse, ctx, _) =>
        {
            string dir = ModelSource.Resolve(parse.GetValue(model));
            using var checkpoint = LladaCheckpoint.Open(dir);
            var d = checkpoint.Describe();
            var c = d.Config;
            long kvBytesPerToken = 2L * c.NLayers * c.NKvHeads * c.HeadDim * sizeof(float);
            var moe = c.Moe;
            var sampling = SamplingDefaults.FromDirectory(dir);
            if (parse.GetValue(json))
            {
                ctx.Output.WriteLine(JsonSerializer.Serialize(new
                {
                    directory = d.Directory,
                    architecture = d.Architecture,
                    parameters = d.ParameterCount,
                    dtype = d.DTypeSummary,
                    q8_kernel = d.DTypeSummary.Contains("Q8_0") ? NativeKernels.Q8Kernel : null,
                    weight_bytes = d.WeightBytes,
                    bytes_on_disk = d.BytesOnDisk,
                    d_model = c.DModel,
                    n_layers = c.NLayers,
                    n_heads = c.NHeads,
                    n_kv_heads = c.NKvHeads,
                    head_dim = c.HeadDim,
                    mlp_hidden_size = c.MlpHiddenSize,
                    vocab_size = c.VocabSize,
                    embedding_size = c.EmbeddingSize,
                    max_sequence_length = c.MaxSequenceLength,
                    rope_theta = c.RopeTheta,
                    weight_tying = c.WeightTying,
                    mask_token_id = c.MaskTokenId,
                    eos_token_id = c.EosTokenId,
                    kv_bytes_per_token = kvBytesPerToken,
                    files = d.Files,
                    unexpected_tensors = d.UnexpectedTensors,
                    has_tokenizer = d.HasTokenizer,
                    sampling_defaults = new
                    {
                        gen_length = sampling.GenLength,
                        steps = sampling.StepsFor(sampling.GenLength, sampling.GenLength / Math.Min(sampling.BlockLength, sampling.GenLength)),
                        block_length = sampling.BlockLength,
                        temperature = sampling.Temperature,
                        cfg_scale = sampling.CfgScale,
                        remasking = SamplingDefaults.RemaskingName(sampling.Remasking),
                        file = sampling.SourcePath,
                        from_file = SettingNames.Where(sampling.FromFile.Contains).ToArray(),
                    },
                    active_parameters = d.ActiveParameterCount,
                    moe = moe is null ? null : new
                    {
                        num_experts = moe.NumExperts,
                        num_experts_per_tok = moe.ExpertsPerToken,
                        expert_intermediate_size = moe.ExpertIntermediateSize,
                        shared_expert_intermediate_size = moe.SharedExpertIntermediateSize,
                        norm_topk_prob = moe.NormTopKProb,
                        routed_scaling_factor = moe.RoutedScalingFactor,
                        qk_layernorm = moe.QkNorm,
                        moe_layers = moe.MoeLayerCount,
                    },
                }));
                return Task.FromResult(0);
            }
            var o = ctx.Output;
            o.WriteLine($"model          {d.Directory}");
            o.WriteLine($"architecture   {d.Architecture} ({(moe is null ? "dense" : "mixture-of-experts")} LLaDA mask predictor)");
            o.WriteLine($"parameters     {d.ParameterCount:N0} ({Units.Count(d.ParameterCount)})");
            if (moe is not null)
            {
                o.WriteLine($"active         {d.ActiveParameterCount:N0} ({Units.Count(d.ActiveParameterCount)}) per token " +
                            "(all but the input embedding and the unrouted experts)");
                o.WriteLine($"experts        {moe.NumExperts} per MoE layer, top-{moe.ExpertsPerToken} softmax routing " +
                            $"({(moe.NormTopKProb ? "renormalised" : "not renormalised")}" +
                            (moe.RoutedScalingFactor != 1 ? $", scaled by {moe.RoutedScalingFactor}" : "") +
                            $"), expert width {moe.ExpertIntermediateSize}" +
                            (moe.SharedExpertIntermediateSize > 0 ? $", shared expert width {moe.SharedExpertIntermediateSize}" : ", no shared expert"));
                o.WriteLine($"MoE layers     {moe.MoeLayerCount} of {c.NLayers}" +
                            (moe.MoeLayerCount < c.NLayers ? $" (dense layers: mlp {c.MlpHiddenSize})" : "") +
                            $"; QK-norm {(moe.QkNorm ? "on" : "off")}");
            }
            o.WriteLine($"dtype          {d.DTypeSummary}");
            if (d.DTypeSummary.Contains("Q8_0")) o.WriteLine($"q8 kernel      {NativeKernels.Q8Kernel}");
            o.WriteLine($"weights        {Units.Bytes(d.WeightBytes)} (memory-mapped; {Units.Bytes(d.BytesOnDisk)} on disk in {d.Files.Count} file(s))");
            o.WriteLine($"layers         {c.NLayers} x (d_model {c.DModel}, {c.NHeads} heads" +
                        (c.NKvHeads != c.NHeads ? $", {c.NKvHeads} kv heads (GQA)" : "") + $", head_dim {c.HeadDim}" +
                        (moe is null ? $", mlp {c.MlpHiddenSize})" : ")"));
            o.WriteLine($"vocabulary     {c.VocabSize} (embedding rows {c.EmbeddingSize}), weight tying {(c.WeightTying ? "on" : "off")}");
            o.WriteLine($"context        {c.MaxSequenceLength} tokens, rope_theta {c.RopeTheta}");
            o.WriteLine($"special ids    mask {c.MaskTokenId}, eos {c.EosTokenId}, pad {c.PadTokenId}");
            o.WriteLine($"activations    ~{Units.Bytes((long)c.MaxSequenceLength * (4L * c.DModel + 2L * c.DenseMlpWidth) * sizeof(float))} per sequence at full length; K/V {Units.Bytes(kvBytesPerToken)} per token");
            o.WriteLine($"tokenizer      {(d.HasTokenizer ? "tokenizer.json present" : "none (use token ids)")}");
            o.WriteLine($"sampling       {SamplingSummary(sampling)}");
            if (d.UnexpectedTensors.Count > 0)
                o.WriteLine($"warning        {d.UnexpectedTensors.Count} tensor(s) not used by the model, e.g. {d.UnexpectedTensors[0]}");
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>The settings <see cref="SamplingDefaults"/> covers, by their reference names.</summary>
    private static readonly string[] SettingNames = ["gen_length", "steps", "block_length", "temperature", "cfg_scale", "remasking"];

    /// <summary>
    /// "gen_length 64, steps 64, block_length 16, ... (block_length from DIR/generation_config.json; the rest built in)":
    /// the defaults a run without sampling options uses, and where each comes from.
    /// </summary>
    internal static string SamplingSummary(SamplingDefaults s)
    {
        int gen = s.GenLength, steps = s.StepsFor(gen, gen / Math.Min(s.BlockLength, gen));
        string values = string.Create(CultureInfo.InvariantCulture,
            $"gen_length {gen}, steps {steps}, block_length {s.BlockLength}, temperature {s.Temperature}, cfg_scale {s.CfgScale}, " +
            $"remasking {SamplingDefaults.RemaskingName(s.Remasking)}");
        string[] fromFile = SettingNames.Where(s.FromFile.Contains).ToArray();
        string source = s.SourcePath is null ? "all built in; no generation_config.json"
            : fromFile.Length == 0 ? $"all built in; {s.SourcePath} sets none of them"
            : fromFile.Length == SettingNames.Length ? $"all from {s.SourcePath}"
            : $"{string.Join(", ", fromFile)} from {s.SourcePath}; the rest built in";
        return $"{values} ({source})";
    }
}

/// <summary>Human-readable sizes.</summary>
internal static class Units
{
    public static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.00} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.0} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:0.0} KiB",
        _ => $"{bytes} B",
    };

    public static string Count(long n) => n switch
    {
        >= 1_000_000_000 => $"{n / 1e9:0.00}B",
        >= 1_000_000 => $"{n / 1e6:0.0}M",
        >= 1_000 => $"{n / 1e3:0.0}K",
        _ => n.ToString(),
    };
}
