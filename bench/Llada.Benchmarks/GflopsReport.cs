using System.Diagnostics;
using System.Runtime.InteropServices;
using Llada.Numerics;
using Llada.Numerics.Native;

namespace Llada.Benchmarks;

/// <summary>
/// Quick console report: GFLOP/s of each product variant per shape (best of a few timed repetitions after a
/// warm-up), with OpenBLAS alongside when the library is installed. Run:
/// dotnet run -c Release --project bench/Llada.Benchmarks -- gflops [--threads N] [--cpu] [--small | --mid | --tiny [--m 8,16,32] [--bf16-only] | --q8 [--rounds R]]
/// With --q8: the Q8_0 integer product next to the float32 one on <see cref="GemmShapes.Q8"/>, timed in R
/// interleaved rounds (f32, q8, f32, q8, ...) and reported as medians of the per-round bests, so that load from
/// other processes hits both alike. Each Q8_0 kernel runs twice per round: packing W into panels per call (the
/// plain mapped matrix) and reading panels packed once (<see cref="PackedWeights"/>, what a loaded model uses).
/// </summary>
internal static unsafe class GflopsReport
{
    public static void Run(string[] args)
    {
        int threads = Environment.ProcessorCount;
        int at = Array.IndexOf(args, "--threads");
        if (at >= 0) threads = int.Parse(args[at + 1]);
        Parallelism.ThreadCount = threads;
        _cpuTime = args.Contains("--cpu");
        bool small = args.Contains("--small"), mid = args.Contains("--mid"), tiny = args.Contains("--tiny");
        _bf16Only = args.Contains("--bf16-only");
        int mAt = Array.IndexOf(args, "--m");
        int[] rows = mAt >= 0 ? args[mAt + 1].Split(',').Select(int.Parse).ToArray() : [8, 16, 32];
        int smallM = Array.IndexOf(args, "--smallm");
        if (smallM >= 0) GemmEngine.SmallM = int.Parse(args[smallM + 1]);
        if (args.Contains("--q8"))
        {
            int rounds = Array.IndexOf(args, "--rounds");
            RunQ8(threads, rounds >= 0 ? int.Parse(args[rounds + 1]) : 5);
            return;
        }
        Console.WriteLine($"threads={threads} kernel={GemmEngine.Kind} openblas={(OpenBlas.Available ? "yes" : "not installed")}");
        Console.WriteLine($"{"shape",-28} {"MT f32",9} {"MT bf16",9} {"Sgemm NT",9} {"Sgemm NN",9} {"Sgemm TN",9} {"OpenBLAS NT",11}   (GFLOP/s)");
        foreach (var (name, m, n, k) in small ? GemmShapes.Small : tiny ? GemmShapes.Tiny(rows) : mid ? GemmShapes.Mid : [.. GemmShapes.Mid, .. GemmShapes.All])
            Report(name, m, n, k);
    }

    private static void Report(string name, int m, int n, int k)
    {
        float* x = GemmBenchmarks.Filled((long)m * k);
        float* w = GemmBenchmarks.Filled((long)n * k);
        float* y = (float*)NativeMemory.AlignedAlloc((nuint)((long)m * n * 4), 64);
        var wb = (ushort*)NativeMemory.AlignedAlloc((nuint)((long)n * k * 2), 64);
        for (long i = 0; i < (long)n * k; i++) wb[i] = DTypes.SingleToBF16(w[i]);
        var xs = new ReadOnlySpanFactory(x, (long)m * k);
        double flops = 2.0 * m * n * k;
        var wf32 = new WeightMatrix(w, n, k, DType.F32);
        var wbf = new WeightMatrix(wb, n, k, DType.BF16);
        double mtB = Measure(flops, () => Gemm.MultiplyTransposed(xs.Span, m, wbf, new Span<float>(y, m * n)));
        if (_bf16Only)
        {
            Console.WriteLine($"{name,-28} {"-",9} {mtB,9:F1}");
            Free((nint)x, (nint)w, (nint)y, (nint)wb);
            return;
        }
        double mtF = Measure(flops, () => Gemm.MultiplyTransposed(xs.Span, m, wf32, new Span<float>(y, m * n)));
        // NT: B = W stored [n, k]; NN: B = W read as [k, n]; TN: A = X read as [k, m].
        double nt = Measure(flops, () => Gemm.Sgemm(false, true, m, n, k, 1, xs.Span, k, new ReadOnlySpan<float>(w, n * k), k, 0, new Span<float>(y, m * n), n));
        double nn = Measure(flops, () => Gemm.Sgemm(false, false, m, n, k, 1, xs.Span, k, new ReadOnlySpan<float>(w, n * k), n, 0, new Span<float>(y, m * n), n));
        double tn = Measure(flops, () => Gemm.Sgemm(true, false, m, n, k, 1, xs.Span, m, new ReadOnlySpan<float>(w, n * k), n, 0, new Span<float>(y, m * n), n));
        string blas = OpenBlas.Available
            ? Measure(flops, () => OpenBlas.RowMajorSgemm(false, true, m, n, k, 1, x, k, w, k, 0, y, n)).ToString("F1")
            : "-";
        Console.WriteLine($"{name,-28} {mtF,9:F1} {mtB,9:F1} {nt,9:F1} {nn,9:F1} {tn,9:F1} {blas,11}");
        Free((nint)x, (nint)w, (nint)y, (nint)wb);
    }

    private static void Free(params ReadOnlySpan<nint> blocks)
    {
        foreach (nint p in blocks) NativeMemory.AlignedFree((void*)p);
    }

    private static void RunQ8(int threads, int rounds)
    {
        bool native = QuantizedGemm.UseNative;
        Console.WriteLine($"threads={threads} q8 kernel: {NativeKernels.Q8Kernel}; rounds={rounds} (median of per-round best; GFLOP/s = 2mnk / time)");
        Console.WriteLine("q8 = the kernel above; mgd = the managed AVX-512BW kernel (LLADA_NATIVE_KERNELS=0); +pk = weights packed once at load; interleaved in the same rounds");
        Console.WriteLine($"{"shape",-28} {"MT f32",9} {"mgd",9} {"mgd+pk",9} {"q8",9} {"q8+pk",9} {"q8/f32",7} {"q8/mgd",7} {"pk gain",7} {"f32 ms",8} {"mgd ms",8} {"q8 ms",8} {"q8pk ms",8}");
        foreach (var (name, m, n, k) in GemmShapes.Q8)
        {
            float* x = GemmBenchmarks.Filled((long)m * k);
            float* w = GemmBenchmarks.Filled((long)n * k);
            float* y = (float*)NativeMemory.AlignedAlloc((nuint)((long)m * n * 4), 64);
            var quants = (sbyte*)NativeMemory.AlignedAlloc((nuint)((long)n * k), 64);
            var scales = (Half*)NativeMemory.AlignedAlloc((nuint)((long)n * k / Q8Blocks.BlockSize * 2), 64);
            Q8Blocks.Quantize(new ReadOnlySpan<float>(w, n * k), new Span<sbyte>(quants, n * k), new Span<Half>(scales, n * k / Q8Blocks.BlockSize));
            var xs = new ReadOnlySpanFactory(x, (long)m * k);
            var wf32 = new WeightMatrix(w, n, k, DType.F32);
            var wq8 = WeightMatrix.Q8(quants, scales, n, k);
            using var packedStore = new PackedWeights();
            QuantizedGemm.UseNative = false;
            var wManagedPacked = packedStore.Pack(wq8);
            QuantizedGemm.UseNative = native;
            var wPacked = packedStore.Pack(wq8);
            double flops = 2.0 * m * n * k;
            var f32 = new double[rounds];
            var q8 = new double[rounds];
            var q8Packed = new double[rounds];
            var managed = new double[rounds];
            var managedPacked = new double[rounds];
            for (int r = 0; r < rounds; r++)
            {
                f32[r] = Measure(flops, () => Gemm.MultiplyTransposed(xs.Span, m, wf32, new Span<float>(y, m * n)));
                QuantizedGemm.UseNative = false;
                managed[r] = Measure(flops, () => Gemm.MultiplyTransposed(xs.Span, m, wq8, new Span<float>(y, m * n)));
                managedPacked[r] = Measure(flops, () => Gemm.MultiplyTransposed(xs.Span, m, wManagedPacked, new Span<float>(y, m * n)));
                QuantizedGemm.UseNative = native;
                q8[r] = Measure(flops, () => Gemm.MultiplyTransposed(xs.Span, m, wq8, new Span<float>(y, m * n)));
                q8Packed[r] = Measure(flops, () => Gemm.MultiplyTransposed(xs.Span, m, wPacked, new Span<float>(y, m * n)));
            }
            foreach (var a in new[] { f32, q8, q8Packed, managed, managedPacked }) Array.Sort(a);
            double mf = f32[rounds / 2], mq = q8[rounds / 2], mqp = q8Packed[rounds / 2], mm = managed[rounds / 2], mmp = managedPacked[rounds / 2];
            Console.WriteLine($"{name,-28} {mf,9:F1} {mm,9:F1} {mmp,9:F1} {mq,9:F1} {mqp,9:F1} {mq / mf,7:F2} {mq / mm,7:F2} {mqp / mq,7:F2} " +
                $"{flops / mf / 1e6,8:F2} {flops / mm / 1e6,8:F2} {flops / mq / 1e6,8:F2} {flops / mqp / 1e6,8:F2}");
            NativeMemory.AlignedFree(x);
            NativeMemory.AlignedFree(w);
            NativeMemory.AlignedFree(y);
            NativeMemory.AlignedFree(quants);
            NativeMemory.AlignedFree(scales);
        }
    }

    private static bool _cpuTime, _bf16Only;

    /// <summary>Process CPU seconds (with --cpu, for single-thread runs on a busy machine) or wall seconds.</summary>
    private static double Now() => _cpuTime
        ? System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds
        : Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;

    /// <summary>
    /// Best GFLOP/s over repetitions totalling ~0.4 s after a warm-up; calls shorter than a few milliseconds are
    /// timed in batches (the process CPU clock ticks in milliseconds, and a tiny product takes microseconds).
    /// </summary>
    private static double Measure(double flops, Action action)
    {
        action();
        double w0 = Stopwatch.GetTimestamp();
        action();
        double once = (Stopwatch.GetTimestamp() - w0) / Stopwatch.Frequency;
        int batch = (int)Math.Clamp(Math.Ceiling((_cpuTime ? 20e-3 : 2e-3) / Math.Max(once, 1e-7)), 1, 100_000);
        double best = double.MaxValue;
        var total = Stopwatch.StartNew();
        int reps = 0;
        while (reps < 3 || (total.Elapsed.TotalSeconds < 0.4 && reps < 200))
        {
            double t0 = Now();
            for (int i = 0; i < batch; i++) action();
            best = Math.Min(best, (Now() - t0) / batch);
            reps++;
        }
        return flops / best / 1e9;
    }

    /// <summary>Lets lambdas build spans over a raw pointer (spans cannot be captured).</summary>
    private readonly struct ReadOnlySpanFactory(float* p, long length)
    {
        public ReadOnlySpan<float> Span => new(p, checked((int)length));
    }
}
