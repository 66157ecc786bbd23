using Llada.Diffusion;
using Llada.Model;

namespace Llada.Evaluation;

/// <summary>
/// Left-to-right decoding with an autoregressive (causal) model, for generate tasks on the AR baseline: append the
/// argmax of the last position's logits (or a sample from softmax(logits / T) when T &gt; 0) until EOS,
/// end-of-turn or the token budget. Recomputes the whole prefix each step (no KV cache): fine for small models.
/// </summary>
public sealed class AutoregressiveDecoder
{
    private readonly IMaskPredictor _model;

    /// <summary>Creates a decoder over a causal model.</summary>
    public AutoregressiveDecoder(IMaskPredictor causalModel) =>
        _model = causalModel ?? throw new ArgumentNullException(nameof(causalModel));

    /// <summary>
    /// Generates up to <paramref name="maxTokens"/> tokens after <paramref name="prompt"/>; returns them without the
    /// stop token. <paramref name="row"/> keys the random stream so each prompt of an evaluation draws its own numbers.
    /// </summary>
    public int[] Generate(ReadOnlySpan<int> prompt, int maxTokens, double temperature, int seed, int eosTokenId,
        int? endOfTurnTokenId, int row = 0, CancellationToken cancellationToken = default)
    {
        if (prompt.IsEmpty) throw new ArgumentException("the prompt is empty; an autoregressive model needs at least one token");
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        if (!double.IsFinite(temperature) || temperature < 0) throw new ArgumentException($"temperature must be finite and >= 0 (got {temperature})");
        if ((long)prompt.Length + maxTokens > _model.MaxSequenceLength)
            throw new ArgumentException($"prompt ({prompt.Length} tokens) + gen_length {maxTokens} exceeds the model's max_sequence_length {_model.MaxSequenceLength}");
        int vocab = _model.VocabSize;
        var tokens = new int[prompt.Length + maxTokens];
        prompt.CopyTo(tokens);
        var logits = new float[vocab];
        var output = new List<int>(maxTokens);
        for (int step = 0, len = prompt.Length; step < maxTokens; step++, len++)
        {
            _model.Forward(tokens.AsSpan(0, len), 1, len, [], [len - 1], logits, cancellationToken);
            logits[_model.MaskTokenId] = float.NegativeInfinity; // the mask token is not text
            int next = temperature == 0 ? ArgMax(logits) : Sample(logits, temperature, CounterRandom.For(seed, row, step));
            if (next == eosTokenId || next == endOfTurnTokenId) break;
            tokens[len] = next;
            output.Add(next);
        }
        return output.ToArray();
    }

    private static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int v = 1; v < logits.Length; v++) if (logits[v] > logits[best]) best = v;
        return best;
    }

    // Gumbel-max in float64: argmax(l / T - log(-log U)) samples softmax(l / T).
    private static int Sample(ReadOnlySpan<float> logits, double temperature, CounterRandom random)
    {
        int best = 0;
        double bestKey = double.NegativeInfinity;
        for (int v = 0; v < logits.Length; v++)
        {
            double key = logits[v] / temperature - Math.Log(-Math.Log(random.NextOpenUnit()));
            if (key > bestKey) { bestKey = key; best = v; }
        }
        return best;
    }
}
