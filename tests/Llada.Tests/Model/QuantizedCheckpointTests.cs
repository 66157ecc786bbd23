using System.Text.Json;
using Llada.Model;
using Llada.Numerics;

namespace Llada.Tests.Model;

public class QuantizedCheckpointTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // Dimensions that are multiples of the 32-wide blocks; an untied head so the LM head is quantised too.
    private static LladaConfig Config() => TinyModel.Config() with { DModel = 64, MlpHiddenSize = 96, NHeads = 4, NKvHeads = 2 };

    private static float[] QuantizedValues(float[] values)
    {
        var q = new sbyte[values.Length];
        var d = new Half[values.Length / 32];
        var back = new float[values.Length];
        Q8Blocks.Quantize(values, q, d);
        Q8Blocks.Dequantize(q, d, back);
        return back;
    }

    [Fact]
    public void Q8_conversion_quantises_every_matrix_but_the_embedding_and_reads_back_block_by_block()
    {
        var config = Config();
        var weights = TinyModel.Weights(config, seed: 4);
        using var dir = new TempDir();
        Write.Checkpoint(dir.File("f32"), config, TinyModel.Tensors(weights, DType.F32));
        using (var source = LladaCheckpoint.Open(dir.File("f32")))
        {
            File.WriteAllText(dir.File("f32/tokenizer.json"), "{}"); // copied along
            CheckpointConversion.Write(source, dir.File("q8"), DType.Q8_0, cancellationToken: Ct);
        }

        using var q8 = LladaCheckpoint.Open(dir.File("q8"));
        Assert.Null(q8.DType); // a mix: Q8_0 matrices, float32 embedding
        Assert.True(File.Exists(dir.File("q8/tokenizer.json")));
        foreach (var (name, shape, values) in weights)
        {
            bool quantised = shape.Length == 2 && name != LladaTensorNames.Embedding;
            Assert.Equal(quantised ? "Q8_0" : "F32", q8.TensorDType(name));
            Assert.Equal(shape, q8.Tensor(name).Shape);
            Assert.Equal(quantised ? QuantizedValues(values) : values, q8.ReadSingles(name));
        }
        Assert.Equal(weights.Sum(w => (long)w.Values.Length), q8.ParameterCount);
        var head = q8.LmHead;
        Assert.Equal(DType.Q8_0, head.DType);
        Assert.Equal(QuantizedValues(weights[^1].Values)[2 * 64 + 40], head[2, 40]);
        Assert.Contains("Q8_0", q8.Describe().DTypeSummary);

        using (var configJson = JsonDocument.Parse(File.ReadAllText(dir.File("q8/config.json"))))
        {
            Assert.Equal("llada_q8_0", configJson.RootElement.GetProperty("quantization_config").GetProperty("quant_method").GetString());
            Assert.Equal("float32", configJson.RootElement.GetProperty("torch_dtype").GetString());
        }

        // Back to bf16: the dequantised values, and no quantization_config any more.
        CheckpointConversion.Write(q8, dir.File("bf16"), DType.BF16, cancellationToken: Ct);
        using var bf16 = LladaCheckpoint.Open(dir.File("bf16"));
        Assert.Equal(DType.BF16, bf16.DType);
        foreach (var (name, shape, values) in weights)
        {
            var expected = shape.Length == 2 && name != LladaTensorNames.Embedding ? QuantizedValues(values) : values;
            Assert.Equal(expected.Select(v => TinyModel.Stored(v, DType.BF16)), bf16.ReadSingles(name));
        }
        Assert.DoesNotContain("quantization_config", File.ReadAllText(dir.File("bf16/config.json")));
    }

    [Fact]
    public void A_q8_pair_split_across_shards_loads_and_keep_head_float_leaves_the_head()
    {
        var config = Config();
        var weights = TinyModel.Weights(config, seed: 5);
        using var dir = new TempDir();
        Write.Checkpoint(dir.File("f32"), config, TinyModel.Tensors(weights, DType.F32));
        using var source = LladaCheckpoint.Open(dir.File("f32"));
        CheckpointConversion.Write(source, dir.File("q8"), DType.Q8_0, keepHeadFloat: true, cancellationToken: Ct);
        using var q8 = LladaCheckpoint.Open(dir.File("q8"));
        Assert.Equal("F32", q8.TensorDType(LladaTensorNames.LmHead));

        // Re-shard the stored tensors so small that quants and scales of a matrix land in different files.
        var stored = q8.Files.SelectMany(f => f.Tensors.Select(t => NamedTensor.FromFile(f, t.Name))).OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        Write.Model(dir.File("sharded"), stored, 600);
        File.Copy(dir.File("q8/config.json"), dir.File("sharded/config.json"));
        using var sharded = LladaCheckpoint.Open(dir.File("sharded"));
        Assert.True(sharded.Files.Count > 10);
        foreach (var (name, _, _) in weights) Assert.Equal(q8.ReadSingles(name), sharded.ReadSingles(name));
    }

    [Fact]
    public void Q8_conversion_of_a_moe_model_keeps_its_embedding_and_with_keep_head_float_its_head()
    {
        using var dir = new TempDir();
        using (var source = LladaCheckpoint.Open(Llada.Tests.Golden.GoldenFixtures.Dir("tiny-moe-f32")))
            CheckpointConversion.Write(source, dir.File("q8"), DType.Q8_0, keepHeadFloat: true, cancellationToken: Ct);
        using var q8 = LladaCheckpoint.Open(dir.File("q8"));
        foreach (var (name, shape) in LladaTensorNames.Expected(q8.Config))
        {
            bool floatKept = shape.Length == 1 || name is "model.embed_tokens.weight" or "lm_head.weight";
            Assert.Equal(floatKept ? "F32" : "Q8_0", q8.TensorDType(name));
        }
    }

    [Fact]
    public void Malformed_q8_pairs_are_reported_by_name()
    {
        var config = Config();
        string q = LladaTensorNames.Block(0, "q_proj"), k = LladaTensorNames.Block(0, "k_proj"), v = LladaTensorNames.Block(1, "v_proj");
        string up = LladaTensorNames.Block(1, "up_proj"), down = LladaTensorNames.Block(0, "ff_out");
        var tensors = TinyModel.Tensors(TinyModel.Weights(config, seed: 6), DType.F32)
            .Where(t => t.Name != q && t.Name != k && t.Name != v && t.Name != up).ToList();
        // q: quants without scales; k: scales of the wrong shape; v: quants stored as U8; up: scales without quants;
        // down: both a float tensor and a Q8_0 pair.
        tensors.Add(NamedTensor.FromBytes(q + ".q8", "I8", [64, 64], new byte[64 * 64]));
        tensors.Add(NamedTensor.FromBytes(k + ".q8", "I8", [32, 64], new byte[32 * 64]));
        tensors.Add(NamedTensor.FromBytes(k + ".q8_scale", "F16", [32, 1], new byte[32 * 2]));
        tensors.Add(NamedTensor.FromBytes(v + ".q8", "U8", [32, 64], new byte[32 * 64]));
        tensors.Add(NamedTensor.FromBytes(v + ".q8_scale", "F16", [32, 2], new byte[32 * 2 * 2]));
        tensors.Add(NamedTensor.FromBytes(up + ".q8_scale", "F16", [96, 2], new byte[96 * 2 * 2]));
        tensors.Add(NamedTensor.FromBytes(down + ".q8", "I8", [64, 96], new byte[64 * 96]));
        tensors.Add(NamedTensor.FromBytes(down + ".q8_scale", "F16", [64, 3], new byte[64 * 3 * 2]));

        using var dir = new TempDir();
        Write.Model(dir.Path, tensors, 1L << 40);
        File.WriteAllText(dir.File("config.json"), LladaConfigFile.ToJson(config));
        var ex = Assert.Throws<CheckpointFormatException>(() => LladaCheckpoint.Open(dir.Path));
        Assert.Contains(ex.Problems, p => p.Contains($"quants tensor '{q}.q8' has no scales tensor '{q}.q8_scale'"));
        Assert.Contains(ex.Problems, p => p.Contains($"scales tensor '{k}.q8_scale' has shape [32, 1], expected [32, 2]"));
        Assert.Contains(ex.Problems, p => p.Contains($"quants tensor '{v}.q8' has dtype U8, expected I8"));
        Assert.Contains(ex.Problems, p => p.Contains($"scales tensor '{up}.q8_scale' has no quants tensor '{up}.q8'"));
        Assert.Contains(ex.Problems, p => p.Contains($"'{down}' is stored both as F32 and as Q8_0"));
        Assert.Contains(ex.Problems, p => p.Contains($"missing tensor '{q}'"));

        // The writer refuses the same tensors before writing anything.
        var wex = Assert.Throws<CheckpointFormatException>(() => Write.Checkpoint(dir.File("out"), config, tensors));
        Assert.Contains(wex.Problems, p => p.Contains($"quants tensor '{v}.q8' has dtype U8, expected I8"));
        Assert.False(Directory.Exists(dir.File("out")));
    }

    [Fact]
    public void A_q8_model_predicts_like_its_float_source_within_the_quantisation_noise()
    {
        var config = Config();
        var weights = TinyModel.Weights(config, seed: 8).Select(w => (w.Name, w.Shape, w.Shape.Length == 1 ? w.Values : w.Values.Select(x => x * 0.1f).ToArray())).ToList();
        using var dir = new TempDir();
        Write.Checkpoint(dir.File("f32"), config, TinyModel.Tensors(weights, DType.F32));
        using (var source = LladaCheckpoint.Open(dir.File("f32")))
            CheckpointConversion.Write(source, dir.File("q8"), DType.Q8_0, cancellationToken: Ct);
        int[] tokens = [1, 5, 9, config.MaskTokenId, 3, config.MaskTokenId, 7, 2];
        int[] positions = Enumerable.Range(0, tokens.Length).ToArray();
        float[] Logits(string model)
        {
            using var predictor = MaskPredictor.Load(model);
            var logits = new float[tokens.Length * config.EmbeddingSize];
            predictor.Forward(tokens, 1, tokens.Length, default, positions, logits, Ct);
            return logits;
        }
        float[] f32 = Logits(dir.File("f32")), q8 = Logits(dir.File("q8"));
        // 8-bit weights and activations: logits move by a few percent of their spread, never wholesale.
        double spread = f32.Max() - f32.Min(), worst = f32.Zip(q8, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst < 0.05 * spread, $"largest logit change {worst} vs spread {spread}");
        Assert.NotEqual(f32, q8);
    }
}
