namespace Llada.Diffusion;

/// <summary>How a candidate token x0 is drawn from a position's logits.</summary>
internal static class CandidateSampling
{
    /// <summary>Index of the largest logit, the lowest index on ties (as torch.argmax).</summary>
    public static int Argmax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int v = 1; v < logits.Length; v++) if (logits[v] > logits[best]) best = v;
        return best;
    }

    /// <summary>
    /// Gumbel-max at temperature T in float64: argmax over v of exp(l_v) / (-ln U_v)^T, evaluated in log space as
    /// l_v - T ln(-ln U_v) (same argmax, no overflow). This samples softmax(logits / T).
    /// </summary>
    public static int GumbelMax(ReadOnlySpan<float> logits, double temperature, ref CounterRandom random)
    {
        int best = 0;
        double bestScore = double.NegativeInfinity;
        for (int v = 0; v < logits.Length; v++)
        {
            // Draw for every v, even -inf logits, so the stream does not depend on which logits are finite.
            double score = logits[v] - temperature * Math.Log(-Math.Log(random.NextOpenUnit()));
            if (score > bestScore) { bestScore = score; best = v; }
        }
        return best;
    }
}
