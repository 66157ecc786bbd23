namespace Llada.Training;

/// <summary>Learning rate as a function of the 0-based optimiser step.</summary>
public abstract class LearningRateSchedule
{
    /// <summary>Learning rate of step <paramref name="step"/> (0-based).</summary>
    public abstract double At(long step);

    /// <summary>Linear warm-up: step s &lt; warmup runs at peak * (s + 1) / warmup, so the first step is not wasted at 0.</summary>
    protected static double Warmup(double peak, long step, long warmup) => peak * (step + 1) / warmup;
}

/// <summary>
/// Warmup-Stable-Decay (the paper's schedule): linear warm-up over <c>warmupSteps</c>, constant peak, then a
/// linear decay over the last <c>decayFraction</c> of <c>totalSteps</c> from peak towards <c>minRate</c>,
/// reaching it one step after the last.
/// </summary>
public sealed class WarmupStableDecay : LearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    public WarmupStableDecay(double peakRate, long warmupSteps, long totalSteps, double decayFraction = 0.1, double minRate = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentOutOfRangeException.ThrowIfLessThan(totalSteps, 1);
        if (decayFraction is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(decayFraction), decayFraction, "must be in [0, 1]");
        PeakRate = peakRate; WarmupSteps = warmupSteps; TotalSteps = totalSteps; MinRate = minRate;
        DecayStart = totalSteps - (long)Math.Round(decayFraction * totalSteps);
        if (DecayStart < warmupSteps) throw new ArgumentException($"warm-up ({warmupSteps} steps) overlaps the decay, which starts at step {DecayStart} of {totalSteps}");
    }

    /// <summary>Constant-phase rate.</summary>
    public double PeakRate { get; }
    /// <summary>Warm-up length.</summary>
    public long WarmupSteps { get; }
    /// <summary>Total steps.</summary>
    public long TotalSteps { get; }
    /// <summary>Rate the decay heads for.</summary>
    public double MinRate { get; }
    /// <summary>First step of the decay phase (runs at the peak).</summary>
    public long DecayStart { get; }

    /// <inheritdoc/>
    public override double At(long step)
    {
        if (step < WarmupSteps) return Warmup(PeakRate, step, WarmupSteps);
        if (step < DecayStart) return PeakRate;
        if (step >= TotalSteps) return MinRate;
        return MinRate + (PeakRate - MinRate) * (TotalSteps - step) / (TotalSteps - DecayStart);
    }
}

/// <summary>Linear warm-up, then a half cosine from the peak down to <c>minRate</c> at <c>totalSteps</c>.</summary>
public sealed class CosineSchedule : LearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    public CosineSchedule(double peakRate, long warmupSteps, long totalSteps, double minRate = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        if (totalSteps <= warmupSteps) throw new ArgumentOutOfRangeException(nameof(totalSteps), $"total steps {totalSteps} must exceed warm-up {warmupSteps}");
        PeakRate = peakRate; WarmupSteps = warmupSteps; TotalSteps = totalSteps; MinRate = minRate;
    }

    /// <summary>Rate at the end of warm-up.</summary>
    public double PeakRate { get; }
    /// <summary>Warm-up length.</summary>
    public long WarmupSteps { get; }
    /// <summary>Total steps.</summary>
    public long TotalSteps { get; }
    /// <summary>Final rate.</summary>
    public double MinRate { get; }

    /// <inheritdoc/>
    public override double At(long step)
    {
        if (step < WarmupSteps) return Warmup(PeakRate, step, WarmupSteps);
        if (step >= TotalSteps) return MinRate;
        double progress = (double)(step - WarmupSteps) / (TotalSteps - WarmupSteps);
        return MinRate + (PeakRate - MinRate) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}

/// <summary>A fixed learning rate.</summary>
public sealed class ConstantSchedule(double rate) : LearningRateSchedule
{
    /// <inheritdoc/>
    public override double At(long step) => rate;
}
