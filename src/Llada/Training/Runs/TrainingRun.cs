using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Llada.Diffusion;
using Llada.Model;
using Llada.Numerics;

namespace Llada.Training.Runs;

/// <summary>What a <see cref="TrainingRun"/> trains, on what, and where it writes.</summary>
public sealed record TrainingRunOptions
{
    /// <summary>Output directory: a Hugging Face model directory plus training state, metrics.jsonl and loss.svg.</summary>
    public required string OutputDirectory { get; init; }
    /// <summary>Model size and optimiser.</summary>
    public required RunConfig Config { get; init; }
    /// <summary>The exact architecture (vocabulary and special ids filled in from the tokenizer or the base model).</summary>
    public required ModelShape Shape { get; init; }
    /// <summary>Training batches; their batch size and length must match <see cref="Config"/>.</summary>
    public required ITrainingBatchSource Train { get; init; }
    /// <summary>Fixed held-out batches for periodic evaluation (none: no evaluation).</summary>
    public IReadOnlyList<TokenBatch> HeldOut { get; init; } = [];
    /// <summary>Supervised fine-tuning (Eq. 5, prompt never masked) instead of pre-training.</summary>
    public bool Sft { get; init; }
    /// <summary>Preference optimisation (VRPO) instead of a likelihood objective: <see cref="Train"/> serves pairs as
    /// (chosen, rejected) rows and <see cref="InitialWeights"/> is also the frozen reference model.</summary>
    public VrpoOptions? Preference { get; init; }
    /// <summary>"prefer", "sft" or "pretrain": what training_state.json records and resume checks.</summary>
    public string Kind => Preference is not null ? "prefer" : Sft ? "sft" : "pretrain";
    /// <summary>Model directory whose weights initialise a fresh run (SFT starts from a pretrained model).</summary>
    public string? InitialWeights { get; init; }
    /// <summary>Directory whose tokenizer files are copied next to the weights.</summary>
    public string? TokenizerDirectory { get; init; }
    /// <summary>Continue the run saved in <see cref="OutputDirectory"/>.</summary>
    public bool Resume { get; init; }
    /// <summary>Dtype of model.safetensors (F32 or BF16). With BF16 the exact float32 weights go into the training state
    /// so that resuming stays exact.</summary>
    public DType SaveDType { get; init; } = DType.F32;
    /// <summary>Stop (after writing a checkpoint) once this many steps are done, before <see cref="RunConfig.Steps"/>.</summary>
    public long? StopAfterStep { get; init; }
    /// <summary>Where the data and tokenizer came from (file names, sizes, hashes): stored with the checkpoint and
    /// compared on resume, so a run is not silently continued on other data.</summary>
    public IReadOnlyDictionary<string, string> Provenance { get; init; } = new Dictionary<string, string>();
}

/// <summary>Something that happened during a run, for progress display.</summary>
/// <param name="Step">Steps completed.</param>
/// <param name="TotalSteps">Steps the run is configured for.</param>
public abstract record RunEvent(long Step, long TotalSteps);

/// <summary>The run is about to take its first step (fresh or resumed).</summary>
public sealed record RunStarted(long Step, long TotalSteps, bool Resumed, long ParameterCount, long TokensPerStep) : RunEvent(Step, TotalSteps);

/// <summary>An optimiser step finished.</summary>
/// <param name="Step">Steps completed.</param>
/// <param name="TotalSteps">Steps the run is configured for.</param>
/// <param name="Metrics">What the step did.</param>
/// <param name="AverageTokensPerSecond">Throughput since this invocation started.</param>
/// <param name="Elapsed">Wall-clock time since this invocation started.</param>
public sealed record RunStepDone(long Step, long TotalSteps, StepMetrics Metrics, double AverageTokensPerSecond, TimeSpan Elapsed) : RunEvent(Step, TotalSteps);

/// <summary>A held-out evaluation finished.</summary>
public sealed record RunEvaluated(long Step, long TotalSteps, HeldOutResult Result) : RunEvent(Step, TotalSteps);

/// <summary>A checkpoint was written.</summary>
public sealed record RunCheckpointed(long Step, long TotalSteps, string Directory) : RunEvent(Step, TotalSteps);

/// <summary>How a run ended.</summary>
/// <param name="Step">Steps completed.</param>
/// <param name="Completed">True when all configured steps are done.</param>
/// <param name="LastEvaluation">The latest held-out result, if any.</param>
/// <param name="AverageTokensPerSecond">Throughput of this invocation.</param>
public sealed record RunResult(long Step, bool Completed, HeldOutResult? LastEvaluation, double AverageTokensPerSecond);

/// <summary>
/// A pre-training or SFT run: builds the model, trains it with <see cref="Trainer"/>, evaluates on held-out batches,
/// and checkpoints to a Hugging Face model directory (config.json, model.safetensors, tokenizer files) together with
/// everything a bit-identical resume needs (optimiser moments, forward-process and data random state, step) and the
/// metrics log and loss curve. Checkpoints are written to a staging directory and renamed into place; the training
/// state file, written last, records hashes of the files it belongs to.
/// </summary>
public sealed class TrainingRun
{
    /// <summary>Human-readable training state; written last, so its presence marks a complete checkpoint.</summary>
    public const string StateFileName = "training_state.json";

    /// <summary>config.json key an autoregressive baseline's checkpoint carries, with the value "ar".</summary>
    public const string ObjectiveConfigKey = "llada_objective";
    /// <summary>Binary training state: optimiser, random states, data position (and float32 weights for BF16 saves).</summary>
    public const string StateBinFileName = "training_state.bin";
    private const string StagingName = ".checkpoint-staging";
    private const int StateMagic = 0x4E55524C; // "LRUN"
    private const int StateVersion = 1;

    private readonly TrainingRunOptions _options;
    private readonly ITrainer _trainer;
    private readonly IHeldOutEvaluator? _evaluator;
    private readonly MetricsLog _metrics;
    private double _elapsedBefore;

    private TrainingRun(TrainingRunOptions options, ITrainer trainer, IHeldOutEvaluator? evaluator, MetricsLog metrics, double elapsedBefore)
    {
        _options = options; _trainer = trainer; _evaluator = evaluator; _metrics = metrics; _elapsedBefore = elapsedBefore;
    }

    /// <summary>The model being trained.</summary>
    public TrainableModel Model => _trainer.Model;
    /// <summary>Steps completed.</summary>
    public long Step => _trainer.Step;
    /// <summary>The metrics recorded so far (including those of earlier invocations of a resumed run).</summary>
    public MetricsLog Metrics => _metrics;
    /// <summary>Options the run was created with.</summary>
    public TrainingRunOptions Options => _options;

    /// <summary>
    /// Prepares a run: checks the options, builds the model (fresh, from <see cref="TrainingRunOptions.InitialWeights"/>,
    /// or from the checkpoint in the output directory when resuming) and opens the metrics log. No training happens yet.
    /// </summary>
    /// <exception cref="InvalidOperationException">Output directory already holds a run (without resume) or holds none (with resume).</exception>
    /// <exception cref="InvalidDataException">Resume with a different configuration, data or architecture, or an inconsistent checkpoint.</exception>
    public static TrainingRun Open(TrainingRunOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var config = options.Config;
        config.Validate();
        options.Shape.Validate();
        if (options.SaveDType is not (DType.F32 or DType.BF16))
            throw new ArgumentException($"checkpoints are saved as F32 or BF16, not {options.SaveDType}");
        var source = options.Train;
        if (source.BatchSize != config.BatchSize || source.SequenceLength != config.SeqLen)
            throw new ArgumentException($"the training data gives {source.BatchSize}x{source.SequenceLength} batches, the config asks for {config.BatchSize}x{config.SeqLen}");
        if (config.SeqLen > options.Shape.MaxSequenceLength)
            throw new ArgumentException($"seq_len {config.SeqLen} exceeds the model's max_sequence_length {options.Shape.MaxSequenceLength}");
        int rowsPerBatch = options.Preference is null ? config.BatchSize : 2 * config.BatchSize;
        foreach (var b in options.HeldOut)
            if (b.Batch > rowsPerBatch || b.SeqLen > config.SeqLen)
                throw new ArgumentException($"a held-out batch of {b.Batch}x{b.SeqLen} exceeds the training batch {rowsPerBatch}x{config.SeqLen}");

        string dir = Path.GetFullPath(options.OutputDirectory);
        CheckOutputDirectory(dir, options.Resume, config, options.Kind);
        Directory.CreateDirectory(dir);
        RemoveStaging(dir);

        ITrainer trainer;
        IHeldOutEvaluator? evaluator = null;
        TrainableModel? initialWeights = null; // a model already holding InitialWeights, so they are read from disk once
        // Distinct seeds for weights, masks and evaluation noise, all derived from the one run seed.
        var process = new ForwardProcess(options.Shape.MaskTokenId, config.Seed ^ 0x5EED_0001UL);
        if (options.Preference is { } vrpo)
        {
            string reference = options.InitialWeights ?? throw new ArgumentException("a preference run needs InitialWeights: the model to start from, which is also the frozen reference");
            int rows = 2 * config.BatchSize * vrpo.Samples;
            var policy = new TrainableModel(options.Shape, rows, config.SeqLen, config.Seed);
            var frozen = new TrainableModel(options.Shape, rows, config.SeqLen, config.Seed);
            ModelWeights.Load(frozen, reference);
            initialWeights = frozen;
            var preference = new PreferenceTrainer(policy, frozen, new PreferenceObjective(vrpo, process),
                new AdamW(policy, config.CreateOptimizerOptions()), config.CreateSchedule(), config.GradAccumulation, config.MaxGradNorm);
            trainer = preference;
            if (options.HeldOut.Count > 0) evaluator = new PreferenceHeldOutEvaluator(preference, options.HeldOut, config.Seed ^ 0x5EED_0002UL);
        }
        else
        {
            var model = new TrainableModel(options.Shape, config.BatchSize, config.SeqLen, config.Seed);
            model.Causal = config.Objective == RunObjective.Ar;
            ObjectiveKind kind = config.Objective == RunObjective.Ar ? ObjectiveKind.Autoregressive
                : options.Sft ? ObjectiveKind.Sft : ObjectiveKind.Pretraining;
            trainer = new Trainer(model, new Objective(kind, process), new AdamW(model, config.CreateOptimizerOptions()), config.CreateSchedule(),
                config.GradAccumulation, config.MaxGradNorm);
            if (options.HeldOut.Count > 0) evaluator = new HeldOutEvaluator(options.HeldOut, kind, options.Shape.MaskTokenId, config.Seed ^ 0x5EED_0002UL);
        }

        double elapsed = 0;
        if (options.Resume)
            elapsed = LoadCheckpoint(dir, options, trainer);
        else if (initialWeights is not null)
            initialWeights.Parameters.CopyTo(trainer.Model.Parameters, 0);
        else if (options.InitialWeights is { } initial)
            ModelWeights.Load(trainer.Model, initial);
        var metrics = MetricsLog.Open(dir, options.Resume ? trainer.Step : 0);
        return new TrainingRun(options, trainer, evaluator, metrics, elapsed);
    }

    /// <summary>
    /// Checks, without reading any weights, that <paramref name="directory"/> can take a new run (it holds no run and
    /// nothing else but leftovers of a run that never checkpointed) or, with <paramref name="resume"/>, holds a run
    /// of the same kind whose saved configuration matches <paramref name="config"/> in everything that shapes the
    /// training trajectory.
    /// </summary>
    /// <exception cref="InvalidOperationException">A run is there without resume, or none with resume, or other files are.</exception>
    /// <exception cref="InvalidDataException">The saved run is of the other kind or its configuration differs.</exception>
    public static void CheckOutputDirectory(string directory, bool resume, RunConfig config, string kind)
    {
        ArgumentNullException.ThrowIfNull(config);
        string dir = Path.GetFullPath(directory);
        string statePath = Path.Combine(dir, StateFileName);
        if (File.Exists(dir)) throw new InvalidOperationException($"{dir} is a file; the output must be a directory");
        if (!resume)
        {
            if (File.Exists(statePath))
                throw new InvalidOperationException($"{dir} already holds a training run; pass --resume to continue it or choose another output directory");
            if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).FirstOrDefault(e => !IsRestartable(e)) is { } other)
                throw new InvalidOperationException($"{dir} is not empty ({Path.GetFileName(other)}); choose a new output directory");
            return;
        }
        if (!File.Exists(statePath))
            throw new InvalidOperationException($"{dir} holds no checkpoint to resume ({StateFileName} is missing); start a new run without --resume");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(statePath));
        var root = doc.RootElement;
        string saved = root.GetProperty("kind").GetString()!;
        if (saved != kind)
            throw new InvalidDataException($"{dir} holds a {saved} run; it cannot be resumed as a {kind} run");
        var savedConfig = RunConfig.Parse(root.GetProperty("config").GetRawText(), statePath);
        if (DescribeTrajectoryDifference(savedConfig, config) is { } difference)
            throw new InvalidDataException($"--resume with a different configuration: {difference} (saved in {statePath}); resume with the original settings or start a new run");
    }

    // What a run that never reached its first checkpoint leaves behind; a fresh run may reuse the directory.
    private static bool IsRestartable(string path) =>
        IsStaging(path) || Path.GetFileName(path) is MetricsLog.FileName or MetricsLog.ChartFileName or RunSetup.CacheDirectoryName;

    /// <summary>
    /// Trains until the configured steps (or <see cref="TrainingRunOptions.StopAfterStep"/>) are done, evaluating and
    /// checkpointing on schedule and at the end. On cancellation (checked between steps) it writes a checkpoint and
    /// then throws <see cref="OperationCanceledException"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The loss became NaN or infinite (the last checkpoint is kept).</exception>
    public RunResult Run(IProgress<RunEvent>? progress = null, CancellationToken cancellationToken = default)
    {
        var config = _options.Config;
        long total = config.Steps;
        long stop = Math.Min(total, _options.StopAfterStep ?? total);
        var clock = Stopwatch.StartNew();
        long tokens = 0;
        HeldOutResult? last = _metrics.Eval.Count > 0 ? _metrics.Eval[^1] : null;
        progress?.Report(new RunStarted(Step, total, _options.Resume, Model.Parameters.Length, config.TokensPerStep));
        if (Step == 0 && _evaluator is not null)
            last = Evaluate(progress, total, cancellationToken);

        long lastCheckpoint = Step;
        while (Step < stop)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                SaveCheckpoint(progress, total, clock);
                cancellationToken.ThrowIfCancellationRequested();
            }
            StepMetrics m = _trainer.TrainStep(_ => _options.Train.Next());
            if (!double.IsFinite(m.Loss))
                throw new InvalidOperationException($"the training loss became {m.Loss} at step {Step}; lower the learning rate (lr {m.LearningRate:G3}) or resume from the last checkpoint");
            tokens += m.Tokens;
            double seconds = clock.Elapsed.TotalSeconds;
            _metrics.Append(new TrainRecord(Step, m.Loss, m.LearningRate, m.GradientNorm, m.TokensPerSecond, _elapsedBefore + seconds));
            progress?.Report(new RunStepDone(Step, total, m, tokens / Math.Max(seconds, 1e-9), clock.Elapsed));

            bool end = Step == stop;
            if (_evaluator is not null && (Step == total || (config.EvalInterval > 0 && Step % config.EvalInterval == 0)))
            {
                try
                {
                    last = Evaluate(progress, total, cancellationToken);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    SaveCheckpoint(progress, total, clock);
                    throw;
                }
            }
            if (end || (config.CheckpointInterval > 0 && Step % config.CheckpointInterval == 0))
            {
                SaveCheckpoint(progress, total, clock);
                lastCheckpoint = Step;
            }
        }
        if (lastCheckpoint != Step) SaveCheckpoint(progress, total, clock);
        return new RunResult(Step, Step >= total, last, tokens / Math.Max(clock.Elapsed.TotalSeconds, 1e-9));
    }

    private HeldOutResult Evaluate(IProgress<RunEvent>? progress, long total, CancellationToken cancellationToken)
    {
        var result = _evaluator!.Evaluate(Model, Step, cancellationToken);
        _metrics.Append(result);
        _metrics.WriteChart(Path.Combine(Path.GetFullPath(_options.OutputDirectory), MetricsLog.ChartFileName),
            ChartTitle);
        progress?.Report(new RunEvaluated(Step, total, result));
        return result;
    }

    private string ChartTitle => _options.Preference is { } vrpo
        ? $"Preference (VRPO) loss ({_options.Config.Name}, {vrpo})"
        : $"{(_options.Sft ? "SFT" : "Pre-training")} loss ({_options.Config.Name}, {(_options.Config.Objective == RunObjective.Ar ? "AR" : "MDM")})";

    /// <summary>Writes a checkpoint of the current state now (the run also does this on schedule).</summary>
    public void SaveCheckpoint() => SaveCheckpoint(null, _options.Config.Steps, null);

    // An AR baseline says so in config.json too, so a copy of the weights without training_state.json is still
    // recognised as causal (the Hugging Face LLaDA code ignores unknown keys).
    private LladaConfig ModelConfig()
    {
        var config = _options.Shape.ToConfig();
        if (_options.Config.Objective != RunObjective.Ar) return config;
        var keys = new Dictionary<string, JsonElement>(config.OtherKeys, StringComparer.Ordinal)
        {
            [ObjectiveConfigKey] = JsonDocument.Parse("\"ar\"").RootElement.Clone(),
        };
        return config with { OtherKeys = keys };
    }

    private void SaveCheckpoint(IProgress<RunEvent>? progress, long total, Stopwatch? clock)
    {
        string dir = Path.GetFullPath(_options.OutputDirectory);
        string staging = Path.Combine(dir, StagingName);
        RemoveStaging(dir);
        CheckpointWriter.Write(staging, ModelConfig(), ModelWeights.ToTensors(Model, _options.SaveDType),
            new CheckpointWriteOptions { Overwrite = true, TokenizerSourceDirectory = _options.TokenizerDirectory });

        double elapsed = _elapsedBefore + (clock?.Elapsed.TotalSeconds ?? 0);
        using (var stream = new FileStream(Path.Combine(staging, StateBinFileName), FileMode.CreateNew, FileAccess.Write))
        {
            using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
            {
                w.Write(StateMagic);
                w.Write(StateVersion);
                w.Flush();
                _trainer.SaveState(stream);
                byte[] data = _options.Train.SaveState();
                w.Write(data.Length);
                w.Write(data);
                bool master = _options.SaveDType != DType.F32;
                w.Write(master);
                if (master)
                {
                    w.Write(Model.Parameters.Length);
                    foreach (float p in Model.Parameters) w.Write(p);
                }
            }
            stream.Flush(flushToDisk: true);
        }

        // Move the files over the previous checkpoint; the state file, written last, names their hashes.
        var hashes = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (string file in Directory.EnumerateFiles(staging).Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(file);
            if (name is SafetensorsWriter.SingleFileName or StateBinFileName) hashes[name] = Sha256(file);
            File.Move(file, Path.Combine(dir, name), overwrite: true);
        }
        Directory.Delete(staging, recursive: true);

        string json = StateJson(elapsed, hashes);
        SafetensorsWriter.WriteAtomically(Path.Combine(dir, StateFileName), s => s.Write(Encoding.UTF8.GetBytes(json)));
        _metrics.WriteChart(Path.Combine(dir, MetricsLog.ChartFileName),
            ChartTitle);
        progress?.Report(new RunCheckpointed(Step, total, dir));
    }

    private string StateJson(double elapsed, IReadOnlyDictionary<string, string> hashes)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber("format", StateVersion);
            w.WriteNumber("step", Step);
            w.WriteNumber("total_steps", _options.Config.Steps);
            w.WriteString("kind", _options.Kind);
            w.WriteString("save_dtype", _options.SaveDType == DType.F32 ? "f32" : "bf16");
            w.WriteNumber("elapsed_seconds", Math.Round(elapsed, 3));
            w.WriteNumber("learning_rate_next", _options.Config.CreateSchedule().At(Step));
            w.WritePropertyName("config");
            using (var config = JsonDocument.Parse(_options.Config.ToJson())) config.RootElement.WriteTo(w);
            w.WriteStartObject("provenance");
            foreach (var (k, v) in _options.Provenance.OrderBy(p => p.Key, StringComparer.Ordinal)) w.WriteString(k, v);
            w.WriteEndObject();
            w.WriteStartObject("sha256");
            foreach (var (k, v) in hashes) w.WriteString(k, v);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Restores weights and state from the checkpoint in <paramref name="dir"/>; returns the elapsed training time.</summary>
    private static double LoadCheckpoint(string dir, TrainingRunOptions options, ITrainer trainer)
    {
        string statePath = Path.Combine(dir, StateFileName);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(statePath));
        var root = doc.RootElement;
        foreach (var p in root.GetProperty("provenance").EnumerateObject())
            if (!options.Provenance.TryGetValue(p.Name, out string? now) || now != p.Value.GetString())
                throw new InvalidDataException($"--resume with different {p.Name}: the run was trained with {p.Value.GetString()}, now {now ?? "(none)"}");
        foreach (var p in root.GetProperty("sha256").EnumerateObject())
        {
            string file = Path.Combine(dir, p.Name);
            if (!File.Exists(file) || Sha256(file) != p.Value.GetString())
                throw new InvalidDataException($"the checkpoint in {dir} is inconsistent: {p.Name} does not match {StateFileName} (was a save interrupted?)");
        }

        var found = ModelShape.FromConfig(LladaConfigFile.Load(Path.Combine(dir, LladaConfigFile.FileName)));
        if (ModelWeights.Describe(options.Shape, found) is { } shapeDifference)
            throw new InvalidDataException($"--resume with a different model: the saved {shapeDifference}");

        using var stream = File.OpenRead(Path.Combine(dir, StateBinFileName));
        using var r = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        if (r.ReadInt32() != StateMagic) throw new InvalidDataException($"{Path.Combine(dir, StateBinFileName)} is not a Llada training state");
        int version = r.ReadInt32();
        if (version != StateVersion) throw new InvalidDataException($"{Path.Combine(dir, StateBinFileName)} has format {version}, expected {StateVersion}");
        trainer.LoadState(stream);
        int dataLength = r.ReadInt32();
        options.Train.LoadState(r.ReadBytes(dataLength));
        if (r.ReadBoolean())
        {
            int count = r.ReadInt32();
            if (count != trainer.Model.Parameters.Length)
                throw new InvalidDataException($"{StateBinFileName} holds {count} weights, the model has {trainer.Model.Parameters.Length}");
            for (int i = 0; i < count; i++) trainer.Model.Parameters[i] = r.ReadSingle();
        }
        else
        {
            ModelWeights.Load(trainer.Model, dir);
        }
        return root.GetProperty("elapsed_seconds").GetDouble();
    }

    /// <summary>The first setting that would change the training trajectory ("lr was 0.001, now 0.002"), or null.
    /// The name, total steps and the evaluation and checkpoint intervals may change: extending a run changes its decay
    /// schedule from the resumed step on, which is the point of extending it.</summary>
    public static string? DescribeTrajectoryDifference(RunConfig saved, RunConfig now)
    {
        ArgumentNullException.ThrowIfNull(saved);
        ArgumentNullException.ThrowIfNull(now);
        using var was = JsonDocument.Parse(saved.ToJson());
        using var isNow = JsonDocument.Parse(now.ToJson());
        foreach (var p in was.RootElement.EnumerateObject())
        {
            if (p.Name is "name" or "steps" or "eval_interval" or "eval_batches" or "checkpoint_interval") continue;
            string before = p.Value.GetRawText(), after = isNow.RootElement.GetProperty(p.Name).GetRawText();
            if (before != after) return $"{p.Name} was {before}, now {after}";
        }
        return null;
    }

    private static bool IsStaging(string path)
    {
        string name = Path.GetFileName(path);
        return name.StartsWith(StagingName, StringComparison.Ordinal) || name.StartsWith("." + StagingName, StringComparison.Ordinal);
    }

    // Leftovers of a save that crashed (the staging directory or the checkpoint writer's own temporaries).
    private static void RemoveStaging(string dir)
    {
        foreach (string entry in Directory.EnumerateFileSystemEntries(dir).Where(IsStaging).ToList())
        {
            if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
            else File.Delete(entry);
        }
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
