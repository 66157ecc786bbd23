using System.Runtime.Intrinsics.X86;

namespace Llada.Numerics.Native;

/// <summary>
/// CPU features .NET 10 has no intrinsics class for, read with CPUID. Only trusted when
/// <see cref="Avx512BW.IsSupported"/>: the runtime checks that the OS saves the ZMM state, which CPUID alone does not say.
/// </summary>
internal static class CpuFeatures
{
    /// <summary>AVX512_VNNI (vpdpbusd): CPUID leaf 7 sub-leaf 0, ECX bit 11.</summary>
    public static bool Avx512Vnni { get; } = Avx512BW.IsSupported && Bit(7, 0, ecx: true, 11);

    /// <summary>AVX512_BF16 (vdpbf16ps): CPUID leaf 7 sub-leaf 1, EAX bit 5.</summary>
    public static bool Avx512Bf16 { get; } = Avx512BW.IsSupported && Bit(7, 1, ecx: false, 5);

    private static bool Bit(int leaf, int subLeaf, bool ecx, int bit)
    {
        if (!X86Base.IsSupported || (uint)X86Base.CpuId(0, 0).Eax < leaf) return false;
        var (eax, _, ecxValue, _) = X86Base.CpuId(leaf, subLeaf);
        return (((ecx ? ecxValue : eax) >> bit) & 1) != 0;
    }
}
