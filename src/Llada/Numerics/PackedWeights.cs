using System.Runtime.InteropServices;

namespace Llada.Numerics;

/// <summary>
/// Q8_0 matrices packed once, at load, into the panel layout the matrix kernel otherwise builds on every call
/// (<see cref="QuantizedGemm"/>: 32 rows interleaved as [k/4][32][4] bytes, then [k/32][32] float32 scales), in
/// native memory this object owns until <see cref="Dispose"/>. The layout is the one of the kernel running at
/// packing time: w + 128 for the emitted AVX512-VNNI kernel, w for the managed AVX-512BW kernel. A matrix whose
/// panels do not fit the kernel that runs later (a test or <c>LLADA_NATIVE_KERNELS</c> switched kernels) is packed
/// per call from its rows as before, so results never depend on packing.
/// </summary>
internal sealed unsafe partial class PackedWeights : IDisposable
{
    /// <summary>Panels packed between two calls of the release callback (2048 rows): bounds the memory in flight.</summary>
    private const int ChunkPanels = 64;

    private readonly List<nint> _allocations = [];
    private bool _disposed;

    /// <summary>Bytes of packed panels held.</summary>
    public long ByteLength { get; private set; }

    /// <summary>
    /// <paramref name="w"/> with its packed panels attached when it is a non-empty Q8_0 matrix and a vector kernel
    /// runs; otherwise <paramref name="w"/> unchanged. After each chunk of rows is packed, <paramref name="packedSource"/>
    /// (if given) receives the byte ranges of those rows' quants and scales, which the kernels no longer read unless
    /// they switch layout, so the owner of the memory may drop them (e.g. release mapped pages).
    /// </summary>
    public WeightMatrix Pack(in WeightMatrix w, Action<nint, long>? packedSource = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (w.DType != DType.Q8_0 || w.Rows == 0 || w.Cols == 0 || !QuantizedGemm.UseVector) return w;
        bool offset = QuantizedGemm.UseNative;
        long bytes = QuantizedGemm.PackedByteLength(w);
        var panels = Allocate(bytes);
        _allocations.Add((nint)panels);
        ByteLength += bytes;
        int count = (w.Rows + QuantizedGemm.PanelCols - 1) / QuantizedGemm.PanelCols, blocks = w.Cols / Q8Blocks.BlockSize;
        for (int first = 0; first < count; first += ChunkPanels)
        {
            int chunk = Math.Min(ChunkPanels, count - first);
            QuantizedGemm.PackPanels(w, offset, panels, first, chunk);
            if (packedSource is null) continue;
            long row0 = (long)first * QuantizedGemm.PanelCols, rows = Math.Min(w.Rows - row0, (long)chunk * QuantizedGemm.PanelCols);
            packedSource((nint)((sbyte*)w.Data + row0 * w.Cols), rows * w.Cols);
            packedSource((nint)(w.Scales + row0 * blocks), rows * blocks * sizeof(ushort));
        }
        return w.WithPanels(panels, offset);
    }

    private const long HugePage = 2 << 20;
    private const int MadviseHugePage = 14;

    /// <summary>
    /// 64-byte aligned memory; large blocks 2 MiB aligned and, on Linux, advised as transparent huge pages: the
    /// 8B model's ~8 GB would otherwise take ~2 million 4 KiB page faults while packing (seconds of system time in a VM).
    /// </summary>
    private static sbyte* Allocate(long bytes)
    {
        bool huge = bytes >= 2 * HugePage;
        var p = (sbyte*)NativeMemory.AlignedAlloc((nuint)bytes, huge ? (nuint)HugePage : 64);
        if (huge && OperatingSystem.IsLinux()) madvise(p, (nuint)(bytes & ~(HugePage - 1)), MadviseHugePage); // advice only: failure is harmless
        return p;
    }

    [LibraryImport("libc")]
    private static partial int madvise(void* address, nuint length, int advice);

    /// <summary>Frees the panels; matrices returned by <see cref="Pack"/> must not be used afterwards.</summary>
    public void Dispose()
    {
        _disposed = true;
        foreach (nint p in _allocations) NativeMemory.AlignedFree((void*)p);
        _allocations.Clear();
        ByteLength = 0;
    }
}
