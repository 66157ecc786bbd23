using System.Text.Json;
using Llada.Numerics;

namespace Llada.Model;

/// <summary>The weights of one Transformer block, as views into the mapped checkpoint.</summary>
/// <param name="AttnNorm">attn_norm.weight as 1 x d.</param>
/// <param name="QProj">q_proj [d, d].</param>
/// <param name="KProj">k_proj [n_kv_heads*head_dim, d].</param>
/// <param name="VProj">v_proj [n_kv_heads*head_dim, d].</param>
/// <param name="AttnOut">attn_out [d, d].</param>
/// <param name="FfNorm">ff_norm.weight as 1 x d.</param>
/// <param name="FfProj">ff_proj, the SwiGLU gate [mlp_hidden_size, d].</param>
/// <param name="UpProj">up_proj [mlp_hidden_size, d].</param>
/// <param name="FfOut">ff_out, the down projection [d, mlp_hidden_size].</param>
/// <param name="QNorm">LLaDA-MoE self_attn.q_norm as 1 x head_dim, or null without QK-norm.</param>
/// <param name="KNorm">LLaDA-MoE self_attn.k_norm as 1 x head_dim, or null without QK-norm.</param>
/// <remarks>
/// LLaDA-MoE names map onto the same slots (input_layernorm, self_attn.*_proj, o_proj, post_attention_layernorm); in
/// a MoE layer the three MLP matrices are default and the experts come from <see cref="LladaCheckpoint.MoeLayer"/>.
/// </remarks>
public readonly record struct LladaLayerWeights(
    WeightMatrix AttnNorm, WeightMatrix QProj, WeightMatrix KProj, WeightMatrix VProj, WeightMatrix AttnOut,
    WeightMatrix FfNorm, WeightMatrix FfProj, WeightMatrix UpProj, WeightMatrix FfOut,
    WeightMatrix? QNorm = null, WeightMatrix? KNorm = null);

/// <summary>One SwiGLU expert: down(silu(gate(x)) * up(x)).</summary>
/// <param name="Gate">gate_proj [ff, d].</param>
/// <param name="Up">up_proj [ff, d].</param>
/// <param name="Down">down_proj [d, ff].</param>
public readonly record struct SwiGluWeights(WeightMatrix Gate, WeightMatrix Up, WeightMatrix Down);

/// <summary>The sparse MLP of one LLaDA-MoE layer, as views into the mapped checkpoint.</summary>
/// <param name="Router">mlp.gate [num_experts, d].</param>
/// <param name="Experts">mlp.experts.{e}, one per expert.</param>
/// <param name="Shared">mlp.shared_experts, or null when the config has no shared expert.</param>
public sealed record MoeLayerWeights(WeightMatrix Router, IReadOnlyList<SwiGluWeights> Experts, SwiGluWeights? Shared);

/// <summary>Summary of a checkpoint for display (e.g. <c>llada info</c>).</summary>
/// <param name="Directory">Model directory.</param>
/// <param name="Architecture">architectures[0] of config.json, or LLaDAModelLM.</param>
/// <param name="Config">The parsed config.</param>
/// <param name="ParameterCount">Parameters of the tensors the model uses (a tied head counted once).</param>
/// <param name="ParametersByDType">Parameter count per stored dtype name.</param>
/// <param name="DTypeSummary">The stored dtype, or a mix such as "BF16 + F32".</param>
/// <param name="WeightBytes">Bytes of the tensors the model uses (what the mapping pages in when all are touched).</param>
/// <param name="BytesOnDisk">Total size of the safetensors files.</param>
/// <param name="Files">Safetensors file names.</param>
/// <param name="UnexpectedTensors">Tensors present but not used by the model.</param>
/// <param name="HasTokenizer">tokenizer.json is present.</param>
/// <param name="ActiveParameterCount">Parameters one token's forward pass multiplies with: everything except the
/// untied input embedding (a row lookup) and, in each MoE layer, the experts the router does not select.</param>
public sealed record CheckpointDescription(
    string Directory, string Architecture, LladaConfig Config, long ParameterCount,
    IReadOnlyDictionary<string, long> ParametersByDType, string DTypeSummary, long WeightBytes, long BytesOnDisk,
    IReadOnlyList<string> Files, IReadOnlyList<string> UnexpectedTensors, bool HasTokenizer, long ActiveParameterCount);

/// <summary>
/// A Hugging Face LLaDA model directory opened for inference: config.json, then model.safetensors or
/// model.safetensors.index.json and its shards, all memory-mapped (weights are never copied). Opening checks that
/// every tensor the config requires exists with the right shape and a float dtype (F32, BF16, F16) or as a Q8_0 pair
/// (<see cref="Q8Tensors"/>), reporting all problems in one exception. Matrix views stay valid until <see cref="Dispose"/>.
/// </summary>
public sealed class LladaCheckpoint : IDisposable
{
    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, Stored> _tensors;

    /// <summary>One logical tensor: a plain tensor, or the quants of a Q8_0 pair with its scales (possibly in another shard).</summary>
    private readonly record struct Stored(SafetensorsFile File, TensorInfo Info, SafetensorsFile? ScaleFile = null, TensorInfo? Scales = null)
    {
        public bool IsQ8 => Scales is not null;
        public string DTypeName => IsQ8 ? Q8Tensors.DTypeName : Info.DTypeName;
        public long ByteLength => Info.ByteLength + (Scales?.ByteLength ?? 0);
    }

    private LladaCheckpoint(string directory, LladaConfig config, List<SafetensorsFile> files,
        Dictionary<string, Stored> tensors, List<string> unexpected)
    {
        Directory = directory;
        Config = config;
        _files = files;
        _tensors = tensors;
        UnexpectedTensors = unexpected;
        TokenizerJsonPath = Existing("tokenizer.json");
        TokenizerConfigPath = Existing("tokenizer_config.json");
        SpecialTokensMapPath = Existing("special_tokens_map.json");
    }

    /// <summary>Full path of the model directory.</summary>
    public string Directory { get; }

    /// <summary>The validated config.</summary>
    public LladaConfig Config { get; }

    /// <summary>The mapped safetensors files.</summary>
    public IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>Tensors in the files that the model does not use (a warning, not an error).</summary>
    public IReadOnlyList<string> UnexpectedTensors { get; }

    /// <summary>tokenizer.json beside the weights, or null.</summary>
    public string? TokenizerJsonPath { get; }

    /// <summary>tokenizer_config.json beside the weights (chat template, special tokens), or null.</summary>
    public string? TokenizerConfigPath { get; }

    /// <summary>special_tokens_map.json beside the weights, or null.</summary>
    public string? SpecialTokensMapPath { get; }

    /// <summary>Token embedding wte [embedding_size, d].</summary>
    public WeightMatrix Embedding => Matrix(LladaTensorNames.EmbeddingOf(Config));

    /// <summary>Final norm ln_f as 1 x d.</summary>
    public WeightMatrix FinalNorm => Matrix(LladaTensorNames.FinalNormOf(Config));

    /// <summary>The LM head [embedding_size, d]: ff_out, or wte when weight_tying.</summary>
    public WeightMatrix LmHead => Matrix(LladaTensorNames.LmHeadOf(Config));

    /// <summary>Parameters of the tensors the model uses (a tied head counted once).</summary>
    public long ParameterCount => UsedTensors().Sum(t => t.Info.ElementCount);

    /// <summary>Bytes of the tensors the model uses.</summary>
    public long WeightBytes => UsedTensors().Sum(t => t.ByteLength);

    /// <summary>Total size of the safetensors files.</summary>
    public long BytesOnDisk => _files.Sum(f => f.FileLength);

    /// <summary>The dtype of the large matrices when they all share one (the usual case), else null.</summary>
    public DType? DType
    {
        get
        {
            var dtypes = UsedTensors().Where(t => t.Info.Shape.Count == 2)
                .Select(t => t.IsQ8 ? Numerics.DType.Q8_0 : t.File.WeightDType(t.Info)).Distinct().ToList();
            return dtypes.Count == 1 ? dtypes[0] : null;
        }
    }

    /// <summary>
    /// Opens the model in <paramref name="directory"/>. model.safetensors is preferred over an index when both exist
    /// (as transformers does).
    /// </summary>
    /// <exception cref="CheckpointFormatException">A malformed file, or tensors missing or mis-shaped for the config (all listed).</exception>
    /// <exception cref="UnsupportedArchitectureException">config.json describes another architecture.</exception>
    /// <exception cref="FileNotFoundException">config.json or the weights are absent.</exception>
    public static LladaCheckpoint Open(string directory)
    {
        directory = Path.GetFullPath(directory);
        string configPath = Path.Combine(directory, LladaConfigFile.FileName);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{configPath} not found: not a model directory", configPath);
        var config = LladaConfigFile.Load(configPath);

        var files = new List<SafetensorsFile>();
        try
        {
            var raw = MapWeights(directory, files);
            var foldProblems = new List<string>();
            var logical = Q8Tensors.Fold(raw.ToDictionary(p => p.Key, p => (p.Value.Info.DTypeName, p.Value.Info.Shape), StringComparer.Ordinal), foldProblems);
            var tensors = logical.ToDictionary(p => p.Key, p => p.Value.DType == Q8Tensors.DTypeName
                ? new Stored(raw[p.Key + Q8Tensors.QuantSuffix].File, raw[p.Key + Q8Tensors.QuantSuffix].Info,
                    raw[p.Key + Q8Tensors.ScaleSuffix].File, raw[p.Key + Q8Tensors.ScaleSuffix].Info)
                : new Stored(raw[p.Key].File, raw[p.Key].Info), StringComparer.Ordinal);
            var shapes = tensors.ToDictionary(p => p.Key, p => p.Value.Info.Shape, StringComparer.Ordinal);
            var unexpected = new List<string>();
            var problems = LladaTensorNames.Check(config, shapes, unexpected);
            problems.InsertRange(0, foldProblems);
            foreach (var (name, _) in LladaTensorNames.Expected(config))
                if (tensors.TryGetValue(name, out var t) && !t.IsQ8 && !SafetensorsDTypes.TryToWeightDType(t.Info.DTypeName, out _))
                    problems.Add($"tensor '{name}' in {Path.GetFileName(t.File.Path)} has dtype {t.Info.DTypeName}, expected F32, BF16, F16 or a Q8_0 pair");
            if (problems.Count > 0)
                throw new CheckpointFormatException(directory, null,
                    problems.Prepend($"weights do not match config.json ({ShapeSummary(config)}):").ToList());
            return new LladaCheckpoint(directory, config, files, tensors, unexpected);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    private static string ShapeSummary(LladaConfig c) => c.Moe is not { } moe
        ? $"d_model {c.DModel}, n_layers {c.NLayers}, n_heads {c.NHeads}, n_kv_heads {c.NKvHeads}, mlp_hidden_size {c.MlpHiddenSize}, " +
          $"embedding_size {c.EmbeddingSize}, weight_tying {c.WeightTying.ToString().ToLowerInvariant()}"
        : $"hidden_size {c.DModel}, num_hidden_layers {c.NLayers}, num_attention_heads {c.NHeads}, num_key_value_heads {c.NKvHeads}, " +
          $"num_experts {moe.NumExperts}, expert_intermediate_size {moe.ExpertIntermediateSize}, " +
          $"shared_expert_intermediate_size {moe.SharedExpertIntermediateSize}, MoE layers {moe.MoeLayerCount}, " +
          $"qk_layernorm {moe.QkNorm.ToString().ToLowerInvariant()}, vocab_size {c.VocabSize}, " +
          $"tie_word_embeddings {c.WeightTying.ToString().ToLowerInvariant()}";

    private static Dictionary<string, (SafetensorsFile File, TensorInfo Info)> MapWeights(string directory, List<SafetensorsFile> files)
    {
        var tensors = new Dictionary<string, (SafetensorsFile, TensorInfo)>(StringComparer.Ordinal);
        string single = Path.Combine(directory, SafetensorsWriter.SingleFileName);
        string index = Path.Combine(directory, SafetensorsWriter.IndexFileName);
        if (File.Exists(single))
        {
            var file = SafetensorsFile.Open(single);
            files.Add(file);
            foreach (var t in file.Tensors) tensors.Add(t.Name, (file, t));
            return tensors;
        }
        if (!File.Exists(index))
            throw new FileNotFoundException(
                $"{directory} has neither {SafetensorsWriter.SingleFileName} nor {SafetensorsWriter.IndexFileName}", single);

        var weightMap = ReadIndex(index);
        var problems = new List<string>();
        foreach (string shard in weightMap.Values.Distinct().Order(StringComparer.Ordinal))
        {
            string shardPath = Path.Combine(directory, shard);
            if (!File.Exists(shardPath))
            {
                problems.Add($"shard '{shard}' named in the weight_map does not exist");
                continue;
            }
            var file = SafetensorsFile.Open(shardPath);
            files.Add(file);
            foreach (var t in file.Tensors)
                if (!tensors.TryAdd(t.Name, (file, t)))
                    problems.Add($"tensor '{t.Name}' is stored in both {Path.GetFileName(tensors[t.Name].Item1.Path)} and {shard}");
        }
        foreach (var (name, shard) in weightMap)
            if (tensors.TryGetValue(name, out var t) && Path.GetFileName(t.Item1.Path) != shard)
                problems.Add($"weight_map puts '{name}' in {shard} but it is in {Path.GetFileName(t.Item1.Path)}");
            else if (!tensors.ContainsKey(name) && File.Exists(Path.Combine(directory, shard)))
                problems.Add($"weight_map puts '{name}' in {shard} but that shard does not contain it");
        if (problems.Count > 0) throw new CheckpointFormatException(index, null, problems);
        return tensors;
    }

    private static Dictionary<string, string> ReadIndex(string index)
    {
        byte[] bytes = File.ReadAllBytes(index);
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw new CheckpointFormatException(index, null, "not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(index, null, $"not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object ||
                !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(index, "weight_map", "expected {\"weight_map\": {tensor name: shard file}}");
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new CheckpointFormatException(index, entry.Name, $"weight_map value must be a file name, found {entry.Value.ValueKind}");
                string file = entry.Value.GetString()!;
                // A shard is a plain file beside the index; anything else could reach outside the model directory.
                if (file.Length == 0 || file != Path.GetFileName(file) || file is "." or "..")
                    throw new CheckpointFormatException(index, entry.Name, $"shard '{file}' must be a plain file name in the model directory");
                if (!result.TryAdd(entry.Name, file))
                    throw new CheckpointFormatException(index, entry.Name, "appears twice in weight_map");
            }
            return result;
        }
    }

    /// <summary>True when the checkpoint holds a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>Header information of a tensor (for a Q8_0 matrix: of its int8 quants, whose shape is the matrix's).</summary>
    /// <exception cref="CheckpointFormatException">No such tensor.</exception>
    public TensorInfo Tensor(string name) => Find(name).Info;

    /// <summary>"F32", "BF16", "F16", "Q8_0", ... for the tensor named <paramref name="name"/>.</summary>
    public string TensorDType(string name) => Find(name).DTypeName;

    /// <summary>A matrix view of a 2-D tensor (float or Q8_0), or of a 1-D vector as 1 x n.</summary>
    /// <exception cref="CheckpointFormatException">No such tensor, or it is not a F32/BF16/F16/Q8_0 vector or matrix.</exception>
    public unsafe WeightMatrix Matrix(string name)
    {
        var t = Find(name);
        if (!t.IsQ8) return t.File.GetMatrix(t.Info.Name);
        return WeightMatrix.Q8((sbyte*)t.File.GetPointer(t.Info), (Half*)t.ScaleFile!.GetPointer(t.Scales!),
            checked((int)t.Info.Shape[0]), checked((int)t.Info.Shape[1]));
    }

    /// <summary>
    /// Drops the mapped pages of [start, start + bytes) from the resident set (see <see cref="SafetensorsFile.ReleasePages"/>);
    /// the range must lie in one of this checkpoint's files. The bytes stay readable.
    /// </summary>
    internal unsafe void ReleasePages(nint start, long bytes)
    {
        var file = _files.Find(f => f.Contains((byte*)start, bytes))
            ?? throw new ArgumentOutOfRangeException(nameof(start), $"the range is not inside any file of {Directory}");
        file.ReleasePages((byte*)start, bytes);
    }

    /// <summary>The weights of block <paramref name="layer"/> (0-based).</summary>
    public LladaLayerWeights Layer(int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, Config.NLayers);
        if (Config.Moe is not { } moe)
        {
            WeightMatrix M(string part) => Matrix(LladaTensorNames.Block(layer, part));
            return new LladaLayerWeights(M("attn_norm"), M("q_proj"), M("k_proj"), M("v_proj"), M("attn_out"),
                M("ff_norm"), M("ff_proj"), M("up_proj"), M("ff_out"));
        }
        WeightMatrix L(string part) => Matrix(MoeTensorNames.Layer(layer, part));
        bool dense = !moe.MoeLayers[layer];
        return new LladaLayerWeights(L("input_layernorm"), L("self_attn.q_proj"), L("self_attn.k_proj"), L("self_attn.v_proj"),
            L("self_attn.o_proj"), L("post_attention_layernorm"),
            dense ? L("mlp.gate_proj") : default, dense ? L("mlp.up_proj") : default, dense ? L("mlp.down_proj") : default,
            moe.QkNorm ? L("self_attn.q_norm") : null, moe.QkNorm ? L("self_attn.k_norm") : null);
    }

    /// <summary>The router and experts of layer <paramref name="layer"/>, or null for a dense layer (or a dense model).</summary>
    public MoeLayerWeights? MoeLayer(int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, Config.NLayers);
        if (Config.Moe is not { } moe || !moe.MoeLayers[layer]) return null;
        SwiGluWeights Expert(string prefix) => new(Matrix(MoeTensorNames.Layer(layer, prefix + "gate_proj")),
            Matrix(MoeTensorNames.Layer(layer, prefix + "up_proj")), Matrix(MoeTensorNames.Layer(layer, prefix + "down_proj")));
        var experts = Enumerable.Range(0, moe.NumExperts).Select(e => Expert($"mlp.experts.{e}.")).ToArray();
        return new MoeLayerWeights(Matrix(MoeTensorNames.Layer(layer, "mlp.gate")), experts,
            moe.SharedExpertIntermediateSize > 0 ? Expert("mlp.shared_experts.") : null);
    }

    /// <summary>Parameters one token's forward pass multiplies with (see <see cref="LladaTensorNames.ActiveParameterCount"/>).</summary>
    public long ActiveParameterCount => LladaTensorNames.ActiveParameterCount(Config);

    /// <summary>Copies a tensor to float32 (for small tensors, tests and tools).</summary>
    public float[] ReadSingles(string name)
    {
        var t = Find(name);
        if (!t.IsQ8) return t.File.ReadSingles(t.Info.Name);
        var m = Matrix(name);
        var values = new float[checked((long)m.Rows * m.Cols)];
        for (int r = 0; r < m.Rows; r++) WeightRows.ToSingle(m, r, values.AsSpan(r * m.Cols, m.Cols));
        return values;
    }

    /// <summary>Everything <c>llada info</c> shows.</summary>
    public CheckpointDescription Describe()
    {
        var byDType = UsedTensors().GroupBy(t => t.DTypeName)
            .ToDictionary(g => g.Key, g => g.Sum(t => t.Info.ElementCount), StringComparer.Ordinal);
        string summary = string.Join(" + ", byDType.OrderByDescending(p => p.Value).Select(p => p.Key));
        string architecture = "LLaDAModelLM";
        if (Config.OtherKeys.TryGetValue("architectures", out var arch) && arch.ValueKind == JsonValueKind.Array &&
            arch.GetArrayLength() > 0 && arch[0].ValueKind == JsonValueKind.String)
            architecture = arch[0].GetString()!;
        return new CheckpointDescription(Directory, architecture, Config, ParameterCount, byDType, summary, WeightBytes,
            BytesOnDisk, _files.Select(f => Path.GetFileName(f.Path)).ToList(), UnexpectedTensors, TokenizerJsonPath is not null,
            ActiveParameterCount);
    }

    /// <summary>Unmaps every file; all views taken from the checkpoint become invalid.</summary>
    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }

    private Stored Find(string name) =>
        _tensors.TryGetValue(name, out var t)
            ? t
            : throw new CheckpointFormatException(Directory, name, "no tensor of this name in the checkpoint");

    private IEnumerable<Stored> UsedTensors() =>
        LladaTensorNames.Expected(Config).Select(e => _tensors[e.Name]);

    private string? Existing(string fileName)
    {
        string path = Path.Combine(Directory, fileName);
        return File.Exists(path) ? path : null;
    }
}
