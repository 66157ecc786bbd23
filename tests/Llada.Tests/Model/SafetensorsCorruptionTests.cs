using System.Text;
using Llada.Model;
using Llada.Numerics;

namespace Llada.Tests.Model;

public class SafetensorsCorruptionTests
{
    private static byte[] Craft(string header, int dataBytes, ulong? declaredLength = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var file = new byte[8 + json.Length + dataBytes];
        BitConverter.TryWriteBytes(file.AsSpan(0, 8), declaredLength ?? (ulong)json.Length);
        json.CopyTo(file, 8);
        for (int i = 8 + json.Length; i < file.Length; i++) file[i] = (byte)i;
        return file;
    }

    private static CheckpointFormatException OpenFails(byte[] bytes)
    {
        using var dir = new TempDir();
        string path = dir.File("bad.safetensors");
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Equal(path, ex.FilePath);
        Assert.Contains(path, ex.Message);
        return ex;
    }

    public static TheoryData<string, string, int, string?, string> CraftedHeaders() => new()
    {
        // description, header, data bytes, tensor the error must name (or null), text the message must contain
        { "offsets beyond EOF", """{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8, "w", "past the data section" },
        { "end before begin", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", 8, "w", "end before" },
        { "overlap", """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "b", "overlap tensor 'a'" },
        { "gap", """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""", 12, "b", "gap" },
        { "trailing bytes", """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 12, null, "8 unaccounted bytes" },
        { "shape/byte mismatch", """{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8, "w", "needs 12 bytes" },
        { "dtype/byte mismatch", """{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}}""", 8, "w", "needs 4 bytes" },
        { "negative dimension", """{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", 8, "w", "non-negative" },
        { "fractional dimension", """{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}""", 8, "w", "non-negative 64-bit integer" },
        { "huge dimension", """{"w":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}""", 8, "w", "64-bit integer" },
        { "overflowing shape", """{"w":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,8]}}""", 8, "w", "overflows" },
        { "unknown dtype", """{"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,8]}}""", 8, "w", "unknown dtype 'Q4_K'" },
        { "dtype not a string", """{"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}""", 8, "w", "'dtype' must be a string" },
        { "missing offsets", """{"w":{"dtype":"F32","shape":[2]}}""", 8, "w", "missing 'data_offsets'" },
        { "three offsets", """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}""", 8, "w", "2 entries" },
        { "entry not an object", """{"w":[1,2,3]}""", 0, "w", "must be an object" },
        { "duplicate tensor", """{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""", 2, "w", "twice" },
        { "metadata not strings", """{"__metadata__":{"format":1}}""", 0, "__metadata__", "must be a string" },
        { "metadata not an object", """{"__metadata__":"pt"}""", 0, "__metadata__", "object of strings" },
        { "root not an object", """[1,2]""", 0, null, "JSON object" },
        { "not JSON", """{"w": nope}""", 0, null, "not valid UTF-8 JSON" },
        { "nested garbage", new string('[', 5000) + new string(']', 5000), 0, null, "not valid UTF-8 JSON" },
        { "too many dimensions", "{\"w\":{\"dtype\":\"U8\",\"shape\":[" + string.Join(",", Enumerable.Repeat(1, 100)) + "],\"data_offsets\":[0,1]}}", 1, "w", "dimensions" },
    };

    [Theory]
    [MemberData(nameof(CraftedHeaders))]
    public void Crafted_defect_is_reported_with_file_and_tensor(string description, string header, int dataBytes,
        string? tensor, string expected)
    {
        var ex = OpenFails(Craft(header, dataBytes));
        Assert.True(ex.Message.Contains(expected, StringComparison.Ordinal), $"{description}: {ex.Message}");
        Assert.Equal(tensor, ex.TensorName);
    }

    [Fact]
    public void Header_length_defects_are_reported_without_large_allocations()
    {
        string header = """{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}""";
        Assert.Contains("100000000-byte limit", OpenFails(Craft(header, 1, ulong.MaxValue)).Message);
        Assert.Contains("100000000-byte limit", OpenFails(Craft(header, 1, 100_000_001)).Message);
        Assert.Contains("past the end of the file", OpenFails(Craft(header, 1, 99_999_999)).Message);
        Assert.Contains("too small", OpenFails(Craft(header, 1, 0)).Message);
        Assert.Contains("file is 3 bytes", OpenFails([1, 2, 3]).Message);
        Assert.Contains("file is 0 bytes", OpenFails([]).Message);
        var invalidUtf8 = Craft("{\"a\":\"xx\"}", 0);
        invalidUtf8[14] = 0xFF;
        invalidUtf8[15] = 0xFE;
        Assert.Contains("UTF-8", OpenFails(invalidUtf8).Message);
    }

    private static byte[] ValidFile(out int headerEnd)
    {
        using var dir = new TempDir();
        string path = dir.File("valid.safetensors");
        var random = new Random(5);
        float[] Values(int n) => Enumerable.Range(0, n).Select(_ => (float)random.NextDouble()).ToArray();
        SafetensorsWriter.Write(path,
        [
            NamedTensor.FromSingles("model.transformer.wte.weight", DType.BF16, [6, 4], Values(24)),
            NamedTensor.FromSingles("model.transformer.ln_f.weight", DType.F32, [4], Values(4)),
            NamedTensor.FromSingles("model.transformer.blocks.0.q_proj.weight", DType.F16, [4, 4], Values(16)),
            NamedTensor.FromBytes("ids", "I32", [3], new byte[12]),
            NamedTensor.FromBytes("flag", "BOOL", [], new byte[1]),
        ], SafetensorsWriter.PyTorchMetadata, TestContext.Current.CancellationToken);
        var bytes = File.ReadAllBytes(path);
        headerEnd = 8 + (int)BitConverter.ToUInt64(bytes, 0);
        return bytes;
    }

    // Opening a variant must either fail with CheckpointFormatException or give views that lie inside the file and
    // can be read in full; any other exception type escapes and fails the test.
    private static bool OpensConsistentlyOrRejects(string path, byte[] bytes)
    {
        File.WriteAllBytes(path, bytes);
        SafetensorsFile file;
        try
        {
            file = SafetensorsFile.Open(path);
        }
        catch (CheckpointFormatException ex)
        {
            Assert.Equal(path, ex.FilePath);
            return false;
        }
        using (file)
        {
            long headerEnd = 8 + (long)BitConverter.ToUInt64(bytes, 0);
            long covered = 0;
            foreach (var t in file.Tensors)
            {
                Assert.True(SafetensorsDTypes.TryGetElementSize(t.DTypeName, out int size));
                Assert.Equal(t.ElementCount * size, t.ByteLength);
                Assert.InRange(t.Offset, headerEnd, bytes.Length);
                Assert.InRange(t.Offset + t.ByteLength, t.Offset, bytes.Length);
                Assert.True(file.GetBytes(t.Name).SequenceEqual(bytes.AsSpan((int)t.Offset, (int)t.ByteLength)));
                covered += t.ByteLength;
                if (t.Shape.Count is 1 or 2 && SafetensorsDTypes.TryToWeightDType(t.DTypeName, out _))
                {
                    var m = file.GetMatrix(t.Name);
                    float sum = 0;
                    for (int r = 0; r < m.Rows; r++)
                        for (int c = 0; c < m.Cols; c++)
                            sum += m[r, c];
                    _ = sum;
                }
            }
            Assert.Equal(bytes.Length - headerEnd, covered);
            return true;
        }
    }

    [Fact]
    public void Every_truncation_is_rejected()
    {
        var valid = ValidFile(out int headerEnd);
        using var dir = new TempDir();
        string path = dir.File("t.safetensors");
        Assert.True(OpensConsistentlyOrRejects(path, valid));
        for (int length = 0; length < valid.Length; length += length < headerEnd + 16 ? 1 : 3)
            Assert.False(OpensConsistentlyOrRejects(path, valid[..length]), $"truncated to {length} bytes was accepted");
    }

    [Fact]
    public void Random_header_corruption_never_escapes_as_another_exception()
    {
        var valid = ValidFile(out int headerEnd);
        using var dir = new TempDir();
        string path = dir.File("f.safetensors");
        var random = new Random(1234);
        byte[] interesting = "{}[]\":,-0123456789e.E \0\u007f"u8.ToArray().Append((byte)0xFF).Append((byte)0xC3).ToArray();
        int accepted = 0, rejected = 0;
        for (int variant = 0; variant < 1000; variant++)
        {
            var bytes = (byte[])valid.Clone();
            int edits = 1 + random.Next(3);
            for (int e = 0; e < edits; e++)
            {
                int at = random.Next(8, headerEnd);
                if (variant % 10 == 0) at = random.Next(0, 8); // sometimes hit the length prefix
                bytes[at] = random.Next(3) switch
                {
                    0 => (byte)(bytes[at] ^ (1 << random.Next(8))),
                    1 => interesting[random.Next(interesting.Length)],
                    _ => (byte)random.Next(256),
                };
            }
            if (OpensConsistentlyOrRejects(path, bytes)) accepted++;
            else rejected++;
        }
        // Both outcomes occur: flips inside names or padding are harmless, flips in numbers and syntax are not.
        Assert.True(accepted > 0 && rejected > 0, $"accepted {accepted}, rejected {rejected}");
    }
}
