using System.Diagnostics;
using Llada.Diffusion;

namespace Llada.Training;

/// <summary>Clean token ids for one micro-batch: [Batch, SeqLen] row-major, plus one prompt length per row for SFT.</summary>
public readonly record struct TokenBatch(ReadOnlyMemory<int> Tokens, int Batch, int SeqLen, ReadOnlyMemory<int> PromptLengths = default);

/// <summary>What one optimiser step did.</summary>
/// <param name="Step">0-based index of the step just taken.</param>
/// <param name="Loss">Objective value, averaged over the accumulated micro-batches.</param>
/// <param name="LearningRate">Rate the step used.</param>
/// <param name="GradientNorm">Global gradient L2 norm before clipping.</param>
/// <param name="Tokens">Input tokens processed (all micro-batches).</param>
/// <param name="TokensPerSecond">Tokens / wall-clock time of the step (forward, backward and update).</param>
public readonly record struct StepMetrics(long Step, double Loss, double LearningRate, double GradientNorm, long Tokens, double TokensPerSecond);

/// <summary>
/// The training loop: per step, accumulate gradients over micro-batches (each turned into weighted targets by the
/// <see cref="Objective"/>), clip, take an AdamW step at the scheduled rate. Data loading is the caller's: the batch
/// provider receives the global micro-batch index, so a resumed run asks for the same data.
/// </summary>
public sealed class Trainer : ITrainer
{
    private readonly LossBatch _batch;

    /// <summary>Creates a trainer. <paramref name="accumulation"/> micro-batches make one step; <paramref name="maxGradNorm"/> &lt;= 0 disables clipping.</summary>
    public Trainer(TrainableModel model, Objective objective, AdamW optimizer, LearningRateSchedule schedule, int accumulation = 1, double maxGradNorm = 1.0)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Objective = objective ?? throw new ArgumentNullException(nameof(objective));
        Optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        Schedule = schedule ?? throw new ArgumentNullException(nameof(schedule));
        ArgumentOutOfRangeException.ThrowIfLessThan(accumulation, 1);
        Accumulation = accumulation;
        MaxGradNorm = maxGradNorm;
        _batch = new LossBatch(model.MaxBatch, model.MaxSeqLen);
    }

    /// <summary>The model being trained.</summary>
    public TrainableModel Model { get; }
    /// <summary>The loss.</summary>
    public Objective Objective { get; }
    /// <summary>The optimiser.</summary>
    public AdamW Optimizer { get; }
    /// <summary>The learning-rate schedule.</summary>
    public LearningRateSchedule Schedule { get; }
    /// <summary>Micro-batches per step.</summary>
    public int Accumulation { get; }
    /// <summary>Global-norm clipping threshold.</summary>
    public double MaxGradNorm { get; }
    /// <summary>Steps taken so far (the index of the next step).</summary>
    public long Step { get; private set; }

    /// <summary>Takes one optimiser step on <see cref="Accumulation"/> micro-batches from <paramref name="nextBatch"/>.</summary>
    public StepMetrics TrainStep(Func<long, TokenBatch> nextBatch)
    {
        ArgumentNullException.ThrowIfNull(nextBatch);
        var metrics = OptimizerStep(Model, Optimizer, Schedule, Accumulation, MaxGradNorm, Step, index =>
        {
            TokenBatch data = nextBatch(index);
            Objective.Prepare(data.Tokens.Span, data.Batch, data.SeqLen, data.PromptLengths.Span, _batch);
            // Averaging over micro-batches is folded into the per-position weights.
            System.Numerics.Tensors.TensorPrimitives.Multiply(_batch.Weights, 1f / Accumulation, _batch.Weights);
            double loss = Model.Forward(_batch.Input, _batch.Batch, _batch.SeqLen, _batch.Causal, default, _batch.Positions, _batch.Targets, _batch.Weights);
            Model.Backward();
            return (loss, (long)_batch.Batch * _batch.SeqLen);
        });
        Step++;
        return metrics;
    }

    /// <summary>
    /// One optimiser step of a training loop: zero the gradients, accumulate <paramref name="accumulation"/>
    /// micro-batches (<paramref name="microBatch"/> gets the global micro-batch index, adds its gradient already
    /// divided by the accumulation, and returns its loss and input tokens), clip, take an AdamW step at the scheduled rate.
    /// </summary>
    internal static StepMetrics OptimizerStep(TrainableModel model, AdamW optimizer, LearningRateSchedule schedule, int accumulation,
        double maxGradNorm, long step, Func<long, (double Loss, long Tokens)> microBatch)
    {
        long start = Stopwatch.GetTimestamp(), tokens = 0;
        double loss = 0;
        model.ZeroGradients();
        model.RouterLossScale = 1.0 / accumulation; // MoE router losses count once per step, like the main loss
        for (int micro = 0; micro < accumulation; micro++)
        {
            var result = microBatch(step * accumulation + micro);
            loss += result.Loss;
            tokens += result.Tokens;
        }
        double norm = AdamW.ClipGradientNorm(model.Gradients, maxGradNorm);
        double lr = schedule.At(step);
        optimizer.Update(model.Parameters, model.Gradients, lr);
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return new StepMetrics(step, loss, lr, norm, tokens, tokens / seconds);
    }

    /// <summary>Runs <paramref name="steps"/> steps, reporting each; cancellation is honoured between steps.</summary>
    public void Run(Func<long, TokenBatch> nextBatch, int steps, IProgress<StepMetrics>? progress = null, CancellationToken cancellationToken = default)
    {
        for (int s = 0; s < steps; s++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            StepMetrics metrics = TrainStep(nextBatch);
            progress?.Report(metrics);
        }
    }

    private const int Magic = 0x4E415254; // "TRAN"

    /// <summary>
    /// Writes what a bit-identical resume needs besides the weights (which the checkpoint writer saves): the step,
    /// the optimiser moments and the forward process's random state.
    /// </summary>
    public void SaveState(Stream stream) => WriteState(stream, Step, Objective.Process, Optimizer);

    /// <summary>Restores a state written by <see cref="SaveState"/>.</summary>
    public void LoadState(Stream stream) => Step = ReadState(stream, Objective.Process, Optimizer);

    /// <summary>The resume state of a training loop: step, random stream, optimiser.</summary>
    internal static void WriteState(Stream stream, long step, ForwardProcess process, AdamW optimizer)
    {
        using var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        writer.Write(Magic);
        writer.Write(step);
        foreach (ulong word in process.GetState()) writer.Write(word);
        optimizer.Save(writer);
    }

    /// <summary>Restores what <see cref="WriteState"/> wrote; returns the step.</summary>
    internal static long ReadState(Stream stream, ForwardProcess process, AdamW optimizer)
    {
        using var reader = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        if (reader.ReadInt32() != Magic) throw new InvalidDataException("not a trainer state (bad magic number)");
        long step = reader.ReadInt64();
        Span<ulong> rng = stackalloc ulong[4];
        for (int i = 0; i < 4; i++) rng[i] = reader.ReadUInt64();
        process.SetState(rng);
        optimizer.Load(reader);
        return step;
    }
}

/// <summary>A training loop that takes optimiser steps on a model and can save and restore its position.</summary>
public interface ITrainer
{
    /// <summary>The model being trained.</summary>
    TrainableModel Model { get; }
    /// <summary>Steps taken so far (the index of the next step).</summary>
    long Step { get; }
    /// <summary>Takes one optimiser step on micro-batches from <paramref name="nextBatch"/> (given the global micro-batch index).</summary>
    StepMetrics TrainStep(Func<long, TokenBatch> nextBatch);
    /// <summary>Writes what a bit-identical resume needs besides the weights.</summary>
    void SaveState(Stream stream);
    /// <summary>Restores a state written by <see cref="SaveState"/>.</summary>
    void LoadState(Stream stream);
}
