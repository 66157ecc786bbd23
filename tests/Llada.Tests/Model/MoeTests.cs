using System.Text.Json.Nodes;
using Llada.Model;
using Llada.Numerics;
using Llada.Tests.Cli;
using Llada.Tests.Golden;

namespace Llada.Tests.Model;

public class MoeTests
{
    // The LLaDA-MoE-7B-A1B config.json keys this project reads (values from LLADA_SPEC.md section 7).
    private const string Moe7B = """
        {
          "architectures": ["LLaDAMoEModelLM"], "model_type": "lladamoe", "hidden_size": 2048, "num_hidden_layers": 16,
          "num_attention_heads": 16, "num_key_value_heads": 16, "dense_intermediate_size": 8192,
          "expert_intermediate_size": 1024, "shared_expert_intermediate_size": null, "num_experts": 64,
          "num_experts_per_tok": 8, "norm_topk_prob": null, "moe_router_score_function": "softmax",
          "moe_router_enable_expert_bias": false, "qk_layernorm": true, "hidden_act": "silu", "attention_bias": false,
          "clip_qkv": null, "partial_rotary_factor": 1, "rope_scaling": null, "rope_theta": 50000.0, "rms_norm_eps": 1e-05,
          "max_position_embeddings": 8192, "tie_word_embeddings": false, "vocab_size": 157184, "mask_token_id": 156895,
          "eos_token_id": 156892, "pad_token_id": 156892, "router_aux_loss_coef": 0.01, "torch_dtype": "bfloat16"
        }
        """;

    private static string With(Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(Moe7B)!.AsObject();
        edit(node);
        return node.ToJsonString();
    }

    [Fact]
    public void Parses_the_LLaDA_MoE_7B_A1B_config()
    {
        var c = LladaConfigFile.Parse(Moe7B);
        var m = c.Moe!;
        Assert.Equal((2048, 16, 16, 16, 128), (c.DModel, c.NLayers, c.NHeads, c.NKvHeads, c.HeadDim));
        Assert.Equal((157184, 8192, 50000.0), (c.VocabSize, c.MaxSequenceLength, c.RopeTheta));
        Assert.Equal((156895, 156892), (c.MaskTokenId, c.EosTokenId));
        Assert.Equal((64, 8, 1024, 0), (m.NumExperts, m.ExpertsPerToken, m.ExpertIntermediateSize, m.SharedExpertIntermediateSize));
        Assert.False(m.NormTopKProb);
        Assert.True(m.QkNorm);
        Assert.Equal(16, m.MoeLayerCount);
        Assert.False(c.WeightTying);
    }

    [Fact]
    public void The_7B_A1B_shape_has_about_7B_parameters_of_which_about_1_4B_are_active()
    {
        var c = LladaConfigFile.Parse(Moe7B);
        long total = LladaTensorNames.Expected(c).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));
        long active = LladaTensorNames.ActiveParameterCount(c);
        Assert.InRange(total, 7.0e9, 7.5e9);
        Assert.InRange(active, 1.35e9, 1.45e9);
        // Independently: attention + top-8 experts + router + norms per layer, plus ln and the LM head.
        long d = 2048, perLayer = 4 * d * d + 8 * 3 * d * 1024 + 64 * d + 2 * d + 2 * 128;
        Assert.Equal(16 * perLayer + d + 157184 * d, active);
    }

    [Fact]
    public void The_synthetic_7B_A1B_shape_is_the_released_config()
    {
        var released = LladaConfigFile.Parse(Moe7B);
        var synthetic = LladaConfigFile.Parse(LladaConfigFile.ToJson(SyntheticCheckpoint.LladaMoe7BA1B()));
        Assert.Equal(released.Moe! with { MoeLayers = synthetic.Moe!.MoeLayers }, synthetic.Moe);
        Assert.Equal(released.Moe.MoeLayers, synthetic.Moe.MoeLayers);
        Assert.Equal(released with { Moe = null, OtherKeys = synthetic.OtherKeys }, synthetic with { Moe = null });
    }

    [Fact]
    public void Writing_and_rereading_a_MoE_config_keeps_every_value()
    {
        var original = LladaConfigFile.Parse(With(o => { o["first_k_dense_replace"] = 2; o["shared_expert_intermediate_size"] = 512; o["norm_topk_prob"] = true; }));
        var reread = LladaConfigFile.Parse(LladaConfigFile.ToJson(original));
        Assert.Equal(original.Moe! with { MoeLayers = reread.Moe!.MoeLayers }, reread.Moe);
        Assert.Equal([false, false, .. Enumerable.Repeat(true, 14)], reread.Moe.MoeLayers);
        Assert.Equal(original with { Moe = null, OtherKeys = reread.OtherKeys }, reread with { Moe = null });
    }

    [Theory]
    [InlineData("num_experts_per_tok", "65", "num_experts_per_tok")]
    [InlineData("moe_layer_freq", "[1,1]", "moe_layer_freq")]
    [InlineData("moe_layer_freq", "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,2]", "moe_layer_freq")]
    [InlineData("expert_intermediate_size", "0", "expert_intermediate_size")]
    [InlineData("num_attention_heads", "15", "num_attention_heads")]
    [InlineData("mask_token_id", "null", "mask_token_id")]
    [InlineData("num_experts", "\"64\"", "num_experts")]
    public void Invalid_MoE_values_are_reported_with_the_key_name(string key, string json, string named)
    {
        var ex = Assert.Throws<CheckpointFormatException>(() => LladaConfigFile.Parse(With(o => o[key] = JsonNode.Parse(json))));
        Assert.Contains($"'{named}'", ex.Message);
    }

    [Fact]
    public void First_k_dense_replace_makes_the_first_layers_dense_and_must_agree_with_moe_layer_freq()
    {
        var c = LladaConfigFile.Parse(With(o => o["first_k_dense_replace"] = 1));
        Assert.Equal([false, .. Enumerable.Repeat(true, 15)], c.Moe!.MoeLayers);
        Assert.Contains("dense_intermediate_size", Assert.Throws<CheckpointFormatException>(() => LladaConfigFile.Parse(With(o =>
        {
            o["first_k_dense_replace"] = 1;
            o.Remove("dense_intermediate_size");
        }))).Message);
        Assert.Contains("moe_layer_freq", Assert.Throws<CheckpointFormatException>(() => LladaConfigFile.Parse(With(o =>
        {
            o["first_k_dense_replace"] = 1;
            o["moe_layer_freq"] = JsonNode.Parse("[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]");
        }))).Message);
    }

    [Fact]
    public void Dense_MLP_buffers_are_sized_only_when_some_layer_is_dense()
    {
        // The 7B-A1B config states dense_intermediate_size 8192 although every layer is MoE.
        Assert.Equal(0, LladaConfigFile.Parse(Moe7B).DenseMlpWidth);
        Assert.Equal(8192, LladaConfigFile.Parse(With(o => o["first_k_dense_replace"] = 1)).DenseMlpWidth);
        Assert.Equal(2816, SyntheticCheckpoint.Config(1024, 8, 16, 2816, 32000).DenseMlpWidth);
    }

    [Theory]
    // tiny-moe-f32: every layer MoE (stated dense width 96 unused), d_model 64, 128 positions: 128 x 4 x 64 floats.
    [InlineData("tiny-moe-f32", "~128.0 KiB per sequence")]
    // tiny-moe-mixed-bf16: layer 0 dense of width 96: 128 x (4 x 64 + 2 x 96) floats.
    [InlineData("tiny-moe-mixed-bf16", "~224.0 KiB per sequence")]
    public async Task Info_counts_the_dense_MLP_activations_only_when_a_layer_is_dense(string fixture, string expected)
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("info", "--model", GoldenFixtures.Dir(fixture));
        Assert.True(exit == 0, stderr);
        Assert.Contains($"activations    {expected}", stdout);
    }

    [Theory]
    [InlineData("moe_router_score_function", "\"sigmoid\"")]
    [InlineData("moe_router_enable_expert_bias", "true")]
    [InlineData("rope_scaling", "{\"type\":\"linear\",\"factor\":2}")]
    [InlineData("hidden_act", "\"gelu\"")]
    public void Unsupported_MoE_variants_are_named(string key, string json)
    {
        var ex = Assert.Throws<UnsupportedArchitectureException>(() => LladaConfigFile.Parse(With(o => o[key] = JsonNode.Parse(json))));
        Assert.Contains(key, ex.Message);
    }

    [Fact]
    public void Top_k_routing_picks_the_most_probable_experts_without_renormalising_unless_asked()
    {
        float[] probs = [0.1f, 0.4f, 0.05f, 0.3f, 0.15f];
        var config = new MoeConfig { NumExperts = 5, ExpertsPerToken = 2, ExpertIntermediateSize = 1, MoeLayers = [true] };
        int[] experts = new int[2];
        float[] weights = new float[2];
        ExpertRouting.SelectTopK(probs, config, experts, weights);
        Assert.Equal([1, 3], experts);
        Assert.Equal([0.4f, 0.3f], weights);
        ExpertRouting.SelectTopK(probs, config with { NormTopKProb = true, RoutedScalingFactor = 2 }, experts, weights);
        Assert.Equal(2 * 0.4 / 0.7, weights[0], 6);
        Assert.Equal(2 * 0.3 / 0.7, weights[1], 6);
    }

    [Theory]
    [InlineData("tiny-moe-f32")]
    [InlineData("tiny-moe-mixed-bf16")]
    public void Sparse_execution_equals_running_every_expert_on_every_token(string fixture)
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir(fixture));
        int[] tokens = [3, 17, 42, 8, model.MaskTokenId, model.MaskTokenId, 5, 11, 60, model.MaskTokenId];
        int[] all = Enumerable.Range(0, tokens.Length).ToArray();
        var sparse = new float[tokens.Length * model.VocabSize];
        var dense = new float[sparse.Length];
        model.Forward(tokens, 1, tokens.Length, default, all, sparse, TestContext.Current.CancellationToken);
        model.RunAllExperts = true;
        model.Forward(tokens, 1, tokens.Length, default, all, dense, TestContext.Current.CancellationToken);
        for (int i = 0; i < sparse.Length; i++)
            Assert.True(Math.Abs(sparse[i] - dense[i]) <= 1e-5f * (1 + Math.Abs(dense[i])), $"logit {i}: {sparse[i]} vs {dense[i]}");
    }

    [Fact]
    public void Experts_that_receive_no_token_are_not_evaluated()
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir("tiny-moe-f32")); // 2 MoE layers, 8 experts, top-2
        model.Forward([5], 1, 1, default, [0], new float[model.VocabSize], TestContext.Current.CancellationToken);
        Assert.Equal(2 * 2, model.ExpertEvaluations); // one token: 2 experts in each of 2 layers
        model.RunAllExperts = true;
        model.Forward([5], 1, 1, default, [0], new float[model.VocabSize], TestContext.Current.CancellationToken);
        Assert.Equal(4 + 2 * 8, model.ExpertEvaluations);
    }

    [Fact]
    public void A_synthetic_MoE_checkpoint_round_trips_through_the_writer_and_loader()
    {
        using var dir = new TempDir();
        var config = SyntheticCheckpoint.MoeConfig(32, 2, 4, experts: 4, topK: 2, expertFf: 16, vocab: 50, maxSeq: 64);
        SyntheticCheckpoint.Write(dir.Path, config, DType.BF16, seed: 3, TestContext.Current.CancellationToken);
        using var model = MaskPredictor.Load(dir.Path);
        Assert.Equal(config.Moe!.NumExperts, model.Config.Moe!.NumExperts);
        Assert.Equal(LladaTensorNames.Expected(config).Count, model.Checkpoint.Files.Sum(f => f.Tensors.Count));
        Assert.True(model.Checkpoint.Contains(MoeTensorNames.Expert(1, 3, "down_proj")));
        var logits = new float[3 * model.VocabSize];
        model.Forward([1, 2, 49], 1, 3, default, [0, 1, 2], logits, TestContext.Current.CancellationToken);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public async Task Info_shows_the_experts_and_active_parameters()
    {
        var (exit, stdout, stderr) = await CliTestHost.Run("info", "--model", GoldenFixtures.Dir("tiny-moe-mixed-bf16"));
        Assert.True(exit == 0, stderr);
        Assert.Contains("mixture-of-experts", stdout);
        Assert.Contains("6 per MoE layer, top-3", stdout);
        Assert.Contains("renormalised, scaled by 1.5", stdout);
        Assert.Contains("shared expert width 48", stdout);
        Assert.Contains("MoE layers     2 of 3", stdout);
        var (_, json, _) = await CliTestHost.Run("info", "--model", GoldenFixtures.Dir("tiny-moe-f32"), "--json");
        var j = CliTestHost.Json(json);
        Assert.Equal(8, j.GetProperty("moe").GetProperty("num_experts").GetInt32());
        // 2 layers x 6 of 8 experts of 3 x 32 x 64 unrouted, and the untied 128 x 64 embedding.
        Assert.Equal(j.GetProperty("parameters").GetInt64() - 2 * 6 * 3 * 32 * 64 - 128 * 64, j.GetProperty("active_parameters").GetInt64());
    }
}
