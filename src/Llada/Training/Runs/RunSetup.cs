using System.Security.Cryptography;
using Llada.Diffusion;
using Llada.Model;
using Llada.Numerics;
using Llada.Reporting;
using Llada.Tokenization;
using Llada.Training.Data;

namespace Llada.Training.Runs;

/// <summary>What every run set up from files names: settings, data, output and how to save.</summary>
public abstract record RunRequest
{
    /// <summary>Optimiser and sequence length; for pre-training also the model's size (fine-tuning takes it from the model directory).</summary>
    public required RunConfig Config { get; init; }
    /// <summary>Training data: text for pre-training, dialogues for SFT, preference pairs for VRPO (files or directories).</summary>
    public required IReadOnlyList<string> Data { get; init; }
    /// <summary>Held-out data of the same kind for periodic evaluation (optional).</summary>
    public IReadOnlyList<string> Valid { get; init; } = [];
    /// <summary>Output directory.</summary>
    public required string OutputDirectory { get; init; }
    /// <summary>Continue the run in <see cref="OutputDirectory"/>.</summary>
    public bool Resume { get; init; }
    /// <summary>Dtype of model.safetensors.</summary>
    public DType SaveDType { get; init; } = DType.F32;
    /// <summary>Stop early (with a checkpoint) after this many steps.</summary>
    public long? StopAfterStep { get; init; }
}

/// <summary>A pre-training run to set up from files.</summary>
/// <remarks><see cref="RunRequest.Data"/>: .txt / .jsonl files or directories of text.</remarks>
public sealed record PretrainRequest : RunRequest
{
    /// <summary>Directory with tokenizer.json (and tokenizer_config.json).</summary>
    public required string TokenizerDirectory { get; init; }
}

/// <summary>A run that continues training an existing model (SFT or VRPO), whose architecture it takes over.</summary>
public abstract record FineTuneRequest : RunRequest
{
    /// <summary>The model directory to start from (config.json, safetensors, usually the tokenizer).</summary>
    public required string ModelDirectory { get; init; }
    /// <summary>Tokenizer directory; default the model directory.</summary>
    public string? TokenizerDirectory { get; init; }
    /// <summary>Leave out pairs longer than seq_len instead of refusing to start.</summary>
    public bool SkipLong { get; init; }
}

/// <summary>A supervised fine-tuning run to set up from files.</summary>
/// <remarks><see cref="RunRequest.Data"/>: .jsonl files with "messages" (or "prompt"/"response") records.</remarks>
public sealed record SftRequest : FineTuneRequest;

/// <summary>A preference-optimisation (VRPO) run to set up from files; the model directory is also the frozen reference.</summary>
/// <remarks><see cref="RunRequest.Data"/>: .jsonl files of {"prompt" or "messages", "chosen", "rejected"} records;
/// <see cref="RunConfig.BatchSize"/> counts pairs.</remarks>
public sealed record PreferenceRequest : FineTuneRequest
{
    /// <summary>VRPO settings (beta, sampling budget, allocation, antithetic sampling).</summary>
    public required VrpoOptions Vrpo { get; init; }
}

/// <summary>A run ready to train, with the token caches it reads kept open until disposed.</summary>
public sealed class PreparedRun : IDisposable
{
    private readonly List<IDisposable> _owned;

    internal PreparedRun(TrainingRun run, List<IDisposable> owned, IReadOnlyList<string> notes)
    {
        Run = run; _owned = owned; Notes = notes;
    }

    /// <summary>The run.</summary>
    public TrainingRun Run { get; }
    /// <summary>Facts worth telling the user before training (data size, skipped pairs, ...).</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>Closes the token caches.</summary>
    public void Dispose()
    {
        foreach (var d in _owned) d.Dispose();
        _owned.Clear();
    }
}

/// <summary>
/// Turns file paths into a <see cref="TrainingRun"/>: checks everything that can be checked cheaply first (files,
/// tokenizer, configuration, output directory, resume compatibility), then tokenises the data into cached token
/// files under &lt;out&gt;/cache, so every user error surfaces before any training compute is spent.
/// </summary>
public static class RunSetup
{
    /// <summary>Cache sub-directory of the output directory.</summary>
    public const string CacheDirectoryName = "cache";

    /// <summary>Sets up a pre-training run.</summary>
    /// <exception cref="FileNotFoundException">A data file, the tokenizer or the model is missing.</exception>
    /// <exception cref="InvalidDataException">Unusable data, tokenizer, or a resume that does not match.</exception>
    public static PreparedRun Prepare(PretrainRequest request, IProgress<DataProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var config = request.Config;
        config.Validate(config.Name);
        RequireSources(request.Data, "training data");
        RequireSources(request.Valid, "validation data");
        var tokenizer = LoadTokenizer(request.TokenizerDirectory);
        int mask = tokenizer.MaskTokenId ?? throw new InvalidDataException($"the tokenizer in {request.TokenizerDirectory} has no mask token (mask_token in tokenizer_config.json); a diffusion model needs one");
        int eos = tokenizer.EosTokenId ?? throw new InvalidDataException($"the tokenizer in {request.TokenizerDirectory} has no EOS token (eos_token in tokenizer_config.json)");
        int vocab = config.VocabSize ?? tokenizer.VocabSize;
        if (tokenizer.VocabSize > vocab)
            throw new InvalidDataException($"the tokenizer in {request.TokenizerDirectory} has {tokenizer.VocabSize} tokens but the config's vocab_size is {vocab}; raise vocab_size or leave it out to use the tokenizer's");
        var shape = new ModelShape
        {
            DModel = config.DModel, NLayers = config.NLayers, NHeads = config.NHeads, NKvHeads = config.NKvHeads,
            MlpHiddenSize = config.MlpHiddenSize, VocabSize = vocab, MaxSequenceLength = config.SeqLen, MaskTokenId = mask,
            EosTokenId = eos, RopeTheta = config.RopeTheta, WeightTying = config.WeightTying, Moe = config.CreateMoe(),
        };
        string output = Path.GetFullPath(request.OutputDirectory);
        TrainingRun.CheckOutputDirectory(output, request.Resume, config, "pretrain");

        var setup = new SetupState();
        try
        {
            var encoder = Encoder(tokenizer, request.TokenizerDirectory);
            var options = new PretrainCacheOptions { BosTokenId = tokenizer.BosTokenId, EosTokenId = eos };
            string cacheDir = setup.CreateCacheDirectory(output);
            var trainCache = PretrainCache.OpenOrBuild(request.Data, Path.Combine(cacheDir, "pretrain-train.tokens"), encoder, options, progress, cancellationToken);
            setup.Owned.Add(trainCache);
            var train = new PretrainBatchSource(trainCache, config.SeqLen, config.BatchSize, vocab, config.Seed);
            var notes = new List<string>
            {
                $"training data: {trainCache.Count:N0} tokens, {train.SequencesPerEpoch:N0} sequences of {config.SeqLen} per epoch " +
                $"({(double)config.Steps * config.TokensPerStep / Math.Max(1, trainCache.Count):0.##} epochs in {Quantity.Of(config.Steps, "step")})",
            };
            IReadOnlyList<TokenBatch> heldOut = [];
            if (request.Valid.Count > 0 && config.EvalBatches > 0)
            {
                var validCache = PretrainCache.OpenOrBuild(request.Valid, Path.Combine(cacheDir, "pretrain-valid.tokens"), encoder, options, progress, cancellationToken);
                setup.Owned.Add(validCache);
                var valid = new PretrainBatchSource(validCache, config.SeqLen, config.BatchSize, vocab, config.Seed, shuffle: false);
                int count = (int)Math.Min(config.EvalBatches, Math.Max(1, valid.SequencesPerEpoch / config.BatchSize));
                heldOut = HeldOutBatches.Take(new PretrainBatches(valid), count);
                notes.Add($"held-out data: {validCache.Count:N0} tokens; each evaluation scores {Quantity.Of(count, "batch")} ({Quantity.Of(count * config.BatchSize * config.SeqLen, "token", format: "N0")})");
            }
            var run = TrainingRun.Open(new TrainingRunOptions
            {
                OutputDirectory = output, Config = config, Shape = shape, Train = new PretrainBatches(train), HeldOut = heldOut,
                TokenizerDirectory = request.TokenizerDirectory, Resume = request.Resume, SaveDType = request.SaveDType,
                StopAfterStep = request.StopAfterStep,
                Provenance = new Dictionary<string, string> { ["training data"] = trainCache.Fingerprint[..16], ["tokenizer"] = encoder.Identity },
            });
            return new PreparedRun(run, setup.Owned, notes);
        }
        catch
        {
            setup.Undo();
            throw;
        }
    }

    /// <summary>Sets up a supervised fine-tuning run from a pretrained model directory.</summary>
    /// <exception cref="FileNotFoundException">A data file, the tokenizer or the model is missing.</exception>
    /// <exception cref="InvalidDataException">Unusable data, tokenizer or model, pairs too long, or a resume that does not match.</exception>
    public static PreparedRun Prepare(SftRequest request, IProgress<DataProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var (modelDir, shape, config, tokenizerDir, tokenizer, output) = OpenBaseModel(request, "sft");
        int eos = tokenizer.EosTokenId ?? shape.EosTokenId;
        int eot = tokenizer.EndOfTurnTokenId ?? eos;

        var setup = new SetupState();
        try
        {
            var encoder = Encoder(tokenizer, tokenizerDir);
            string templateId = Hash(System.Text.Encoding.UTF8.GetBytes(tokenizer.ChatTemplate.Source));
            var cacheOptions = new SftCacheOptions(eot, eos, templateId);
            ChatRenderer render = (turns, addGenerationPrompt) =>
                tokenizer.ApplyChatTemplate(turns.Select(t => new ChatMessage(t.Role, t.Content)).ToList(), addGenerationPrompt);
            string cacheDir = setup.CreateCacheDirectory(output);
            var trainCache = SftCache.OpenOrBuild(request.Data, Path.Combine(cacheDir, "sft-train.tokens"), encoder, render, cacheOptions, progress, cancellationToken);
            setup.Owned.Add(trainCache);
            var batchOptions = new SftBatchOptions { BatchSize = config.BatchSize, MaxLength = config.SeqLen, EosTokenId = eos, Seed = config.Seed };
            var train = new SftBatchSource(trainCache, batchOptions, shape.VocabSize);
            if (train.SkippedCount > 0 && !request.SkipLong)
            {
                int longest = 0;
                for (long i = 0; i < trainCache.RecordCount; i++) longest = Math.Max(longest, trainCache.GetRecord(i).Length);
                throw TooLong(train.SkippedCount, trainCache.RecordCount, "SFT pairs", config.SeqLen, longest);
            }
            var notes = new List<string>
            {
                $"SFT data: {trainCache.RecordCount:N0} pairs (multi-turn dialogues split per answer), {train.PairsPerEpoch:N0} used per epoch" +
                (train.SkippedCount > 0 ? $", {train.SkippedCount:N0} longer than {config.SeqLen} tokens left out" : ""),
            };
            IReadOnlyList<TokenBatch> heldOut = [];
            if (request.Valid.Count > 0 && config.EvalBatches > 0)
            {
                var validCache = SftCache.OpenOrBuild(request.Valid, Path.Combine(cacheDir, "sft-valid.tokens"), encoder, render, cacheOptions, progress, cancellationToken);
                setup.Owned.Add(validCache);
                var valid = new SftBatchSource(validCache, batchOptions with { Shuffle = false }, shape.VocabSize);
                int count = (int)Math.Min(config.EvalBatches, Math.Max(1, valid.PairsPerEpoch / config.BatchSize));
                heldOut = HeldOutBatches.Take(new SftBatches(valid), count);
                notes.Add($"held-out SFT data: {Quantity.Of(validCache.RecordCount, "pair", format: "N0")}; each evaluation scores {Quantity.Of(count, "batch")}");
            }
            var run = TrainingRun.Open(new TrainingRunOptions
            {
                OutputDirectory = output, Config = config, Shape = shape, Train = new SftBatches(train), HeldOut = heldOut, Sft = true,
                InitialWeights = modelDir, TokenizerDirectory = tokenizerDir, Resume = request.Resume, SaveDType = request.SaveDType,
                StopAfterStep = request.StopAfterStep,
                Provenance = new Dictionary<string, string> { ["training data"] = trainCache.Fingerprint[..16], ["tokenizer"] = encoder.Identity },
            });
            return new PreparedRun(run, setup.Owned, notes);
        }
        catch
        {
            setup.Undo();
            throw;
        }
    }

    /// <summary>Sets up a VRPO run from a fine-tuned model directory (the policy's start and the frozen reference).</summary>
    /// <exception cref="FileNotFoundException">A data file, the tokenizer or the model is missing.</exception>
    /// <exception cref="InvalidDataException">Unusable data, tokenizer or model, pairs too long, or a resume that does not match.</exception>
    public static PreparedRun Prepare(PreferenceRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Vrpo.Validate();
        var (modelDir, shape, config, tokenizerDir, tokenizer, output) = OpenBaseModel(request, "prefer");
        int eos = tokenizer.EosTokenId ?? shape.EosTokenId;

        var encoder = Encoder(tokenizer, tokenizerDir);
        (List<EncodedPreference> Kept, int Skipped, int Longest) Encode(IReadOnlyList<string> sources)
        {
            var all = EncodePreferences(tokenizer, sources, cancellationToken);
            var kept = all.Where(p => p.Length <= config.SeqLen).ToList();
            return (kept, all.Count - kept.Count, all.Count == 0 ? 0 : all.Max(p => p.Length));
        }
        var train = Encode(request.Data);
        if (train.Skipped > 0 && !request.SkipLong)
            throw TooLong(train.Skipped, train.Kept.Count + train.Skipped, "preference pairs", config.SeqLen, train.Longest);
        if (train.Kept.Count == 0) throw new InvalidDataException($"no preference pair fits in seq_len {config.SeqLen} tokens");
        var notes = new List<string>
        {
            $"preference data: {train.Kept.Count:N0} pairs ({(double)config.Steps * config.BatchSize * config.GradAccumulation / train.Kept.Count:0.##} epochs in {Quantity.Of(config.Steps, "step")})" +
            (train.Skipped > 0 ? $", {train.Skipped:N0} longer than {config.SeqLen} tokens left out" : ""),
            $"VRPO: {request.Vrpo}; reference = {modelDir}",
        };
        IReadOnlyList<TokenBatch> heldOut = [];
        if (request.Valid.Count > 0 && config.EvalBatches > 0)
        {
            var valid = Encode(request.Valid);
            if (valid.Kept.Count > 0)
            {
                int count = Math.Min(config.EvalBatches, (valid.Kept.Count + config.BatchSize - 1) / config.BatchSize);
                heldOut = HeldOutBatches.Take(new PreferenceBatches(valid.Kept, Math.Min(config.BatchSize, valid.Kept.Count), config.SeqLen, eos, config.Seed, shuffle: false), count);
                notes.Add($"held-out preference data: {Quantity.Of(valid.Kept.Count, "pair", format: "N0")}; each evaluation scores {Quantity.Of(count, "batch")}");
            }
        }
        string weightsHash = HashFiles(Directory.EnumerateFiles(modelDir, "*.safetensors").Order(StringComparer.Ordinal), cancellationToken);
        var run = TrainingRun.Open(new TrainingRunOptions
        {
            OutputDirectory = output, Config = config, Shape = shape, Train = new PreferenceBatches(train.Kept, config.BatchSize, config.SeqLen, eos, config.Seed),
            HeldOut = heldOut, Preference = request.Vrpo, InitialWeights = modelDir, TokenizerDirectory = tokenizerDir, Resume = request.Resume,
            SaveDType = request.SaveDType, StopAfterStep = request.StopAfterStep,
            Provenance = new Dictionary<string, string>
            {
                ["training data"] = Fingerprints.Compute(request.Data, "prefer", cancellationToken)[..16],
                ["tokenizer"] = encoder.Identity, ["reference model"] = weightsHash, ["vrpo"] = request.Vrpo.ToString(),
            },
        });
        return new PreparedRun(run, [], notes);
    }

    /// <summary>
    /// Reads and tokenises preference pairs: the prompt rendered with the tokenizer's chat template (generation prompt
    /// added), each answer followed by end of turn and EOS, exactly as SFT encodes a response.
    /// </summary>
    public static IReadOnlyList<EncodedPreference> EncodePreferences(Tokenizer tokenizer, IReadOnlyList<string> sources, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        int eos = tokenizer.EosTokenId ?? throw new InvalidDataException("the tokenizer has no EOS token (eos_token in tokenizer_config.json)");
        var options = new SftCacheOptions(tokenizer.EndOfTurnTokenId ?? eos, eos, "");
        var encoder = new DelegateTextEncoder(text => tokenizer.Encode(text), tokenizer.VocabSize, "");
        ChatRenderer render = (turns, addGenerationPrompt) =>
            tokenizer.ApplyChatTemplate(turns.Select(t => new ChatMessage(t.Role, t.Content)).ToList(), addGenerationPrompt);
        var pairs = new List<EncodedPreference>();
        foreach (var record in CorpusReader.ReadPreferences(sources, null, cancellationToken))
        {
            var (prompt, chosen) = SftCache.Encode(new SftPair(record.History, record.Chosen), encoder, render, options);
            var (_, rejected) = SftCache.Encode(new SftPair(record.History, record.Rejected), encoder, render, options);
            pairs.Add(new EncodedPreference(prompt, chosen, rejected));
        }
        return pairs;
    }

    /// <summary>What a fine-tuning run starts from, checked: the model (its architecture written into the run's config),
    /// its tokenizer, the data files and the output directory.</summary>
    private readonly record struct BaseModel(
        string ModelDirectory, ModelShape Shape, RunConfig Config, string TokenizerDirectory, Tokenizer Tokenizer, string OutputDirectory);

    /// <summary>Checks everything of a fine-tuning request that needs no tokenising: model, tokenizer, data files, output directory.</summary>
    private static BaseModel OpenBaseModel(FineTuneRequest request, string kind)
    {
        string modelDir = Path.GetFullPath(request.ModelDirectory);
        string configPath = Path.Combine(modelDir, LladaConfigFile.FileName);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{modelDir} is not a model directory ({LladaConfigFile.FileName} not found)", configPath);
        var shape = ModelShape.FromConfig(LladaConfigFile.Load(configPath));
        var config = request.Config with
        {
            DModel = shape.DModel, NLayers = shape.NLayers, NHeads = shape.NHeads, NKvHeads = shape.NKvHeads,
            MlpHiddenSize = shape.MlpHiddenSize, VocabSize = shape.VocabSize, RopeTheta = shape.RopeTheta, WeightTying = shape.WeightTying,
        };
        config.Validate(config.Name);
        if (config.SeqLen > shape.MaxSequenceLength)
            throw new InvalidDataException($"seq_len {config.SeqLen} exceeds the model's max_sequence_length {shape.MaxSequenceLength} ({configPath})");
        string tokenizerDir = request.TokenizerDirectory ?? modelDir;
        var tokenizer = LoadTokenizer(tokenizerDir);
        if (tokenizer.VocabSize > shape.VocabSize)
            throw new InvalidDataException($"the tokenizer in {tokenizerDir} has {tokenizer.VocabSize} tokens but the model's vocabulary has {shape.VocabSize}");
        if (tokenizer.MaskTokenId is { } tm && tm != shape.MaskTokenId)
            throw new InvalidDataException($"the tokenizer's mask token is id {tm} but the model's mask_token_id is {shape.MaskTokenId}");
        RequireSources(request.Data, "training data");
        RequireSources(request.Valid, "validation data");
        string output = Path.GetFullPath(request.OutputDirectory);
        TrainingRun.CheckOutputDirectory(output, request.Resume, config, kind);
        return new BaseModel(modelDir, shape, config, tokenizerDir, tokenizer, output);
    }

    private static InvalidDataException TooLong(long skipped, long total, string what, int seqLen, int longest) => new(
        $"{skipped} of {total} {what} are longer than seq_len {seqLen} tokens (the longest has {longest}); " +
        "raise seq_len (up to the model's max_sequence_length) or pass --skip-long to leave them out");

    /// <summary>
    /// What a setup has opened and created so far, undone when it fails: the token caches it opened are closed and the
    /// directories it created are removed while still empty, so bad data leaves no empty output or cache folder behind
    /// (a cache that was built completely stays, for the next attempt to reuse).
    /// </summary>
    private sealed class SetupState
    {
        private readonly List<string> _created = [];

        public List<IDisposable> Owned { get; } = [];

        /// <summary>Creates &lt;output&gt;/cache and the directories above it that do not exist yet.</summary>
        public string CreateCacheDirectory(string output)
        {
            string cacheDir = Path.Combine(output, CacheDirectoryName);
            for (string? dir = cacheDir; !string.IsNullOrEmpty(dir) && !Directory.Exists(dir); dir = Path.GetDirectoryName(dir))
                _created.Add(dir);
            Directory.CreateDirectory(cacheDir);
            return cacheDir;
        }

        public void Undo()
        {
            foreach (var d in Owned) d.Dispose();
            foreach (string dir in _created) // innermost first
            {
                try
                {
                    if (Directory.Exists(dir) && !Directory.EnumerateFileSystemEntries(dir).Any()) Directory.Delete(dir);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Best effort: the setup's own error is what the user needs to see.
                }
            }
        }
    }

    private static void RequireSources(IReadOnlyList<string> sources, string what)
    {
        foreach (string s in sources)
            if (!File.Exists(s) && !Directory.Exists(s))
                throw new FileNotFoundException($"{what} '{s}' not found", s);
    }

    private static Tokenizer LoadTokenizer(string directory)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"tokenizer directory '{directory}' not found");
        if (!File.Exists(Path.Combine(directory, "tokenizer.json")) && !File.Exists(Path.Combine(directory, "tokenizer.json.gz")))
            throw new FileNotFoundException($"no tokenizer.json in '{directory}' (train one with `llada tokenizer train`)", Path.Combine(directory, "tokenizer.json"));
        return Tokenizer.FromDirectory(directory);
    }

    private static DelegateTextEncoder Encoder(Tokenizer tokenizer, string directory)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (string name in new[] { "tokenizer.json", "tokenizer.json.gz", "tokenizer_config.json" })
        {
            string path = Path.Combine(directory, name);
            if (File.Exists(path)) hash.AppendData(File.ReadAllBytes(path));
        }
        string identity = Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
        return new DelegateTextEncoder(text => tokenizer.Encode(text), tokenizer.VocabSize, identity);
    }

    private static string Hash(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes))[..16];

    /// <summary><see cref="Hash"/> of the files' concatenated contents, streamed (a model's weights never sit in memory).</summary>
    private static string HashFiles(IEnumerable<string> paths, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        foreach (string path in paths) Fingerprints.AppendFile(hash, path, buffer, cancellationToken);
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }
}
