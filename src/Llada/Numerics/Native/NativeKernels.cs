using System.Runtime.Intrinsics.X86;

namespace Llada.Numerics.Native;

/// <summary>
/// Machine-code kernels emitted at run time for CPU instructions .NET 10 has no intrinsics for (AVX512-VNNI,
/// AVX512-BF16).
/// They are used when the CPU has the instructions, the OS grants executable memory and
/// <c>LLADA_NATIVE_KERNELS</c> is not <c>0</c>; otherwise the managed kernels run, with bit-identical results.
/// </summary>
public static class NativeKernels
{
    /// <summary>The environment variable that switches emitted kernels off when set to <c>0</c>.</summary>
    public const string EnvironmentVariable = "LLADA_NATIVE_KERNELS";

    /// <summary>False when <see cref="EnvironmentVariable"/> is <c>0</c> (read once, at first use).</summary>
    public static bool Enabled { get; } = Environment.GetEnvironmentVariable(EnvironmentVariable) != "0";

    /// <summary>Which Q8_0 matrix-product kernel runs and, when it is not the emitted one, why, e.g. for `llada bench`.</summary>
    public static string Q8Kernel =>
        VnniQ8Kernel.EntryPoints is not null ? "AVX512-VNNI (emitted x86-64)"
        : (Avx512BW.IsSupported ? "managed AVX-512BW" : "managed scalar") + $" ({VnniQ8Kernel.Unavailable})";

    /// <summary>Whether bf16-weight products under <see cref="Bf16Arithmetic.Bf16Activations"/> run the emitted vdpbf16ps kernel (and so gain speed).</summary>
    public static bool HasBf16Kernel => Bf16DotKernel.EntryPoints is not null;

    /// <summary>Which kernel runs bf16-weight products under <see cref="Bf16Arithmetic.Bf16Activations"/> and, when it is not the emitted one, why.</summary>
    public static string Bf16Kernel =>
        Bf16DotKernel.EntryPoints is not null ? "AVX512-BF16 vdpbf16ps (emitted x86-64)"
        : $"float32 engine on bf16-rounded activations ({Bf16DotKernel.Unavailable})";
}
