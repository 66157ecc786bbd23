using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Llada.Numerics;

namespace Llada.Benchmarks;

/// <summary>BenchmarkDotNet timings of <see cref="Gemm"/> on <see cref="GemmShapes.All"/> (slow; the `gflops` mode is the quick view).</summary>
[MemoryDiagnoser]
public unsafe class GemmBenchmarks
{
    private float* _x, _y, _wf;
    private ushort* _wb;
    private int _m, _n, _k;

    /// <summary>Index into <see cref="GemmShapes.All"/>.</summary>
    [ParamsSource(nameof(ShapeNames))]
    public string Shape { get; set; } = GemmShapes.All[0].Name;

    public static IEnumerable<string> ShapeNames => GemmShapes.All.Select(s => s.Name);

    [GlobalSetup]
    public void Setup()
    {
        var shape = GemmShapes.All.First(s => s.Name == Shape);
        (_m, _n, _k) = (shape.M, shape.N, shape.K);
        _x = Filled((long)_m * _k);
        _y = (float*)NativeMemory.AlignedAlloc((nuint)((long)_m * _n * 4), 64);
        _wf = Filled((long)_n * _k);
        _wb = (ushort*)NativeMemory.AlignedAlloc((nuint)((long)_n * _k * 2), 64);
        for (long i = 0; i < (long)_n * _k; i++) _wb[i] = DTypes.SingleToBF16(_wf[i]);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_x);
        NativeMemory.AlignedFree(_y);
        NativeMemory.AlignedFree(_wf);
        NativeMemory.AlignedFree(_wb);
    }

    internal static float* Filled(long count)
    {
        var p = (float*)NativeMemory.AlignedAlloc((nuint)(count * 4), 64);
        var rng = new Random(1);
        for (long i = 0; i < count; i++) p[i] = (float)rng.NextDouble() - 0.5f;
        return p;
    }

    [Benchmark(Baseline = true)]
    public void MultiplyTransposedF32() =>
        Gemm.MultiplyTransposed(new ReadOnlySpan<float>(_x, _m * _k), _m, new WeightMatrix(_wf, _n, _k, DType.F32), new Span<float>(_y, _m * _n));

    [Benchmark]
    public void MultiplyTransposedBF16() =>
        Gemm.MultiplyTransposed(new ReadOnlySpan<float>(_x, _m * _k), _m, new WeightMatrix(_wb, _n, _k, DType.BF16), new Span<float>(_y, _m * _n));

    [Benchmark]
    public void SgemmNN() =>
        Gemm.Sgemm(false, false, _m, _n, _k, 1, new ReadOnlySpan<float>(_x, _m * _k), _k, new ReadOnlySpan<float>(_wf, _n * _k), _n, 0, new Span<float>(_y, _m * _n), _n);

    [Benchmark]
    public void OpenBlasSgemmNT()
    {
        if (OpenBlas.Available) OpenBlas.RowMajorSgemm(false, true, _m, _n, _k, 1, _x, _k, _wf, _k, 0, _y, _n);
    }
}
