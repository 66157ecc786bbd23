namespace Llada.Diffusion;

/// <summary>How a candidate token x0 is drawn from a position's logits.</summary>
internal static class CandidateSampling
{
    /// <summary>
    /// Index of the largest logit other than <paramref name="excluded"/>, the lowest index on ties (as torch.argmax).
    /// </summary>
    public static int Argmax(ReadOnlySpan<float> logits, int excluded)
    {
        int best = excluded == 0 ? 1 : 0;
        for (int v = best + 1; v < logits.Length; v++) if (v != excluded && logits[v] > logits[best]) best = v;
        return best;
    }

    /// <summary>
    /// Gumbel-max at temperature T in float64: argmax over v of exp(l_v) / (-ln U_v)^T, evaluated in log space as
    /// l_v - T ln(-ln U_v) (same argmax, no overflow). This samples softmax(logits / T) restricted to
    /// v != <paramref name="excluded"/>.
    /// </summary>
    public static int GumbelMax(ReadOnlySpan<float> logits, int excluded, double temperature, ref CounterRandom random)
    {
        int best = 0;
        double bestScore = double.NegativeInfinity;
        for (int v = 0; v < logits.Length; v++)
        {
            // Draw for every v, even -inf logits, so the stream does not depend on which logits are finite.
            double score = logits[v] - temperature * Math.Log(-Math.Log(random.NextOpenUnit()));
            if (score > bestScore && v != excluded) { bestScore = score; best = v; }
        }
        return best;
    }
}
