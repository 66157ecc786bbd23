namespace Llada.Diffusion;

/// <summary>
/// Decides how many of a step's candidates to commit. Every rule commits a prefix of the candidates sorted by
/// confidence (descending, ties to the lowest position), so a rule only has to return the prefix length.
/// </summary>
public interface ICommitRule
{
    /// <summary>
    /// True when the rule commits exactly the transfer schedule's count, so every block takes steps/blocks steps.
    /// False for the parallel-decoding rules: a block then runs until it has no masks left (at most block_length
    /// steps, since every step commits at least one token) and <see cref="GenerationOptions.Steps"/> is unused.
    /// </summary>
    bool FollowsSchedule { get; }

    /// <summary>
    /// Number of candidates to commit, given their confidences sorted descending and the count the transfer
    /// schedule asks for at this step. Returns 0 only when there are no candidates.
    /// </summary>
    int CountToCommit(ReadOnlySpan<double> sortedConfidences, int scheduled);
}

/// <summary>The paper's rule: commit the k most confident, k from <see cref="TransferSchedule"/>.</summary>
public sealed class ScheduledCommit : ICommitRule
{
    /// <summary>The shared instance.</summary>
    public static ScheduledCommit Instance { get; } = new();

    /// <inheritdoc />
    public bool FollowsSchedule => true;

    /// <inheritdoc />
    public int CountToCommit(ReadOnlySpan<double> sortedConfidences, int scheduled)
        => Math.Min(scheduled, sortedConfidences.Length);
}

/// <summary>
/// Fast-dLLM threshold rule (beyond the paper): commit every candidate with confidence &gt;= threshold, and always
/// at least the most confident one.
/// </summary>
public sealed class ThresholdCommit(double threshold) : ICommitRule
{
    /// <summary>The confidence threshold tau.</summary>
    public double Threshold { get; } = threshold;

    /// <inheritdoc />
    public bool FollowsSchedule => false;

    /// <inheritdoc />
    public int CountToCommit(ReadOnlySpan<double> sortedConfidences, int scheduled)
    {
        int n = 0;
        while (n < sortedConfidences.Length && sortedConfidences[n] >= Threshold) n++;
        return Math.Min(Math.Max(n, 1), sortedConfidences.Length);
    }
}

/// <summary>
/// Fast-dLLM factor rule (beyond the paper): with confidences c1 &gt;= c2 &gt;= ..., commit the largest n such
/// that c_n &gt;= 1 - factor / (n + 1), and at least one. (c_n falls and the bound rises with n, so the
/// condition holds exactly for a prefix.)
/// </summary>
public sealed class FactorCommit(double factor) : ICommitRule
{
    /// <summary>The factor f.</summary>
    public double Factor { get; } = factor;

    /// <inheritdoc />
    public bool FollowsSchedule => false;

    /// <inheritdoc />
    public int CountToCommit(ReadOnlySpan<double> sortedConfidences, int scheduled)
    {
        int n = 0;
        while (n < sortedConfidences.Length && sortedConfidences[n] >= 1 - Factor / (n + 2)) n++;
        return Math.Min(Math.Max(n, 1), sortedConfidences.Length);
    }
}
