using Llada.Model;

namespace Llada.Evaluation;

/// <summary>
/// Exact log-likelihood under an autoregressive (causal) model: log p(c | x) = sum_i log p(c_i | x, c_&lt;i), read from
/// one forward pass in which position t's logits predict token t + 1. The model must attend causally
/// (e.g. a <see cref="Training.TrainableModel"/> with <c>Causal = true</c>).
/// </summary>
public sealed class AutoregressiveLikelihood
{
    private readonly IMaskPredictor _model;
    private int[] _tokens = [], _positions = [];
    private float[] _logits = [];

    /// <summary>Creates a scorer over a causal model.</summary>
    public AutoregressiveLikelihood(IMaskPredictor causalModel) =>
        _model = causalModel ?? throw new ArgumentNullException(nameof(causalModel));

    /// <summary>
    /// log p(<paramref name="continuation"/> | <paramref name="context"/>) in nats. The context must hold at least one
    /// token (the first token of a sequence has no prediction).
    /// </summary>
    public double LogLikelihood(ReadOnlySpan<int> context, ReadOnlySpan<int> continuation, CancellationToken cancellationToken = default)
    {
        if (context.IsEmpty) throw new ArgumentException("the context is empty; an autoregressive model needs at least one token (e.g. BOS) to predict from");
        if (continuation.IsEmpty) throw new ArgumentException("the continuation is empty");
        int p = context.Length, len = continuation.Length, seqLen = p + len, vocab = _model.VocabSize;
        if (seqLen > _model.MaxSequenceLength)
            throw new ArgumentException($"context ({p}) + continuation ({len}) tokens exceed the model's max_sequence_length {_model.MaxSequenceLength}");
        if (_tokens.Length < seqLen) _tokens = new int[seqLen];
        if (_positions.Length < len) _positions = new int[len];
        if (_logits.Length < (long)len * vocab) _logits = new float[(long)len * vocab];
        context.CopyTo(_tokens);
        continuation.CopyTo(_tokens.AsSpan(p));
        for (int i = 0; i < len; i++) _positions[i] = p - 1 + i; // logits at t predict token t + 1
        _model.Forward(_tokens.AsSpan(0, seqLen), 1, seqLen, [], _positions.AsSpan(0, len), _logits.AsSpan(0, len * vocab), cancellationToken);
        double sum = 0;
        for (int i = 0; i < len; i++) sum += LogSoftmaxAt(_logits.AsSpan(i * vocab, vocab), continuation[i]);
        return sum;
    }

    internal static double LogSoftmaxAt(ReadOnlySpan<float> logits, int target)
    {
        double max = double.NegativeInfinity;
        foreach (float l in logits) if (l > max) max = l;
        double sum = 0;
        foreach (float l in logits) sum += Math.Exp(l - max);
        return logits[target] - max - Math.Log(sum);
    }
}
