using Llada.Model;
using Llada.Numerics;

namespace Llada.Tests.Model;

/// <summary>A scratch directory removed after the test.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "llada-ckpt-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

internal static class TinyModel
{
    public static LladaConfig Config(bool weightTying = false, int nKvHeads = 2) => new()
    {
        DModel = 8,
        NLayers = 2,
        NHeads = 4,
        NKvHeads = nKvHeads,
        MlpHiddenSize = 12,
        VocabSize = 20,
        EmbeddingSize = 24,
        MaxSequenceLength = 32,
        RopeTheta = 500000,
        WeightTying = weightTying,
        MaskTokenId = 21,
        EosTokenId = 19,
        PadTokenId = 19,
    };

    /// <summary>Random float32 values for every tensor the config needs, in model order.</summary>
    public static List<(string Name, long[] Shape, float[] Values)> Weights(LladaConfig config, int seed)
    {
        var random = new Random(seed);
        var result = new List<(string, long[], float[])>();
        foreach (var (name, shape) in LladaTensorNames.Expected(config))
        {
            long n = shape.Aggregate(1L, (a, b) => a * b);
            var values = new float[n];
            for (int i = 0; i < n; i++) values[i] = (float)(random.NextDouble() * 4 - 2);
            result.Add((name, shape, values));
        }
        return result;
    }

    public static List<NamedTensor> Tensors(List<(string Name, long[] Shape, float[] Values)> weights, DType dtype) =>
        weights.Select(w => NamedTensor.FromSingles(w.Name, dtype, w.Shape, w.Values)).ToList();

    /// <summary>What a float32 value reads back as after being stored in <paramref name="dtype"/> (scalar reference).</summary>
    public static float Stored(float v, DType dtype) => dtype switch
    {
        DType.F32 => v,
        DType.BF16 => DTypes.BF16ToSingle(DTypes.SingleToBF16(v)),
        _ => (float)(Half)v,
    };
}

/// <summary>The writer entry points with the test's cancellation token.</summary>
internal static class Write
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static void File(string path, IEnumerable<NamedTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        SafetensorsWriter.Write(path, tensors, metadata, Ct);

    public static IReadOnlyList<string> Model(string directory, IReadOnlyList<NamedTensor> tensors, long maxShardBytes) =>
        SafetensorsWriter.WriteModel(directory, tensors, maxShardBytes, null, Ct);

    public static void Checkpoint(string directory, LladaConfig config, IReadOnlyList<NamedTensor> tensors,
        CheckpointWriteOptions? options = null) => CheckpointWriter.Write(directory, config, tensors, options, Ct);
}
