using System.CommandLine;
using Llada.Model;
using Llada.Numerics;
using Llada.Numerics.Native;
using Llada.Tokenization;

namespace Llada.Cli.Commands;

/// <summary>Options shared by the commands that load a model, and how they find one.</summary>
internal static class ModelSource
{
    /// <summary>Folder of the embedded default model, relative to the executable (and to the repository root).</summary>
    public const string DefaultModelFolder = "models/llada-tiny-instruct";

    public static Option<string?> ModelOption(bool required = false) => new("--model", "-m")
    {
        Description = required
            ? "Model directory in the Hugging Face layout (config.json, *.safetensors, tokenizer.json)."
            : $"Model directory in the Hugging Face layout (config.json, *.safetensors, tokenizer.json). Default: the embedded {DefaultModelFolder}.",
        Required = required,
    };

    public static Option<int?> ThreadsOption() => new("--threads")
    {
        Description = "Threads for the numeric kernels (default: all cores).",
    };

    public static Option<bool> JsonOption() => new("--json")
    {
        Description = "Print one JSON object instead of human-readable text.",
    };

    /// <summary>--compute, for every command that runs a model: the arithmetic of products with bf16 weights.</summary>
    public static Option<string> ComputeOption() => new("--compute")
    {
        Description = "Arithmetic of matrix products with bf16 weights: float32 (default: the weights are widened to float32, exact " +
                      "with respect to the stored weights) or bf16 (activations rounded to bf16, products summed in float32, like " +
                      "PyTorch's bf16 autocast: faster on CPUs with AVX512_BF16, slightly different logits). f32, f16 and q8 weights " +
                      "are not affected.",
        DefaultValueFactory = _ => ComputeName(Bf16Arithmetic.Float32),
    };

    /// <summary>The <see cref="Bf16Arithmetic"/> a --compute value (or a chat's /set compute) names.</summary>
    public static Bf16Arithmetic ParseCompute(string? name, string option = "--compute") => name?.Trim().ToLowerInvariant() switch
    {
        null or "float32" or "f32" or "fp32" => Bf16Arithmetic.Float32,
        "bf16" or "bfloat16" => Bf16Arithmetic.Bf16Activations,
        _ => throw new ArgumentException($"{option} '{name}' is unknown; use float32 (the default, exact) or bf16 (faster, like PyTorch's bf16 autocast)"),
    };

    /// <summary>The --compute name of an arithmetic: float32 or bf16.</summary>
    public static string ComputeName(Bf16Arithmetic arithmetic) => arithmetic == Bf16Arithmetic.Bf16Activations ? "bf16" : "float32";

    /// <summary>
    /// Sets <paramref name="arithmetic"/> on a loaded model. Returns a notice when bf16 was asked for but changes nothing
    /// (no bf16 weight matrices, or the float32 autoregressive baseline) or gains no speed (no AVX512_BF16), else null.
    /// </summary>
    public static string? ApplyCompute(IMaskPredictor predictor, Bf16Arithmetic arithmetic)
    {
        if (predictor is MaskPredictor model) model.Bf16Arithmetic = arithmetic;
        if (arithmetic == Bf16Arithmetic.Float32) return null;
        return predictor switch
        {
            not MaskPredictor => "--compute bf16: this model computes in float32 only (an autoregressive baseline holds float32 weights); the option changes nothing",
            MaskPredictor { HasBf16Matrices: false } m =>
                $"--compute bf16: the model has no bf16 weight matrices ({m.Checkpoint.Describe().DTypeSummary}); the option changes nothing",
            _ when !NativeKernels.HasBf16Kernel =>
                $"--compute bf16: {NativeKernels.Bf16Kernel}; the results are bf16 arithmetic but not faster than float32",
            _ => null,
        };
    }

    /// <summary><see cref="ApplyCompute"/>, writing its notice (if any) to <paramref name="notices"/>.</summary>
    public static void ApplyCompute(IMaskPredictor predictor, Bf16Arithmetic arithmetic, TextWriter notices)
    {
        if (ApplyCompute(predictor, arithmetic) is { } notice) notices.WriteLine($"({notice})");
    }

    /// <summary>--overwrite, for the commands that refuse an existing --out without it.</summary>
    public static Option<bool> OverwriteOption() => new("--overwrite") { Description = "Replace --out if it exists." };

    /// <summary>Resolves --model: the given directory, else $LLADA_MODEL, else the embedded default.</summary>
    public static string Resolve(string? model)
    {
        if (!string.IsNullOrEmpty(model))
        {
            if (!Directory.Exists(model)) throw new DirectoryNotFoundException($"model directory '{model}' does not exist");
            return model;
        }
        string? fromEnv = Environment.GetEnvironmentVariable("LLADA_MODEL");
        if (!string.IsNullOrEmpty(fromEnv))
        {
            if (!Directory.Exists(fromEnv)) throw new DirectoryNotFoundException($"LLADA_MODEL points to '{fromEnv}', which does not exist");
            return fromEnv;
        }
        foreach (var candidate in new[]
                 {
                     Path.Combine(AppContext.BaseDirectory, DefaultModelFolder),
                     Path.Combine(Directory.GetCurrentDirectory(), DefaultModelFolder),
                 })
            if (File.Exists(Path.Combine(candidate, "config.json"))) return candidate;
        throw new DirectoryNotFoundException(
            $"no --model given and the embedded default model ({DefaultModelFolder}) was not found next to the executable; pass --model DIR");
    }

    public static void ApplyThreads(int? threads)
    {
        if (threads is null) return;
        if (threads < 1) throw new ArgumentException($"--threads must be at least 1 (got {threads})");
        Parallelism.ThreadCount = threads.Value;
    }

    /// <summary>Loads the tokenizer of a model directory, with a clear error when it has none.</summary>
    public static Tokenizer LoadTokenizer(string directory)
    {
        bool has = File.Exists(Path.Combine(directory, "tokenizer.json")) || File.Exists(Path.Combine(directory, "tokenizer.json.gz"));
        if (!has) throw new FileNotFoundException($"'{directory}' has no tokenizer.json; pass token ids instead of text");
        return Tokenizer.FromDirectory(directory);
    }

    /// <summary>Parses "1,2,3" (spaces allowed) into ids.</summary>
    public static int[] ParseIds(string text, string optionName)
    {
        var parts = text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], out ids[i]) || ids[i] < 0)
                throw new ArgumentException($"{optionName}: '{parts[i]}' is not a token id (expected comma-separated non-negative integers)");
        if (ids.Length == 0) throw new ArgumentException($"{optionName} is empty");
        return ids;
    }

    /// <summary>
    /// True when <paramref name="dir"/> holds an autoregressive baseline (`llada train --objective ar`): its config.json
    /// says "llada_objective": "ar", or its training state records the objective.
    /// </summary>
    public static bool IsAutoregressive(string dir)
    {
        try
        {
            return Llada.Evaluation.EvaluatedModel.DetectKind(dir) == Llada.Evaluation.ModelKind.Autoregressive;
        }
        catch (InvalidDataException)
        {
            return false; // a damaged training state is the training command's concern, not inference's
        }
    }

    /// <summary>
    /// The diffusion sampler would run an AR baseline bidirectionally and produce nonsense, so the commands without an
    /// autoregressive path refuse it with a clear message.
    /// </summary>
    private static void RejectAutoregressiveRun(string dir)
    {
        if (IsAutoregressive(dir))
            throw new NotSupportedException(
                $"'{dir}' is an autoregressive baseline (trained with --objective ar); this command would run it " +
                "without its causal mask. `llada generate`, `llada score` and `llada eval` handle AR checkpoints.");
    }

    /// <summary>A loaded model with its tokenizer (null when the directory has none).</summary>
    public sealed class Loaded(string directory, MaskPredictor predictor, Tokenizer? tokenizer) : IDisposable
    {
        public string Directory { get; } = directory;
        public MaskPredictor Predictor { get; } = predictor;
        public Tokenizer? Tokenizer { get; } = tokenizer;
        public LladaConfig Config => Predictor.Config;

        /// <summary>The tokenizer, or a clear error naming what to pass instead.</summary>
        public Tokenizer RequireTokenizer(string instead) =>
            Tokenizer ?? throw new FileNotFoundException($"'{Directory}' has no tokenizer.json; {instead}");

        /// <summary>End-of-turn id from the tokenizer (&lt;|eot_id|&gt;), if it has one.</summary>
        public int? EndOfTurnId => Tokenizer?.EndOfTurnTokenId;

        /// <summary>EOS id: config.json's eos_token_id.</summary>
        public int EosId => Config.EosTokenId;

        public void Dispose() => Predictor.Dispose();
    }

    /// <summary>
    /// Loads --model (see <see cref="Resolve"/>) with its tokenizer, computing as <paramref name="compute"/> says (a notice
    /// about it goes to <paramref name="notices"/>, see <see cref="ApplyCompute(IMaskPredictor, Bf16Arithmetic)"/>).
    /// </summary>
    public static Loaded Load(string? model, Bf16Arithmetic compute = Bf16Arithmetic.Float32, TextWriter? notices = null)
    {
        string dir = Resolve(model);
        RejectAutoregressiveRun(dir);
        var predictor = MaskPredictor.Load(dir);
        try
        {
            ApplyCompute(predictor, compute, notices ?? TextWriter.Null);
            bool has = File.Exists(Path.Combine(dir, "tokenizer.json")) || File.Exists(Path.Combine(dir, "tokenizer.json.gz"));
            var tokenizer = has ? Tokenizer.FromDirectory(dir) : null;
            if (tokenizer is not null && tokenizer.VocabSize > predictor.VocabSize)
                throw new InvalidDataException(
                    $"'{dir}': the tokenizer has {tokenizer.VocabSize} tokens but the model's embedding has only {predictor.VocabSize} rows");
            return new Loaded(dir, predictor, tokenizer);
        }
        catch
        {
            predictor.Dispose();
            throw;
        }
    }
}
