using System.Text.Json;
using System.Text.Json.Nodes;
using Llada.Model;

namespace Llada.Tests.Model;

public class LladaConfigFileTests
{
    // The keys of the released LLaDA-8B config.json that this project reads (values from the model card / spec).
    private const string Llada8B = """
        {
          "activation_type": "silu", "alibi": false, "alibi_bias_max": 8.0, "architectures": ["LLaDAModelLM"],
          "attention_dropout": 0.0, "attention_layer_norm": false, "attention_layer_norm_with_affine": true,
          "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig", "AutoModel": "modeling_llada.LLaDAModelLM",
                       "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM"},
          "bias_for_layer_norm": false, "block_group_size": 1, "block_type": "llama", "d_model": 4096,
          "embedding_dropout": 0.0, "embedding_size": 126464, "eos_token_id": 126081, "flash_attention": false,
          "include_bias": false, "include_qkv_bias": false, "init_cutoff_factor": null, "init_device": "meta",
          "init_fn": "mitchell", "init_std": 0.02, "input_emb_norm": false, "layer_norm_type": "rms",
          "layer_norm_with_affine": true, "mask_token_id": 126336, "max_sequence_length": 4096, "mlp_hidden_size": 12288,
          "mlp_ratio": 4, "model_type": "llada", "multi_query_attention": null, "n_heads": 32, "n_kv_heads": 32,
          "n_layers": 32, "pad_token_id": 126081, "precision": "amp_bf16", "residual_dropout": 0.0, "rms_norm_eps": 1e-05,
          "rope": true, "rope_full_precision": true, "rope_theta": 500000.0, "scale_logits": false,
          "torch_dtype": "bfloat16", "transformers_version": "4.46.3", "use_cache": false, "vocab_size": 126464,
          "weight_tying": false
        }
        """;

    private static string With(Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(Llada8B)!.AsObject();
        edit(node);
        return node.ToJsonString();
    }

    [Fact]
    public void Parses_the_released_8B_config()
    {
        var c = LladaConfigFile.Parse(Llada8B);
        Assert.Equal((4096, 32, 32, 32, 12288), (c.DModel, c.NLayers, c.NHeads, c.NKvHeads, c.MlpHiddenSize));
        Assert.Equal((126464, 126464, 4096), (c.VocabSize, c.EmbeddingSize, c.MaxSequenceLength));
        Assert.Equal((500000.0, 1e-5), (c.RopeTheta, c.RmsNormEps));
        Assert.Equal((126336, 126081, 126081), (c.MaskTokenId, c.EosTokenId, c.PadTokenId));
        Assert.False(c.WeightTying);
        Assert.Equal(128, c.HeadDim);
        Assert.Equal("bfloat16", c.OtherKeys["torch_dtype"].GetString());
        Assert.False(c.OtherKeys.ContainsKey("d_model"));
    }

    [Fact]
    public void Defaults_follow_the_reference_where_keys_are_absent_or_null()
    {
        var c = LladaConfigFile.Parse(With(o =>
        {
            o.Remove("n_kv_heads");
            o.Remove("embedding_size");
            o["mlp_hidden_size"] = null;
            o["mlp_ratio"] = 3;
        }));
        Assert.Equal(32, c.NKvHeads);
        Assert.Equal(126464, c.EmbeddingSize);
        Assert.Equal(3 * 4096, c.MlpHiddenSize);

        var mq = LladaConfigFile.Parse(With(o => { o.Remove("n_kv_heads"); o["multi_query_attention"] = true; }));
        Assert.Equal(1, mq.NKvHeads);
        var tied = LladaConfigFile.Parse(With(o => o.Remove("weight_tying")));
        Assert.True(tied.WeightTying); // the reference default
    }

    [Theory]
    [InlineData("d_model")]
    [InlineData("n_layers")]
    [InlineData("n_heads")]
    [InlineData("vocab_size")]
    [InlineData("max_sequence_length")]
    [InlineData("mask_token_id")]
    public void A_missing_required_key_is_named(string key)
    {
        var ex = Assert.Throws<CheckpointFormatException>(() => LladaConfigFile.Parse(With(o => o.Remove(key)), "/m/config.json"));
        Assert.Equal(key, ex.TensorName);
        Assert.Equal("/m/config.json", ex.FilePath);
        Assert.Contains($"/m/config.json: '{key}': required key is missing", ex.Message);
    }

    [Theory]
    [InlineData("d_model", "\"4096\"", "32-bit integer")]
    [InlineData("n_heads", "32.5", "32-bit integer")]
    [InlineData("n_layers", "10000000000", "32-bit integer")]
    [InlineData("rope_theta", "\"big\"", "must be a number")]
    [InlineData("weight_tying", "0", "true or false")]
    [InlineData("activation_type", "1", "must be a string")]
    [InlineData("alibi", "\"no\"", "true or false")]
    public void A_key_of_the_wrong_type_is_named(string key, string json, string expected)
    {
        var ex = Assert.Throws<CheckpointFormatException>(() => LladaConfigFile.Parse(With(o => o[key] = JsonNode.Parse(json))));
        Assert.Equal(key, ex.TensorName);
        Assert.Contains(expected, ex.Message);
    }

    [Theory]
    [InlineData("n_heads", "31", "not divisible by n_heads")]
    [InlineData("n_kv_heads", "5", "not divisible by n_kv_heads")]
    [InlineData("d_model", "0", "must be positive")]
    [InlineData("mask_token_id", "126464", "outside the embedding table")]
    [InlineData("embedding_size", "1000", "smaller than vocab_size")]
    [InlineData("rms_norm_eps", "0", "positive finite")]
    public void Invalid_values_are_rejected(string key, string json, string expected)
    {
        var ex = Assert.Throws<CheckpointFormatException>(() => LladaConfigFile.Parse(With(o => o[key] = JsonNode.Parse(json))));
        Assert.IsNotType<UnsupportedArchitectureException>(ex);
        Assert.Contains(expected, ex.Message);
    }

    [Theory]
    [InlineData("activation_type", "\"swiglu\"")]
    [InlineData("activation_type", null)]
    [InlineData("layer_norm_type", "\"default\"")]
    [InlineData("layer_norm_type", null)]
    [InlineData("block_type", "\"sequential\"")]
    [InlineData("include_bias", "true")]
    [InlineData("rope", "false")]
    [InlineData("rope", null)]
    [InlineData("alibi", "true")]
    [InlineData("include_qkv_bias", "true")]
    [InlineData("attention_layer_norm", "true")]
    [InlineData("layer_norm_with_affine", "false")]
    [InlineData("scale_logits", "true")]
    [InlineData("clip_qkv", "8.0")]
    [InlineData("model_type", "\"llada_moe\"")]
    public void Unsupported_architectures_are_reported_as_such(string key, string? json)
    {
        string text = With(o =>
        {
            if (json is null) o.Remove(key);
            else o[key] = JsonNode.Parse(json);
        });
        var ex = Assert.Throws<UnsupportedArchitectureException>(() => LladaConfigFile.Parse(text));
        Assert.Equal(key, ex.TensorName);
        Assert.Contains("unsupported", ex.Message);
    }

    [Fact]
    public void Configs_built_in_code_compare_by_value()
    {
        Assert.Equal(TinyModel.Config(), TinyModel.Config());
        Assert.NotEqual(TinyModel.Config(), TinyModel.Config(weightTying: true));
    }

    [Fact]
    public void Malformed_json_is_reported_with_the_file()
    {
        Assert.Contains("/x/config.json", Assert.Throws<CheckpointFormatException>(() => LladaConfigFile.Parse("{\"d_model\":", "/x/config.json")).Message);
        Assert.Contains("JSON object", Assert.Throws<CheckpointFormatException>(() => LladaConfigFile.Parse("[1]")).Message);
        Assert.Contains("twice", Assert.Throws<CheckpointFormatException>(() => LladaConfigFile.Parse("{\"d_model\":1,\"d_model\":2}")).Message);
    }

    [Fact]
    public void Writing_and_reading_back_preserves_every_key()
    {
        var original = LladaConfigFile.Parse(Llada8B);
        string written = LladaConfigFile.ToJson(original);
        var reread = LladaConfigFile.Parse(written);
        Assert.Equal(original with { OtherKeys = reread.OtherKeys }, reread);

        using var a = JsonDocument.Parse(Llada8B);
        using var b = JsonDocument.Parse(written);
        var keysA = a.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetRawText());
        var keysB = b.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetRawText());
        Assert.Equal(keysA.Keys.Order(), keysB.Keys.Order());
        foreach (var (key, raw) in keysA)
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(raw), JsonNode.Parse(keysB[key])), $"{key}: {raw} vs {keysB[key]}");
        Assert.Equal(keysB.Keys.Order(StringComparer.Ordinal), keysB.Keys); // sorted like transformers writes
        Assert.Contains("\"rope_theta\": 500000.0", written);
    }

    [Fact]
    public void A_fresh_config_is_written_with_the_keys_the_reference_code_reads()
    {
        string json = LladaConfigFile.ToJson(TinyModel.Config());
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        Assert.Equal("llada", root.GetProperty("model_type").GetString());
        Assert.Equal("LLaDAModelLM", root.GetProperty("architectures")[0].GetString());
        Assert.Equal("silu", root.GetProperty("activation_type").GetString());
        Assert.Equal("rms", root.GetProperty("layer_norm_type").GetString());
        Assert.Equal("llama", root.GetProperty("block_type").GetString());
        Assert.False(root.GetProperty("include_bias").GetBoolean());
        Assert.True(root.GetProperty("rope").GetBoolean());
        Assert.False(root.GetProperty("attention_layer_norm").GetBoolean());
        Assert.False(root.GetProperty("alibi").GetBoolean());
        Assert.Equal(2, root.GetProperty("n_kv_heads").GetInt32());
        Assert.Equal(24, root.GetProperty("embedding_size").GetInt32());
        Assert.Equal(21, root.GetProperty("mask_token_id").GetInt32());
        var reread = LladaConfigFile.Parse(json);
        Assert.Equal(TinyModel.Config() with { OtherKeys = reread.OtherKeys }, reread);
    }
}
