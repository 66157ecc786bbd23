using Llada.Numerics;

namespace Llada.Model;

/// <summary>The dtype names of the safetensors format and how they relate to <see cref="DType"/>.</summary>
public static class SafetensorsDTypes
{
    private static readonly Dictionary<string, int> ElementSizes = new(StringComparer.Ordinal)
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2,
        ["F8_E4M3"] = 1, ["F8_E5M2"] = 1,
        ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1,
        ["U64"] = 8, ["U32"] = 4, ["U16"] = 2, ["U8"] = 1,
        ["BOOL"] = 1,
    };

    // The reference implementation's dtype declaration order (increasing alignment); its writer lays tensors out
    // in descending order of this rank, then by name.
    private static readonly string[] AlignmentOrder =
        ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"];

    /// <summary>Position of a dtype in the reference implementation's alignment order (-1 when unknown).</summary>
    internal static int AlignmentRank(string name) => Array.IndexOf(AlignmentOrder, name);

    /// <summary>Bytes per element of a standard safetensors dtype name, or false for an unknown name.</summary>
    public static bool TryGetElementSize(string name, out int size) => ElementSizes.TryGetValue(name, out size);

    /// <summary>The weight dtype for F32 / BF16 / F16, or false for every other name.</summary>
    public static bool TryToWeightDType(string name, out DType dtype)
    {
        switch (name)
        {
            case "F32": dtype = DType.F32; return true;
            case "BF16": dtype = DType.BF16; return true;
            case "F16": dtype = DType.F16; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>The safetensors name of a weight dtype ("F32", "BF16", "F16").</summary>
    public static string NameOf(DType dtype) => dtype switch
    {
        DType.F32 => "F32",
        DType.BF16 => "BF16",
        DType.F16 => "F16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };
}
