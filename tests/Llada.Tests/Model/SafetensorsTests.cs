using System.Runtime.InteropServices;
using System.Text.Json;
using Llada.Model;
using Llada.Numerics;

namespace Llada.Tests.Model;

public class SafetensorsTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "checkpoint", name);

    private static byte[] F32Bytes(params float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    // Byte vectors from the reference implementation's own serialization tests.
    private static readonly byte[] ReferenceAttn0 =
    [
        64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
        116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
        58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
        101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
        0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ];

    private static readonly byte[] ReferenceAlignedAttn0 =
    [
        72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
        121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
        91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
        115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
        32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
        160, 64,
    ];

    private static readonly byte[] ReferenceEmptyWithMetadata =
    [
        40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
        95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
        116, 34, 125, 125, 32, 32, 32, 32, 32,
    ];

    [Fact]
    public void Writer_output_is_byte_identical_to_the_reference_implementation()
    {
        using var dir = new TempDir();
        var data = F32Bytes(0, 1, 2, 3, 4, 5);

        Write.File(dir.File("a.safetensors"), [NamedTensor.FromBytes("attn.0", "F32", [1, 2, 3], data)]);
        Assert.Equal(ReferenceAttn0, File.ReadAllBytes(dir.File("a.safetensors")));

        Write.File(dir.File("b.safetensors"), [NamedTensor.FromBytes("attn0", "F32", [1, 1, 2, 3], data)]);
        Assert.Equal(ReferenceAlignedAttn0, File.ReadAllBytes(dir.File("b.safetensors")));

        Write.File(dir.File("c.safetensors"), [], new Dictionary<string, string> { ["framework"] = "pt" });
        Assert.Equal(ReferenceEmptyWithMetadata, File.ReadAllBytes(dir.File("c.safetensors")));

        Write.File(dir.File("d.safetensors"), []);
        Assert.Equal([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32], File.ReadAllBytes(dir.File("d.safetensors")));
    }

    [Fact]
    public void Reader_parses_reference_implementation_bytes()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("a.safetensors"), ReferenceAlignedAttn0);
        File.WriteAllBytes(dir.File("c.safetensors"), ReferenceEmptyWithMetadata);

        using (var file = SafetensorsFile.Open(dir.File("a.safetensors")))
        {
            var info = Assert.Single(file.Tensors);
            Assert.Equal("attn0", info.Name);
            Assert.Equal("F32", info.DTypeName);
            Assert.Equal([1L, 1, 2, 3], info.Shape);
            Assert.Equal(8 + 72, info.Offset);
            Assert.Equal(24, info.ByteLength);
            Assert.Equal([0f, 1, 2, 3, 4, 5], file.ReadSingles("attn0"));
        }
        using (var file = SafetensorsFile.Open(dir.File("c.safetensors")))
        {
            Assert.Empty(file.Tensors);
            Assert.Equal("pt", file.Metadata["framework"]);
        }
    }

    [Fact]
    public void Reads_the_torch_written_fixture_bit_for_bit()
    {
        using var expectedDoc = JsonDocument.Parse(File.ReadAllText(Fixture("mixed.expected.json")));
        using var file = SafetensorsFile.Open(Fixture("mixed.safetensors"));
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(5, file.Tensors.Count);

        foreach (var entry in expectedDoc.RootElement.EnumerateObject())
        {
            var info = file.GetTensor(entry.Name);
            Assert.Equal(entry.Value.GetProperty("dtype").GetString(), info.DTypeName);
            Assert.Equal(entry.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()), info.Shape);
            var bits = entry.Value.GetProperty("stored_bits").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var bytes = file.GetBytes(entry.Name);
            for (int i = 0; i < bits.Length; i++)
            {
                long actual = info.DTypeName switch
                {
                    "F32" => MemoryMarshal.Read<uint>(bytes[(4 * i)..]),
                    "I64" => MemoryMarshal.Read<long>(bytes[(8 * i)..]),
                    _ => MemoryMarshal.Read<ushort>(bytes[(2 * i)..]),
                };
                Assert.Equal(bits[i], actual);
            }
        }

        var bf16 = file.GetMatrix("b.bf16");
        Assert.Equal((4, 3, DType.BF16), (bf16.Rows, bf16.Cols, bf16.DType));
        Assert.Equal(-2.5f, bf16[1, 0]);
        Assert.Equal(float.PositiveInfinity, bf16[1, 1]); // float32 max rounds up past the largest bf16
        var f16 = file.GetMatrix("c.f16");
        Assert.Equal(2048f, f16[0, 1]); // 2049 ties to even
        var ex = Assert.Throws<CheckpointFormatException>(() => file.GetMatrix("d.i64"));
        Assert.Contains("I64", ex.Message);
        Assert.Equal("d.i64", ex.TensorName);
        Assert.Throws<CheckpointFormatException>(() => file.GetMatrix("no.such"));
    }

    [Fact]
    public void Writer_reproduces_the_torch_fixture_from_float32_sources()
    {
        using var expectedDoc = JsonDocument.Parse(File.ReadAllText(Fixture("mixed.expected.json")));
        var tensors = new List<NamedTensor>();
        foreach (var entry in expectedDoc.RootElement.EnumerateObject())
        {
            string dtype = entry.Value.GetProperty("dtype").GetString()!;
            long[] shape = entry.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            if (dtype == "I64")
            {
                var ints = entry.Value.GetProperty("stored_bits").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                tensors.Add(NamedTensor.FromBytes(entry.Name, "I64", shape, MemoryMarshal.AsBytes(ints.AsSpan()).ToArray()));
                continue;
            }
            var source = entry.Value.GetProperty("source_bits").EnumerateArray()
                .Select(e => BitConverter.UInt32BitsToSingle(e.GetUInt32())).ToArray();
            SafetensorsDTypes.TryToWeightDType(dtype, out var target);
            tensors.Add(NamedTensor.FromSingles(entry.Name, target, shape, source));
        }

        using var dir = new TempDir();
        Write.File(dir.File("mixed.safetensors"), tensors, SafetensorsWriter.PyTorchMetadata);
        Assert.Equal(File.ReadAllBytes(Fixture("mixed.safetensors")), File.ReadAllBytes(dir.File("mixed.safetensors")));
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    public void Round_trips_float32_values_through_each_dtype(DType dtype)
    {
        var random = new Random(42);
        var matrix = Enumerable.Range(0, 7 * 33).Select(_ => (float)(random.NextDouble() * 20 - 10)).ToArray();
        var vector = Enumerable.Range(0, 33).Select(_ => (float)random.NextDouble()).ToArray();
        using var dir = new TempDir();
        string path = dir.File("w.safetensors");
        Write.File(path,
        [
            NamedTensor.FromSingles("m", dtype, [7, 33], matrix),
            NamedTensor.FromSingles("v", dtype, [33], vector),
        ]);

        using var file = SafetensorsFile.Open(path);
        var m = file.GetMatrix("m");
        Assert.Equal((7, 33, dtype), (m.Rows, m.Cols, m.DType));
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 33; c++)
                Assert.Equal(TinyModel.Stored(matrix[r * 33 + c], dtype), m[r, c]);
        var v = file.GetMatrix("v");
        Assert.Equal((1, 33), (v.Rows, v.Cols));
        Assert.Equal(vector.Select(x => TinyModel.Stored(x, dtype)), file.ReadSingles("v"));
        // Every tensor starts aligned to its element size and the header is padded to 8.
        foreach (var t in file.Tensors) Assert.Equal(0, t.Offset % DTypes.SizeOf(dtype));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp-*"));
    }

    [Fact]
    public void Sharded_write_splits_at_the_threshold_and_indexes_every_tensor()
    {
        using var dir = new TempDir();
        var tensors = Enumerable.Range(0, 5)
            .Select(i => NamedTensor.FromSingles($"t{i}", DType.F32, [10], Enumerable.Repeat((float)i, 10).ToArray()))
            .ToList();
        var written = Write.Model(dir.Path, tensors, maxShardBytes: 100); // 40 bytes each: 2 per shard

        Assert.Equal(
            ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
             SafetensorsWriter.IndexFileName], written);
        using var index = JsonDocument.Parse(File.ReadAllText(dir.File(SafetensorsWriter.IndexFileName)));
        Assert.Equal(200, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
        var map = index.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString());
        Assert.Equal("model-00001-of-00003.safetensors", map["t1"]);
        Assert.Equal("model-00003-of-00003.safetensors", map["t4"]);
        using var shard = SafetensorsFile.Open(dir.File("model-00002-of-00003.safetensors"));
        Assert.Equal(["t2", "t3"], shard.Tensors.Select(t => t.Name));
        Assert.Equal(Enumerable.Repeat(3f, 10), shard.ReadSingles("t3"));

        var single = Write.Model(dir.File("one"), tensors.Take(1).ToList(), maxShardBytes: 100);
        Assert.Equal([SafetensorsWriter.SingleFileName], single);
    }

    [Fact]
    public void Conversion_keeps_NaN_and_rounds_to_nearest_even()
    {
        using var dir = new TempDir();
        float[] values = [float.NaN, 1 + MathF.Pow(2, -8), 1 + 3 * MathF.Pow(2, -8), 65520f];
        Write.File(dir.File("n.safetensors"),
            [NamedTensor.FromSingles("b", DType.BF16, [4], values), NamedTensor.FromSingles("h", DType.F16, [4], values)]);
        using var file = SafetensorsFile.Open(dir.File("n.safetensors"));
        var b = file.ReadSingles("b");
        Assert.True(float.IsNaN(b[0]));
        Assert.Equal(1f, b[1]);
        Assert.Equal(1 + 4 * MathF.Pow(2, -8), b[2]);
        var h = file.ReadSingles("h");
        Assert.True(float.IsNaN(h[0]));
        Assert.Equal(float.PositiveInfinity, h[3]);
    }

    [Fact]
    public void Writer_rejects_inconsistent_tensors()
    {
        Assert.Throws<ArgumentException>(() => NamedTensor.FromSingles("x", DType.F32, [2, 3], new float[5]));
        Assert.Throws<ArgumentException>(() => NamedTensor.FromBytes("x", "F32", [2], new byte[7]));
        Assert.Throws<ArgumentException>(() => NamedTensor.FromBytes("x", "Q4", [2], new byte[2]));
        Assert.Throws<ArgumentException>(() => NamedTensor.FromBytes("x", "U8", [-1], new byte[0]));
        using var dir = new TempDir();
        var t = NamedTensor.FromSingles("x", DType.F32, [1], new[] { 1f });
        Assert.Throws<ArgumentException>(() => Write.File(dir.File("d.safetensors"), [t, t]));
        Assert.False(File.Exists(dir.File("d.safetensors")));
    }

    [Fact]
    public void Copies_tensors_between_files_byte_for_byte()
    {
        using var dir = new TempDir();
        using (var source = SafetensorsFile.Open(Fixture("mixed.safetensors")))
            Write.File(dir.File("copy.safetensors"),
                source.Tensors.Select(t => NamedTensor.FromFile(source, t.Name)).ToList(), SafetensorsWriter.PyTorchMetadata);
        Assert.Equal(File.ReadAllBytes(Fixture("mixed.safetensors")), File.ReadAllBytes(dir.File("copy.safetensors")));
    }
}
