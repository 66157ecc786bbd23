using Llada.Diffusion;

namespace Llada.Tests.Diffusion;

/// <summary>
/// Test reference for the reverse process, written straight from the spec like the reference generate(): one
/// prompt, logits of the whole canvas every step, confidences of every position (-inf for committed positions and
/// after the block), then top-k with a plain sort. It shares only the random streams with the library, so the
/// two can be compared at temperature &gt; 0 and with random remasking too.
/// </summary>
internal static class NaiveSampler
{
    public static int[] Generate(RowLogits model, int vocab, int mask, int[] prompt, GenerationOptions o)
    {
        int p = prompt.Length, total = p + o.GenLength;
        int[] x = [.. prompt, .. Enumerable.Repeat(mask, o.GenLength)];
        int blocks = o.GenLength / o.BlockLength, stepsPerBlock = o.Steps / blocks;
        var c = new float[vocab];
        var u = new float[vocab];
        for (int b = 0; b < blocks; b++)
        {
            int blockEnd = p + (b + 1) * o.BlockLength;
            int n = 0;
            for (int i = blockEnd - o.BlockLength; i < blockEnd; i++) if (x[i] == mask) n++;
            for (int s = 0; s < stepsPerBlock; s++)
            {
                int k = n / stepsPerBlock + (s < n % stepsPerBlock ? 1 : 0);
                int[] unconditional = [.. x];
                for (int i = 0; i < p; i++) unconditional[i] = mask;
                var confidence = new double[total];
                var candidate = new int[total];
                for (int i = 0; i < total; i++)
                {
                    model(x, i, c);
                    if (o.CfgScale > 0)
                    {
                        model(unconditional, i, u);
                        for (int v = 0; v < vocab; v++) c[v] = u[v] + (float)(o.CfgScale + 1) * (c[v] - u[v]);
                    }
                    if (o.LogitsEosInf) c[o.EosTokenId] = float.NegativeInfinity;
                    var random = CounterRandom.For(o.Seed, 0, b, s, i - p);
                    int best = 0;
                    double bestScore = double.NegativeInfinity;
                    for (int v = 0; v < vocab; v++)
                    {
                        double score = o.Temperature == 0 ? c[v] : c[v] - o.Temperature * Math.Log(-Math.Log(random.NextOpenUnit()));
                        if (score > bestScore && v != mask) (best, bestScore) = (v, score);
                    }
                    double max = c.Max(), sum = c.Sum(l => Math.Exp(l - max));
                    double conf = o.Remasking == Remasking.Random ? random.NextOpenUnit() : Math.Exp(c[best] - max) / sum;
                    if (o.ConfidenceEosEotInf && (best == o.EosTokenId || best == o.EndOfTurnTokenId)) conf = double.NegativeInfinity;
                    if (i >= blockEnd) conf = double.NegativeInfinity;
                    candidate[i] = best;
                    confidence[i] = conf;
                }
                var chosen = Enumerable.Range(0, total).Where(i => x[i] == mask)
                    .OrderByDescending(i => confidence[i]).ThenBy(i => i).Take(k).ToArray();
                foreach (int i in chosen) x[i] = candidate[i];
            }
        }
        return x[p..];
    }
}
