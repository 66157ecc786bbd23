using System.Text.Json;
using System.Text.Json.Nodes;
using Llada.Model;
using Llada.Numerics;

namespace Llada.Tests.Model;

public class LladaCheckpointTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "checkpoint", name);

    [Fact]
    public void Opens_the_torch_written_sharded_fixture()
    {
        using var ckpt = LladaCheckpoint.Open(Fixture("tiny-llada"));
        var c = ckpt.Config;
        Assert.Equal((8, 2, 2, 1, 12, 16), (c.DModel, c.NLayers, c.NHeads, c.NKvHeads, c.MlpHiddenSize, c.EmbeddingSize));
        Assert.Equal((15, 14, 500000.0), (c.MaskTokenId, c.EosTokenId, c.RopeTheta));
        Assert.Equal(2, ckpt.Files.Count);
        Assert.Equal(DType.BF16, ckpt.DType);
        Assert.Empty(ckpt.UnexpectedTensors);
        Assert.NotNull(ckpt.TokenizerJsonPath);
        Assert.Null(ckpt.TokenizerConfigPath);

        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixture("tiny-llada"), "expected.json")));
        foreach (var entry in expected.RootElement.EnumerateObject())
        {
            var m = ckpt.Matrix(entry.Name);
            var bits = entry.Value.GetProperty("stored_bits").EnumerateArray().Select(e => (ushort)e.GetInt32()).ToArray();
            for (int i = 0; i < bits.Length; i++)
                Assert.Equal(DTypes.BF16ToSingle(bits[i]), m[i / m.Cols, i % m.Cols]);
        }
        var layer = ckpt.Layer(1);
        Assert.Equal((4, 8), (layer.KProj.Rows, layer.KProj.Cols)); // n_kv_heads * head_dim = 1 * 4
        Assert.Equal((12, 8), (layer.UpProj.Rows, layer.UpProj.Cols));
        Assert.Equal((8, 12), (layer.FfOut.Rows, layer.FfOut.Cols));
        Assert.Equal((1, 8), (layer.AttnNorm.Rows, layer.AttnNorm.Cols));
        Assert.Equal(ckpt.ReadSingles(LladaTensorNames.LmHead)[5], ckpt.LmHead[0, 5]);

        long perLayer = 8 + 64 + 32 + 32 + 64 + 8 + 96 + 96 + 96;
        long parameters = 16 * 8 + 2 * perLayer + 8 + 16 * 8;
        Assert.Equal(parameters, ckpt.ParameterCount);
        var info = ckpt.Describe();
        Assert.Equal("LLaDAModelLM", info.Architecture);
        Assert.Equal(parameters, info.ParameterCount);
        Assert.Equal("BF16", info.DTypeSummary);
        Assert.Equal(parameters * 2, info.WeightBytes);
        Assert.Equal(ckpt.Files.Sum(f => new FileInfo(f.Path).Length), info.BytesOnDisk);
        Assert.True(info.HasTokenizer);
    }

    [Theory]
    [InlineData(DType.F32, 1L << 40)]
    [InlineData(DType.BF16, 1L << 40)]
    [InlineData(DType.F16, 1L << 40)]
    [InlineData(DType.BF16, 700L)]
    public void Written_checkpoints_read_back_with_the_same_values(DType dtype, long maxShardBytes)
    {
        var config = TinyModel.Config();
        var weights = TinyModel.Weights(config, seed: (int)dtype + 1);
        using var dir = new TempDir();
        string model = dir.File("model");
        Write.Checkpoint(model, config, TinyModel.Tensors(weights, dtype), new CheckpointWriteOptions { MaxShardBytes = maxShardBytes });

        using var ckpt = LladaCheckpoint.Open(model);
        Assert.Equal(config with { OtherKeys = ckpt.Config.OtherKeys }, ckpt.Config);
        Assert.Equal(dtype, ckpt.DType);
        bool sharded = maxShardBytes < 1000;
        Assert.Equal(sharded, File.Exists(Path.Combine(model, SafetensorsWriter.IndexFileName)));
        Assert.Equal(!sharded, File.Exists(Path.Combine(model, SafetensorsWriter.SingleFileName)));
        if (sharded) Assert.True(ckpt.Files.Count > 3);
        foreach (var (name, shape, values) in weights)
        {
            Assert.Equal(shape, ckpt.Tensor(name).Shape);
            Assert.Equal(values.Select(v => TinyModel.Stored(v, dtype)), ckpt.ReadSingles(name));
        }
        var q = ckpt.Layer(1).QProj;
        var qValues = weights.Single(w => w.Name == LladaTensorNames.Block(1, "q_proj")).Values;
        Assert.Equal(TinyModel.Stored(qValues[3 * 8 + 5], dtype), q[3, 5]);
        Assert.Equal(TinyModel.Stored(weights[^1].Values[0], dtype), ckpt.LmHead[0, 0]);

        using var configJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(model, "config.json")));
        Assert.Equal(dtype switch { DType.F32 => "float32", DType.BF16 => "bfloat16", _ => "float16" },
            configJson.RootElement.GetProperty("torch_dtype").GetString());
        Assert.Equal(ckpt.Files.Sum(f => new FileInfo(f.Path).Length), ckpt.BytesOnDisk);
        Assert.Equal(weights.Sum(w => (long)w.Values.Length), ckpt.ParameterCount);
        Assert.Single(Directory.GetFileSystemEntries(dir.Path)); // no temporary directory left behind
    }

    [Fact]
    public void Weight_tying_uses_the_embedding_as_the_head()
    {
        var config = TinyModel.Config(weightTying: true);
        var weights = TinyModel.Weights(config, seed: 3);
        Assert.DoesNotContain(weights, w => w.Name == LladaTensorNames.LmHead);
        using var dir = new TempDir();
        Write.Checkpoint(dir.File("m"), config, TinyModel.Tensors(weights, DType.F32));
        using var ckpt = LladaCheckpoint.Open(dir.File("m"));
        unsafe
        {
            Assert.True(ckpt.LmHead.Data == ckpt.Embedding.Data);
        }
        Assert.Equal(weights.Sum(w => (long)w.Values.Length), ckpt.ParameterCount);
    }

    [Fact]
    public void Shape_validation_lists_every_problem_and_warns_about_extras()
    {
        var config = TinyModel.Config();
        var tensors = TinyModel.Tensors(TinyModel.Weights(config, seed: 9), DType.F32)
            .Where(t => t.Name != LladaTensorNames.Block(1, "k_proj") && t.Name != LladaTensorNames.FinalNorm)
            .Select(t => t.Name == LladaTensorNames.Block(0, "q_proj")
                ? NamedTensor.FromSingles(t.Name, DType.F32, [8, 4], new float[32])
                : t.Name == LladaTensorNames.Block(0, "up_proj")
                    ? NamedTensor.FromBytes(t.Name, "I32", [12, 8], new byte[12 * 8 * 4])
                    : t)
            .Append(NamedTensor.FromSingles("model.transformer.extra.weight", DType.F32, [2], new float[2]))
            .ToList();

        using var dir = new TempDir();
        Write.Model(dir.Path, tensors, 1L << 40);
        File.WriteAllText(dir.File("config.json"), LladaConfigFile.ToJson(config));
        var ex = Assert.Throws<CheckpointFormatException>(() => LladaCheckpoint.Open(dir.Path));
        Assert.Equal(5, ex.Problems.Count); // the header line plus four defects
        Assert.Contains(ex.Problems, p => p.Contains("missing tensor 'model.transformer.blocks.1.k_proj.weight' (expected shape [4, 8])"));
        Assert.Contains(ex.Problems, p => p.Contains("missing tensor 'model.transformer.ln_f.weight'"));
        Assert.Contains(ex.Problems, p => p.Contains("'model.transformer.blocks.0.q_proj.weight' has shape [8, 4], expected [8, 8]"));
        Assert.Contains(ex.Problems, p => p.Contains("blocks.0.up_proj.weight") && p.Contains("dtype I32"));
        Assert.DoesNotContain(ex.Problems, p => p.Contains("extra"));

        // With the defects repaired the extra tensor is only a warning.
        Write.Model(dir.Path, TinyModel.Tensors(TinyModel.Weights(config, 9), DType.F32)
            .Append(NamedTensor.FromSingles("model.transformer.extra.weight", DType.F32, [2], new float[2])).ToList(), 1L << 40);
        using var ckpt = LladaCheckpoint.Open(dir.Path);
        Assert.Equal(["model.transformer.extra.weight"], ckpt.UnexpectedTensors);
    }

    [Fact]
    public void The_writer_refuses_wrong_tensors_before_writing_anything()
    {
        var config = TinyModel.Config();
        var tensors = TinyModel.Tensors(TinyModel.Weights(config, seed: 2), DType.BF16);
        using var dir = new TempDir();
        string model = dir.File("m");
        var bad = tensors.Skip(1).Append(NamedTensor.FromSingles("stray", DType.F32, [1], new float[1])).ToList();
        var ex = Assert.Throws<CheckpointFormatException>(() => Write.Checkpoint(model, config, bad));
        Assert.Contains(ex.Problems, p => p.Contains("missing tensor 'model.transformer.wte.weight'"));
        Assert.Contains(ex.Problems, p => p.Contains("'stray' is not part of the model"));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));

        Write.Checkpoint(model, config, tensors);
        Assert.Throws<IOException>(() => Write.Checkpoint(model, config, tensors));
        Assert.Throws<UnsupportedArchitectureException>(() =>
            Write.Checkpoint(dir.File("n"), config with { ActivationType = "gelu" }, tensors));
    }

    [Fact]
    public void Overwrite_replaces_the_model_and_copies_tokenizer_files()
    {
        var config = TinyModel.Config();
        using var dir = new TempDir();
        string source = dir.File("tok");
        Directory.CreateDirectory(source);
        File.WriteAllText(Path.Combine(source, "tokenizer.json"), "{\"model\":{}}");
        File.WriteAllText(Path.Combine(source, "special_tokens_map.json"), "{}");
        string model = dir.File("m");
        Write.Checkpoint(model, config, TinyModel.Tensors(TinyModel.Weights(config, 1), DType.F32));
        File.WriteAllText(Path.Combine(model, "stale.txt"), "old");

        var weights = TinyModel.Weights(config, 2);
        Write.Checkpoint(model, config, TinyModel.Tensors(weights, DType.F16), new CheckpointWriteOptions
        {
            Overwrite = true,
            TokenizerSourceDirectory = source,
            ExtraFiles = new Dictionary<string, string> { ["tokenizer_config.json"] = "{\"chat_template\":\"x\"}" },
        });

        Assert.False(File.Exists(Path.Combine(model, "stale.txt")));
        Assert.Equal("{\"model\":{}}", File.ReadAllText(Path.Combine(model, "tokenizer.json")));
        using var ckpt = LladaCheckpoint.Open(model);
        Assert.Equal(DType.F16, ckpt.DType);
        Assert.NotNull(ckpt.TokenizerConfigPath);
        Assert.NotNull(ckpt.SpecialTokensMapPath);
        Assert.Equal(TinyModel.Stored(weights[0].Values[7], DType.F16), ckpt.Embedding[0, 7]);
        Assert.Equal(["m", "tok"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void Index_defects_are_reported()
    {
        var config = TinyModel.Config();
        using var dir = new TempDir();
        string model = dir.File("m");
        Write.Checkpoint(model, config, TinyModel.Tensors(TinyModel.Weights(config, 4), DType.F32),
            new CheckpointWriteOptions { MaxShardBytes = 2000 });
        string indexPath = Path.Combine(model, SafetensorsWriter.IndexFileName);
        string original = File.ReadAllText(indexPath);

        void Edit(Action<JsonObject> edit)
        {
            var node = JsonNode.Parse(original)!.AsObject();
            edit(node["weight_map"]!.AsObject());
            File.WriteAllText(indexPath, node.ToJsonString());
        }

        Edit(map => map[LladaTensorNames.FinalNorm] = "../escape.safetensors");
        Assert.Contains("plain file name", Assert.Throws<CheckpointFormatException>(() => LladaCheckpoint.Open(model)).Message);

        Edit(map => map[LladaTensorNames.FinalNorm] = "model-00009-of-00009.safetensors");
        Assert.Contains("does not exist", Assert.Throws<CheckpointFormatException>(() => LladaCheckpoint.Open(model)).Message);

        Edit(map => map[LladaTensorNames.FinalNorm] = "model-00001-of-00" + original.Split("-of-00")[1][..3] + ".safetensors");
        var ex = Assert.Throws<CheckpointFormatException>(() => LladaCheckpoint.Open(model));
        Assert.Contains("ln_f.weight", ex.Message);

        File.WriteAllText(indexPath, "{\"weight_map\": [1]}");
        Assert.Equal(indexPath, Assert.Throws<CheckpointFormatException>(() => LladaCheckpoint.Open(model)).FilePath);

        File.Delete(indexPath);
        Assert.Throws<FileNotFoundException>(() => LladaCheckpoint.Open(model));
    }
}
