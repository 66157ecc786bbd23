using System.CommandLine;
using System.Text.Json;
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
        var command = new Command("info", "Show a model's architecture, parameter count, dtype and memory needs.\n" +
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
            if (d.UnexpectedTensors.Count > 0)
                o.WriteLine($"warning        {d.UnexpectedTensors.Count} tensor(s) not used by the model, e.g. {d.UnexpectedTensors[0]}");
            return Task.FromResult(0);
        });
        return command;
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
