using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Llada.Numerics;

/// <summary>
/// Per-thread, 64-byte aligned float scratch that grows on demand and is then reused, so kernels do not
/// allocate per call in steady state. Each slot is an independent buffer (e.g. packed A and packed B).
/// </summary>
internal static unsafe class ScratchBuffers
{
    public const int Slots = 10;

    [ThreadStatic] private static float[]?[]? t_arrays;

    /// <summary>A pointer to at least <paramref name="floats"/> floats, valid until this thread asks for the same slot again with a larger size.</summary>
    public static float* Get(int slot, long floats)
    {
        var arrays = t_arrays ??= new float[]?[Slots];
        float[]? array = arrays[slot];
        if (array is null || array.Length < floats + 16)
        {
            long size = Math.Max(floats + 16, (array?.Length ?? 0) * 3L / 2);
            // Pinned so the raw pointer stays valid; freed with the thread.
            array = GC.AllocateUninitializedArray<float>(checked((int)size), pinned: true);
            arrays[slot] = array;
        }
        float* p = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));
        return (float*)(((nint)p + 63) & ~(nint)63);
    }
}
