using Llada.Model;
using Llada.Tokenization;
using Llada.Tests.Tokenization;

namespace Llada.Tests.Evaluation;

/// <summary>Shared pieces: the trained fixture tokenizer (vocab 1000) and predictors with known outputs.</summary>
internal static class EvalFakes
{
    public const int Vocab = 1000, Eos = 995, Mask = 996, Eot = 999;

    public static Tokenizer Tokenizer => TokenizerFixtures.Load("trained");

    public static string Temp() => Directory.CreateTempSubdirectory("llada-eval-").FullName;

    public static string WriteLines(string dir, string name, params string[] lines)
    {
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }
}

/// <summary>The same logits at every position whatever the input: log p(v) = logits[v] - logsumexp.</summary>
internal sealed class ContextFreePredictor(float[] logits, int maxSeq = 256) : IMaskPredictor
{
    public int VocabSize => logits.Length;
    public int MaskTokenId => EvalFakes.Mask;
    public int MaxSequenceLength => maxSeq;
    public int Calls { get; private set; }
    public Action<int>? OnCall { get; init; }

    public void Forward(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask,
        ReadOnlySpan<int> logitPositions, Span<float> output, CancellationToken cancellationToken = default)
    {
        Calls++;
        OnCall?.Invoke(Calls);
        cancellationToken.ThrowIfCancellationRequested();
        for (int r = 0; r < batch * logitPositions.Length; r++) logits.CopyTo(output.Slice(r * logits.Length, logits.Length));
    }

    public double LogProbability(int token)
    {
        double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
        return logits[token] - max - Math.Log(sum);
    }

    /// <summary>Uniform logits plus <paramref name="boost"/> on the favoured ids.</summary>
    public static ContextFreePredictor Favouring(IEnumerable<int> favoured, float boost = 5f)
    {
        var l = new float[EvalFakes.Vocab];
        foreach (int id in favoured) l[id] = boost;
        return new ContextFreePredictor(l);
    }
}

/// <summary>
/// A mask predictor that "knows" the answer: at canvas position j (the last genLength positions of a row) it puts all
/// mass on script[j], and on EOS past the script. So the reverse process writes exactly the script.
/// </summary>
internal sealed class ScriptedDiffusionPredictor(int[] script, int genLength) : IMaskPredictor
{
    public int VocabSize => EvalFakes.Vocab;
    public int MaskTokenId => EvalFakes.Mask;
    public int MaxSequenceLength => 256;
    public int Batches { get; private set; }
    public int LargestBatch { get; private set; }

    public void Forward(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask,
        ReadOnlySpan<int> logitPositions, Span<float> logits, CancellationToken cancellationToken = default)
    {
        Batches++;
        LargestBatch = Math.Max(LargestBatch, batch);
        logits.Clear();
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < logitPositions.Length; j++)
            {
                int gen = logitPositions[j] - (seqLen - genLength);
                int token = gen >= 0 && gen < script.Length ? script[gen] : EvalFakes.Eos;
                logits[(b * logitPositions.Length + j) * VocabSize + token] = 20f;
            }
    }
}

/// <summary>A "causal" model whose next token depends only on the last one (a chain); EOT when the chain ends.</summary>
internal sealed class ChainPredictor(Dictionary<int, int> next) : IMaskPredictor
{
    public int VocabSize => EvalFakes.Vocab;
    public int MaskTokenId => EvalFakes.Mask;
    public int MaxSequenceLength => 256;

    public void Forward(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask,
        ReadOnlySpan<int> logitPositions, Span<float> logits, CancellationToken cancellationToken = default)
    {
        logits.Clear();
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < logitPositions.Length; j++)
            {
                int last = tokens[b * seqLen + logitPositions[j]];
                logits[(b * logitPositions.Length + j) * VocabSize + next.GetValueOrDefault(last, EvalFakes.Eot)] = 20f;
            }
    }
}
