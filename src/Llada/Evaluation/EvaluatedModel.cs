using System.Text.Json;
using Llada.Model;
using Llada.Tokenization;
using Llada.Training;
using Llada.Training.Runs;

namespace Llada.Evaluation;

/// <summary>How a model produces likelihoods and answers.</summary>
public enum ModelKind
{
    /// <summary>A masked diffusion model (LLaDA): bidirectional mask predictor; likelihoods are ELBO bounds.</summary>
    Diffusion,
    /// <summary>An autoregressive baseline (trained with <c>llada train --objective ar</c>): causal, exact likelihoods.</summary>
    Autoregressive,
}

/// <summary>A model under evaluation: its predictor, kind, tokenizer and special ids.</summary>
public sealed class EvaluatedModel : IDisposable
{
    private readonly IDisposable? _owned;

    /// <summary>Wraps a predictor. For <see cref="ModelKind.Autoregressive"/> it must attend causally.</summary>
    public EvaluatedModel(IMaskPredictor predictor, ModelKind kind, Tokenizer tokenizer, int eosTokenId, string name,
        IDisposable? owned = null)
    {
        Predictor = predictor ?? throw new ArgumentNullException(nameof(predictor));
        Tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        if (tokenizer.VocabSize > predictor.VocabSize)
            throw new ArgumentException($"{name}: the tokenizer has {tokenizer.VocabSize} tokens but the model's embedding has only {predictor.VocabSize} rows");
        Kind = kind;
        EosTokenId = eosTokenId;
        Name = name;
        _owned = owned;
    }

    /// <summary>The network.</summary>
    public IMaskPredictor Predictor { get; }
    /// <summary>Diffusion or autoregressive.</summary>
    public ModelKind Kind { get; }
    /// <summary>Text to ids and back, with the chat template.</summary>
    public Tokenizer Tokenizer { get; }
    /// <summary>eos_token_id of config.json.</summary>
    public int EosTokenId { get; }
    /// <summary>&lt;|eot_id|&gt; of the tokenizer, if it has one.</summary>
    public int? EndOfTurnTokenId => Tokenizer.EndOfTurnTokenId;
    /// <summary>How reports name the model (its directory).</summary>
    public string Name { get; }

    /// <summary>
    /// Loads the checkpoint directory <paramref name="directory"/> (config.json, safetensors, tokenizer.json).
    /// <paramref name="kind"/> null detects it with <see cref="DetectKind"/>. A diffusion model runs on the
    /// memory-mapped <see cref="MaskPredictor"/>; an autoregressive one is copied into a causal float32
    /// <see cref="TrainableModel"/>, whose attention buffers grow with the square of the longest sequence: it accepts
    /// at most <paramref name="autoregressiveMaxSequence"/> tokens (default: max_sequence_length, capped at 2048).
    /// </summary>
    public static EvaluatedModel Load(string directory, ModelKind? kind = null, int? autoregressiveMaxSequence = null)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"model directory '{directory}' does not exist");
        bool hasTokenizer = File.Exists(Path.Combine(directory, "tokenizer.json")) || File.Exists(Path.Combine(directory, "tokenizer.json.gz"));
        if (!hasTokenizer) throw new FileNotFoundException($"'{directory}' has no tokenizer.json; evaluation tasks are text");
        var tokenizer = Tokenizer.FromDirectory(directory);
        ModelKind k = kind ?? DetectKind(directory);
        if (k == ModelKind.Diffusion)
        {
            var predictor = MaskPredictor.Load(directory);
            try
            {
                return new EvaluatedModel(predictor, k, tokenizer, predictor.Config.EosTokenId, directory, predictor);
            }
            catch
            {
                predictor.Dispose();
                throw;
            }
        }
        var config = LladaConfigFile.Load(Path.Combine(directory, LladaConfigFile.FileName));
        var shape = ModelShape.FromConfig(config);
        int maxSeq = Math.Min(shape.MaxSequenceLength, autoregressiveMaxSequence ?? 2048);
        var model = new TrainableModel(shape, maxBatch: 1, maxSeqLen: maxSeq, seed: 0) { Causal = true };
        ModelWeights.Load(model, directory);
        return new EvaluatedModel(model, k, tokenizer, config.EosTokenId, directory);
    }

    /// <summary>
    /// The kind of model a directory holds. An AR baseline written by <c>llada train --objective ar</c> carries
    /// <c>"llada_objective": "ar"</c> in config.json; older runs only recorded it in <c>training_state.json</c> (the
    /// run configuration's "objective"), which is read as a fallback. Without either the model is a diffusion model.
    /// </summary>
    public static ModelKind DetectKind(string directory)
    {
        string configPath = Path.Combine(directory, LladaConfigFile.FileName);
        if (File.Exists(configPath)
            && ReadObjective(configPath, root => root.TryGetProperty(TrainingRun.ObjectiveConfigKey, out var o) ? o : null) is { } fromConfig)
            return fromConfig;
        string statePath = Path.Combine(directory, TrainingRun.StateFileName);
        if (!File.Exists(statePath)) return ModelKind.Diffusion;
        return ReadObjective(statePath, root =>
            root.TryGetProperty("config", out var config) && config.ValueKind == JsonValueKind.Object
            && config.TryGetProperty("objective", out var o) ? o : null) ?? ModelKind.Diffusion;
    }

    private static ModelKind? ReadObjective(string path, Func<JsonElement, JsonElement?> find)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object || find(doc.RootElement) is not { } value) return null;
            string? text = value.ValueKind == JsonValueKind.String ? value.GetString() : null;
            return RunConfig.ParseObjective(text ?? "") switch
            {
                RunObjective.Ar => ModelKind.Autoregressive,
                RunObjective.Mdm => ModelKind.Diffusion,
                _ => throw new InvalidDataException($"{path}: the objective must be \"mdm\" or \"ar\", found {value.GetRawText()}"),
            };
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message}); pass --model-kind to say what the model is");
        }
    }

    /// <summary>Encodes a prompt: a user turn of the chat template, or plain text (BOS added if the tokenizer says so).</summary>
    public int[] EncodePrompt(string text, bool chatTemplate) =>
        chatTemplate
            ? Tokenizer.EncodeChat([new ChatMessage("user", text)], addGenerationPrompt: true)
            : Tokenizer.Encode(text, addSpecialTokens: true);

    /// <summary>Releases the checkpoint mapping, if this instance owns one.</summary>
    public void Dispose() => _owned?.Dispose();
}
