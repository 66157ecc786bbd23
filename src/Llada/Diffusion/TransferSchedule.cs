namespace Llada.Diffusion;

/// <summary>
/// How many masked tokens the reverse process commits at each step of a block (the reference
/// <c>get_num_transfer_tokens</c>): the block's n masks are spread evenly over its steps, the remainder going to the
/// first steps.
/// </summary>
public static class TransferSchedule
{
    /// <summary>
    /// Tokens to commit at step <paramref name="step"/> (0-based) of a block that held
    /// <paramref name="maskedInBlock"/> masks when it started and runs <paramref name="stepsPerBlock"/> steps:
    /// floor(n / steps) + (step &lt; n mod steps ? 1 : 0).
    /// </summary>
    public static int TokensAtStep(int maskedInBlock, int stepsPerBlock, int step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maskedInBlock);
        ArgumentOutOfRangeException.ThrowIfLessThan(stepsPerBlock, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        return maskedInBlock / stepsPerBlock + (step < maskedInBlock % stepsPerBlock ? 1 : 0);
    }
}
