using Llada.Numerics;

namespace Llada.Model;

/// <summary>
/// How a <see cref="DType.Q8_0"/> matrix is stored in safetensors (docs/quantization.md): a matrix W [rows, cols]
/// becomes two standard tensors, <c>W.q8</c> (I8 [rows, cols], the quants) and <c>W.q8_scale</c>
/// (F16 [rows, cols / 32], one scale per 32 quants along a row), so any safetensors reader can open the file, and
/// the original name is absent so that no float loader silently reads int8 as weights.
/// </summary>
public static class Q8Tensors
{
    /// <summary>Suffix of the int8 quants tensor.</summary>
    public const string QuantSuffix = ".q8";
    /// <summary>Suffix of the binary16 block-scales tensor.</summary>
    public const string ScaleSuffix = ".q8_scale";
    /// <summary>The dtype name reported for a folded pair (not a safetensors dtype).</summary>
    public const string DTypeName = "Q8_0";
    /// <summary>config.json key a writer adds when the checkpoint holds Q8_0 matrices.</summary>
    public const string ConfigKey = "quantization_config";
    /// <summary>Its value.</summary>
    public const string ConfigJson = "{\"quant_method\": \"llada_q8_0\", \"block_size\": 32, \"scale_dtype\": \"F16\"}";

    /// <summary>
    /// Folds every .q8 / .q8_scale pair of <paramref name="stored"/> (name to dtype and shape) into one logical entry
    /// (original name, "Q8_0", [rows, cols]); other tensors pass through. Every malformed pair is reported in
    /// <paramref name="problems"/> and left out.
    /// </summary>
    public static Dictionary<string, (string DType, IReadOnlyList<long> Shape)> Fold(
        IReadOnlyDictionary<string, (string DType, IReadOnlyList<long> Shape)> stored, List<string> problems)
    {
        var result = new Dictionary<string, (string, IReadOnlyList<long>)>(StringComparer.Ordinal);
        foreach (var (name, (dtype, shape)) in stored.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (name.EndsWith(ScaleSuffix, StringComparison.Ordinal))
            {
                if (!stored.ContainsKey(name[..^ScaleSuffix.Length] + QuantSuffix))
                    problems.Add($"scales tensor '{name}' has no quants tensor '{name[..^ScaleSuffix.Length]}{QuantSuffix}'");
                continue;
            }
            if (!name.EndsWith(QuantSuffix, StringComparison.Ordinal))
            {
                result[name] = (dtype, shape);
                continue;
            }
            string logical = name[..^QuantSuffix.Length], scaleName = logical + ScaleSuffix;
            if (stored.ContainsKey(logical))
            {
                problems.Add($"'{logical}' is stored both as {stored[logical].DType} and as Q8_0 ('{name}')");
                continue;
            }
            if (!stored.TryGetValue(scaleName, out var scale))
            {
                problems.Add($"quants tensor '{name}' has no scales tensor '{scaleName}'");
                continue;
            }
            string? problem = Check(name, dtype, shape, scaleName, scale.DType, scale.Shape);
            if (problem is not null) problems.Add(problem);
            else result[logical] = (DTypeName, shape);
        }
        return result;
    }

    /// <summary>Why a quants/scales pair is malformed, or null when it is a valid Q8_0 matrix.</summary>
    public static string? Check(string quantName, string quantDType, IReadOnlyList<long> quantShape,
        string scaleName, string scaleDType, IReadOnlyList<long> scaleShape)
    {
        if (quantDType != "I8") return $"quants tensor '{quantName}' has dtype {quantDType}, expected I8";
        if (quantShape.Count != 2) return $"quants tensor '{quantName}' has shape {TensorInfo.FormatShape(quantShape)}, expected [rows, cols]";
        if (quantShape[1] % Q8Blocks.BlockSize != 0)
            return $"quants tensor '{quantName}' has {quantShape[1]} columns, not a multiple of the {Q8Blocks.BlockSize}-wide blocks";
        if (scaleDType != "F16") return $"scales tensor '{scaleName}' has dtype {scaleDType}, expected F16";
        long[] expected = [quantShape[0], quantShape[1] / Q8Blocks.BlockSize];
        if (!scaleShape.SequenceEqual(expected))
            return $"scales tensor '{scaleName}' has shape {TensorInfo.FormatShape(scaleShape)}, expected {TensorInfo.FormatShape(expected)} " +
                $"(one scale per {Q8Blocks.BlockSize} quants of '{quantName}')";
        return null;
    }
}
