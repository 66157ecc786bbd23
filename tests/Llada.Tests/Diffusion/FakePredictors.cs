using Llada.Model;

namespace Llada.Tests.Diffusion;

/// <summary>Logits of one position of one (unpadded) row.</summary>
internal delegate void RowLogits(ReadOnlySpan<int> row, int position, Span<float> logits);

/// <summary>What one Forward call was asked.</summary>
internal sealed record ForwardCall(int[] Tokens, int Batch, int SeqLen, bool[] KeyMask, int[] LogitPositions)
{
    public int[] Row(int r) => Tokens.AsSpan(r * SeqLen, SeqLen).ToArray();
}

/// <summary>
/// A mask predictor defined by a per-row function. It honours the key mask the way a real left-padded batch
/// should be invariant to it: pads are dropped and positions are counted from the first real token, so a row's
/// logits do not depend on how much padding it got. Records every call.
/// </summary>
internal sealed class FunctionPredictor(int vocab, int maskId, RowLogits function, int maxSequenceLength = 512) : IMaskPredictor
{
    public int VocabSize => vocab;
    public int MaskTokenId => maskId;
    public int MaxSequenceLength => maxSequenceLength;
    public List<ForwardCall> Calls { get; } = [];
    public bool Record { get; init; } = true;

    public void Forward(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask,
        ReadOnlySpan<int> logitPositions, Span<float> logits, CancellationToken cancellationToken = default)
    {
        Assert.Equal(batch * seqLen, tokens.Length);
        Assert.Equal(batch * logitPositions.Length * vocab, logits.Length);
        if (Record) Calls.Add(new ForwardCall(tokens.ToArray(), batch, seqLen, keyMask.ToArray(), logitPositions.ToArray()));
        for (int b = 0; b < batch; b++)
        {
            int first = 0;
            if (!keyMask.IsEmpty) while (!keyMask[b * seqLen + first]) first++;
            ReadOnlySpan<int> row = tokens.Slice(b * seqLen + first, seqLen - first);
            for (int j = 0; j < logitPositions.Length; j++)
                function(row, logitPositions[j] - first, logits.Slice((b * logitPositions.Length + j) * vocab, vocab));
        }
    }
}

internal static class Fakes
{
    /// <summary>
    /// Logits that are a fixed pseudo-random function of (position, every token of the row), in [-4, 4): each
    /// committed token changes every other position's prediction, so the test sees context effects.
    /// </summary>
    public static RowLogits Hash(int salt = 0) => (row, position, logits) =>
    {
        ulong h = 1469598103934665603UL ^ (ulong)salt;
        foreach (int t in row) h = (h ^ (uint)t) * 1099511628211UL;
        h = (h ^ (uint)position) * 1099511628211UL;
        for (int v = 0; v < logits.Length; v++)
        {
            ulong z = h + (ulong)(v + 1) * 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            logits[v] = (float)((z >> 40) / (double)(1 << 24) * 8 - 4);
        }
    };

    public static FunctionPredictor HashPredictor(int vocab = 16, int salt = 0, bool record = true) =>
        new(vocab, vocab - 1, Hash(salt)) { Record = record };
}

/// <summary>Calls into the library with the test's cancellation token.</summary>
internal static class TestCalls
{
    public static Llada.Diffusion.GenerationResult Run(this Llada.Diffusion.ReverseProcess sampler, int[] prompt,
        Llada.Diffusion.GenerationOptions options, IProgress<Llada.Diffusion.ReverseProcessStep>? progress = null) =>
        sampler.Generate(prompt, options, progress, TestContext.Current.CancellationToken);

    public static Llada.Diffusion.GenerationResult Run(this Llada.Diffusion.ReverseProcess sampler, int[][] prompts,
        Llada.Diffusion.GenerationOptions options, IProgress<Llada.Diffusion.ReverseProcessStep>? progress = null) =>
        sampler.Generate(prompts, options, progress, TestContext.Current.CancellationToken);
}
