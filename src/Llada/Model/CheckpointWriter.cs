using System.Text.Json;

namespace Llada.Model;

/// <summary>Options of <see cref="CheckpointWriter.Write"/>.</summary>
public sealed record CheckpointWriteOptions
{
    /// <summary>Largest safetensors file; above it the weights are sharded with an index. Default 5 GB like transformers.</summary>
    public long MaxShardBytes { get; init; } = 5_000_000_000;

    /// <summary>Replace an existing model directory (default: refuse).</summary>
    public bool Overwrite { get; init; }

    /// <summary>Directory whose tokenizer.json, tokenizer_config.json and special_tokens_map.json are copied when present.</summary>
    public string? TokenizerSourceDirectory { get; init; }

    /// <summary>
    /// Directory whose generation_config.json (the model's recommended sampling settings) is copied when present. Set it
    /// for a copy of the same model in another form (quantize), not for newly trained weights, whose best settings may differ.
    /// </summary>
    public string? GenerationConfigSourceDirectory { get; init; }

    /// <summary>Extra files written verbatim, file name to text (e.g. a tokenizer_config.json built in memory).</summary>
    public IReadOnlyDictionary<string, string>? ExtraFiles { get; init; }

    /// <summary>Receives each stored tensor just before its data is written (a Q8_0 matrix is two: quants and scales).</summary>
    public IProgress<NamedTensor>? Progress { get; init; }
}

/// <summary>
/// Writes a Hugging Face LLaDA model directory: config.json, the weights (model.safetensors, or shards plus
/// model.safetensors.index.json), and tokenizer files. Everything is written into a temporary sibling directory
/// and renamed into place, so a crash never leaves a half-written model under the target name.
/// </summary>
public static class CheckpointWriter
{
    /// <summary>Tokenizer files copied from <see cref="CheckpointWriteOptions.TokenizerSourceDirectory"/>.</summary>
    public static IReadOnlyList<string> TokenizerFileNames { get; } =
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

    /// <summary>The model's sampling defaults, copied from <see cref="CheckpointWriteOptions.GenerationConfigSourceDirectory"/>
    /// (read by Llada.Diffusion.SamplingDefaults).</summary>
    public const string GenerationConfigFileName = "generation_config.json";

    /// <summary>
    /// Writes <paramref name="tensors"/> (in model order; see <see cref="LladaTensorNames.Expected"/>) and
    /// <paramref name="config"/> to <paramref name="directory"/>. The tensors must be exactly those the config requires,
    /// with the right shapes and a float dtype or as Q8_0 pairs (<see cref="NamedTensor.Q8FromGenerator"/>); every
    /// mismatch is reported at once before anything is written. config.json gains torch_dtype from the float weights,
    /// and quantization_config when any matrix is Q8_0.
    /// </summary>
    /// <exception cref="CheckpointFormatException">Tensors missing, mis-shaped, unexpected, or neither F32/BF16/F16 nor a valid Q8_0 pair.</exception>
    /// <exception cref="IOException">The directory exists and <see cref="CheckpointWriteOptions.Overwrite"/> is false.</exception>
    public static void Write(string directory, LladaConfig config, IReadOnlyList<NamedTensor> tensors,
        CheckpointWriteOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new CheckpointWriteOptions();
        directory = Path.GetFullPath(directory.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        LladaConfigFile.Validate(config, "config being written");

        var stored = new Dictionary<string, (string DType, IReadOnlyList<long> Shape)>(StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var t in tensors)
            if (!stored.TryAdd(t.Name, (t.DTypeName, t.Shape))) problems.Add($"tensor '{t.Name}' is given twice");
        var logical = Q8Tensors.Fold(stored, problems);
        var shapes = new Dictionary<string, IReadOnlyList<long>>(StringComparer.Ordinal);
        foreach (var (name, (dtype, shape)) in logical)
        {
            shapes[name] = shape;
            if (dtype != Q8Tensors.DTypeName && !SafetensorsDTypes.TryToWeightDType(dtype, out _))
                problems.Add($"tensor '{name}' has dtype {dtype}, expected F32, BF16, F16 or a Q8_0 pair");
        }
        var unexpected = new List<string>();
        problems.AddRange(LladaTensorNames.Check(config, shapes, unexpected));
        problems.AddRange(unexpected.Select(n => $"tensor '{n}' is not part of the model"));
        if (problems.Count > 0) throw new CheckpointFormatException(directory, null, problems);

        if (File.Exists(directory)) throw new IOException($"{directory} is a file, not a directory");
        if (Directory.Exists(directory) && !options.Overwrite)
            throw new IOException($"{directory} already exists (set Overwrite to replace it)");

        // torch_dtype tells transformers what to load the weights as; use the float dtype most parameters have.
        string torchDType = tensors.Where(t => SafetensorsDTypes.TryToWeightDType(t.DTypeName, out _)).GroupBy(t => t.DTypeName)
            .OrderByDescending(g => g.Sum(t => t.ByteLength)).FirstOrDefault()?.Key switch
        {
            "BF16" => "bfloat16",
            "F16" => "float16",
            _ => "float32",
        };
        var otherKeys = new Dictionary<string, JsonElement>(config.OtherKeys, StringComparer.Ordinal)
        {
            ["torch_dtype"] = JsonDocument.Parse($"\"{torchDType}\"").RootElement.Clone(),
        };
        // Declared so that transformers refuses the unknown method instead of reading int8 quants as weights.
        if (logical.Values.Any(v => v.DType == Q8Tensors.DTypeName))
            otherKeys[Q8Tensors.ConfigKey] = JsonDocument.Parse(Q8Tensors.ConfigJson).RootElement.Clone();
        else otherKeys.Remove(Q8Tensors.ConfigKey);
        string configJson = LladaConfigFile.ToJson(config with { OtherKeys = otherKeys });

        string parent = Path.GetDirectoryName(directory) ?? throw new IOException($"{directory} has no parent directory");
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(directory)}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            File.WriteAllText(Path.Combine(temp, LladaConfigFile.FileName), configJson);
            SafetensorsWriter.WriteModel(temp, tensors, options.MaxShardBytes, SafetensorsWriter.PyTorchMetadata, cancellationToken, options.Progress);
            if (options.TokenizerSourceDirectory is { } source)
                foreach (string name in TokenizerFileNames)
                {
                    string from = Path.Combine(source, name);
                    if (File.Exists(from)) File.Copy(from, Path.Combine(temp, name));
                }
            if (options.GenerationConfigSourceDirectory is { } settings
                && Path.Combine(settings, GenerationConfigFileName) is var generationConfig && File.Exists(generationConfig))
                File.Copy(generationConfig, Path.Combine(temp, GenerationConfigFileName));
            if (options.ExtraFiles is { } extra)
                foreach (var (name, text) in extra)
                {
                    if (name != Path.GetFileName(name) || name is "" or "." or "..")
                        throw new ArgumentException($"extra file '{name}' must be a plain file name");
                    File.WriteAllText(Path.Combine(temp, name), text);
                }

            cancellationToken.ThrowIfCancellationRequested();
            Publish(temp, directory);
        }
        catch
        {
            TryDeleteDirectory(temp);
            throw;
        }
    }

    // Rename the finished directory into place; an existing one is moved aside first and removed after.
    private static void Publish(string temp, string directory)
    {
        if (!Directory.Exists(directory))
        {
            Directory.Move(temp, directory);
            return;
        }
        string old = Path.Combine(Path.GetDirectoryName(directory)!, $".{Path.GetFileName(directory)}.old-{Guid.NewGuid():N}");
        Directory.Move(directory, old);
        try
        {
            Directory.Move(temp, directory);
        }
        catch
        {
            Directory.Move(old, directory);
            throw;
        }
        TryDeleteDirectory(old);
    }

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
