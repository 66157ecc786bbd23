namespace Llada.Diffusion;

/// <summary>Which remasking rule orders the candidates of a step (the reference's <c>remasking</c> argument).</summary>
public enum Remasking
{
    /// <summary>Commit the candidates the model is most sure of: softmax probability of the candidate.</summary>
    LowConfidence,

    /// <summary>Commit candidates in a uniformly random order.</summary>
    Random,
}

/// <summary>
/// A remasking rule scores each candidate; the reverse process commits the highest scores and leaves the rest
/// masked ("remasks" them) for later steps.
/// </summary>
public interface IRemaskingRule
{
    /// <summary>
    /// Confidence of committing <paramref name="candidate"/> at a position whose final logits (after CFG and the
    /// EOS rule, before temperature) are <paramref name="logits"/>. <paramref name="uniform"/> is a fresh uniform
    /// number in (0, 1) from the position's seeded stream, for rules that need randomness.
    /// </summary>
    double Confidence(ReadOnlySpan<float> logits, int candidate, double uniform);
}

/// <summary>low_confidence: softmax(logits)[candidate], computed in float64 without temperature.</summary>
public sealed class LowConfidenceRemasking : IRemaskingRule
{
    /// <summary>The shared instance.</summary>
    public static LowConfidenceRemasking Instance { get; } = new();

    /// <inheritdoc />
    public double Confidence(ReadOnlySpan<float> logits, int candidate, double uniform)
    {
        float max = float.NegativeInfinity;
        foreach (float l in logits) if (l > max) max = l;
        if (float.IsNegativeInfinity(max)) return 0;
        double sum = 0;
        foreach (float l in logits) sum += Math.Exp((double)l - max);
        return Math.Exp((double)logits[candidate] - max) / sum;
    }
}

/// <summary>random: the confidence is the uniform number itself.</summary>
public sealed class RandomRemasking : IRemaskingRule
{
    /// <summary>The shared instance.</summary>
    public static RandomRemasking Instance { get; } = new();

    /// <inheritdoc />
    public double Confidence(ReadOnlySpan<float> logits, int candidate, double uniform) => uniform;
}
