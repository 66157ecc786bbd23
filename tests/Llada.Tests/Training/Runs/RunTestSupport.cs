using Llada.Training;
using Llada.Training.Runs;

namespace Llada.Tests.Training.Runs;

/// <summary>A deterministic endless source over fixed random token rows; its state is the number of batches served.</summary>
internal sealed class FixedBatchSource : ITrainingBatchSource
{
    private readonly int[] _data;
    private readonly int[] _batch;
    private long _served;

    public FixedBatchSource(int batchSize, int seqLen, int vocab, int rows = 37, int seed = 3)
    {
        BatchSize = batchSize;
        SequenceLength = seqLen;
        var rng = new Random(seed);
        _data = new int[rows * seqLen];
        for (int i = 0; i < _data.Length; i++) _data[i] = rng.Next(0, vocab);
        _batch = new int[batchSize * seqLen];
    }

    public int BatchSize { get; }
    public int SequenceLength { get; }
    public int Rows => _data.Length / SequenceLength;

    public TokenBatch Next()
    {
        for (int r = 0; r < BatchSize; r++)
        {
            // A scrambled but reproducible row order: the row depends on the global row counter only.
            long k = _served * BatchSize + r;
            int row = (int)((k * 7919 + 13) % Rows);
            _data.AsSpan(row * SequenceLength, SequenceLength).CopyTo(_batch.AsSpan(r * SequenceLength));
        }
        _served++;
        return new TokenBatch(_batch, BatchSize, SequenceLength);
    }

    public byte[] SaveState() => BitConverter.GetBytes(_served);

    public void LoadState(ReadOnlySpan<byte> state)
    {
        if (state.Length != 8) throw new InvalidDataException($"expected 8 state bytes, got {state.Length}");
        _served = BitConverter.ToInt64(state);
    }
}

internal static class RunTestSupport
{
    public const int Vocab = 24, Mask = 23, Eos = 22;

    public static RunConfig Config(int steps = 6) => new()
    {
        Name = "test", DModel = 32, NLayers = 2, NHeads = 4, NKvHeads = 2, MlpHiddenSize = 48, SeqLen = 16,
        LearningRate = 3e-3, WarmupSteps = 2, DecayFraction = 0.5, BatchSize = 3, GradAccumulation = 2, Steps = steps,
        EvalInterval = 2, EvalBatches = 2, CheckpointInterval = 4, Seed = 7,
    };

    public static ModelShape Shape(RunConfig c) => new()
    {
        DModel = c.DModel, NLayers = c.NLayers, NHeads = c.NHeads, NKvHeads = c.NKvHeads, MlpHiddenSize = c.MlpHiddenSize,
        VocabSize = Vocab, MaxSequenceLength = c.SeqLen, MaskTokenId = Mask, EosTokenId = Eos,
    };

    public static TrainingRunOptions Options(string dir, RunConfig config, bool resume = false, long? stopAfter = null,
        Llada.Numerics.DType dtype = Llada.Numerics.DType.F32)
    {
        var heldOut = HeldOutBatches.Take(new FixedBatchSource(config.BatchSize, config.SeqLen, Eos, rows: 6, seed: 99), 2);
        return new TrainingRunOptions
        {
            OutputDirectory = dir, Config = config, Shape = Shape(config), Train = new FixedBatchSource(config.BatchSize, config.SeqLen, Eos),
            HeldOut = heldOut, Resume = resume, StopAfterStep = stopAfter, SaveDType = dtype,
            Provenance = new Dictionary<string, string> { ["training data"] = "fixed" },
        };
    }

    public static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "llada-run-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.GetDirectoryName(dir)!);
        return dir;
    }

    public static string Fixture(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "fixtures", .. parts]);
}
