using System.Diagnostics;
using System.Runtime.InteropServices;
using Llada.Numerics;

namespace Llada.Benchmarks;

/// <summary>
/// Stopwatch profile of the dense LLaDA forward pass broken into its kernels, on random weights of a given shape
/// (separate weights per layer, so they stream from memory as in the real model). Run:
/// dotnet run -c Release --project bench/Llada.Benchmarks -- layers [--shape d,layers,heads,mlp,vocab] [--seq T]
/// [--bf16 [--compute bf16] | --q8] [--threads N] [--repeat R] [--cpu] [--small-m M]. --small-m sets the largest m of the unpacked small-m GEMM path. --cpu runs on one thread timed by its CPU clock (Linux), for a busy machine. Prints milliseconds per step summed over the layers (median and best of R
/// passes; the best is the better guide on a shared machine).
/// </summary>
internal static unsafe class LayerProfile
{
    private static readonly string[] Steps = ["rmsnorm", "q/k/v/o", "rope", "attention", "gate+up", "swiglu", "down", "lm head"];

    public static void Run(string[] args)
    {
        string shape = Option(args, "--shape") ?? "1024,8,16,2816,32000";
        int[] s = shape.Split(',').Select(int.Parse).ToArray();
        int d = s[0], layers = s[1], heads = s[2], mlp = s[3], vocab = s[4];
        int t = int.Parse(Option(args, "--seq") ?? "256");
        int repeat = int.Parse(Option(args, "--repeat") ?? "5");
        if (Option(args, "--threads") is { } th) Parallelism.ThreadCount = int.Parse(th);
        DType type = args.Contains("--bf16") ? DType.BF16 : args.Contains("--q8") ? DType.Q8_0 : DType.F32;
        bool cpu = args.Contains("--cpu");
        if (Option(args, "--small-m") is { } sm) GemmEngine.SmallM = int.Parse(sm);
        var arithmetic = (Option(args, "--compute") ?? "float32") switch
        {
            "float32" => Bf16Arithmetic.Float32,
            "bf16" => Bf16Arithmetic.Bf16Activations,
            var other => throw new ArgumentException($"--compute '{other}': expected float32 or bf16"),
        };
        if (cpu) Parallelism.ThreadCount = 1; // the calling thread's CPU clock only sees its own work
        long Now() => cpu ? Llada.Reporting.ThreadCpuClock.Nanoseconds() : Stopwatch.GetTimestamp();
        double tickMs = cpu ? 1e-6 : 1000.0 / Stopwatch.Frequency;
        int hd = d / heads;

        var rng = new Random(7);
        WeightMatrix Matrix(int rows, int cols)
        {
            long count = (long)rows * cols;
            if (type == DType.Q8_0)
            {
                var values = new float[count];
                for (long i = 0; i < count; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) / MathF.Sqrt(cols);
                var quants = (sbyte*)NativeMemory.AlignedAlloc((nuint)count, 64);
                var scales = (Half*)NativeMemory.AlignedAlloc((nuint)(count / Q8Blocks.BlockSize * 2), 64);
                Q8Blocks.Quantize(values, new Span<sbyte>(quants, (int)count), new Span<Half>(scales, (int)(count / Q8Blocks.BlockSize)));
                return WeightMatrix.Q8(quants, scales, rows, cols);
            }
            void* p = NativeMemory.AlignedAlloc((nuint)(count * DTypes.SizeOf(type)), 64);
            float scale = 1f / MathF.Sqrt(cols);
            for (long i = 0; i < count; i++)
            {
                float v = (float)(rng.NextDouble() * 2 - 1) * scale;
                if (type == DType.F32) ((float*)p)[i] = v;
                else ((ushort*)p)[i] = DTypes.SingleToBF16(v);
            }
            return new WeightMatrix(p, rows, cols, type);
        }
        var wq = new WeightMatrix[layers]; var wk = new WeightMatrix[layers]; var wv = new WeightMatrix[layers]; var wo = new WeightMatrix[layers];
        var wg = new WeightMatrix[layers]; var wu = new WeightMatrix[layers]; var wd = new WeightMatrix[layers];
        for (int l = 0; l < layers; l++)
        {
            wq[l] = Matrix(d, d); wk[l] = Matrix(d, d); wv[l] = Matrix(d, d); wo[l] = Matrix(d, d);
            wg[l] = Matrix(mlp, d); wu[l] = Matrix(mlp, d); wd[l] = Matrix(d, mlp);
        }
        var head = Matrix(vocab, d);
        var norm = Enumerable.Repeat(1f, d).ToArray();
        var h = new float[t * d]; var x = new float[t * d]; var q = new float[t * d]; var k = new float[t * d];
        var v = new float[t * d]; var att = new float[t * d]; var gate = new float[t * mlp]; var up = new float[t * mlp];
        var logits = new float[(long)t * vocab];
        for (int i = 0; i < h.Length; i++) h[i] = (float)(rng.NextDouble() * 2 - 1);
        var positions = Enumerable.Range(0, t).ToArray();
        var rope = new RopeTable(hd, t, 10000);

        var times = new double[repeat + 1, Steps.Length];
        var totals = new double[repeat + 1];
        for (int rep = 0; rep <= repeat; rep++)
        {
            var h0 = (float[])h.Clone();
            long start = Now(), mark = start;
            void Lap(int step)
            {
                long now = Now();
                times[rep, step] += (now - mark) * tickMs;
                mark = now;
            }
            for (int l = 0; l < layers; l++)
            {
                RmsNorm.Apply(h0, t, d, norm, 1e-5f, x); Lap(0);
                Gemm.MultiplyTransposed(x, t, wq[l], q, bf16Arithmetic: arithmetic); Gemm.MultiplyTransposed(x, t, wk[l], k, bf16Arithmetic: arithmetic); Gemm.MultiplyTransposed(x, t, wv[l], v, bf16Arithmetic: arithmetic); Lap(1);
                rope.Apply(q, heads, positions); rope.Apply(k, heads, positions); Lap(2);
                Attention.Forward(q, t, k, v, t, heads, heads, hd, att); Lap(3);
                Gemm.MultiplyTransposed(att, t, wo[l], h0, accumulate: true, arithmetic); Lap(1);
                RmsNorm.Apply(h0, t, d, norm, 1e-5f, x); Lap(0);
                Gemm.MultiplyTransposed(x, t, wg[l], gate, bf16Arithmetic: arithmetic); Gemm.MultiplyTransposed(x, t, wu[l], up, bf16Arithmetic: arithmetic); Lap(4);
                Activations.SwiGlu(gate, up, gate); Lap(5);
                Gemm.MultiplyTransposed(gate, t, wd[l], h0, accumulate: true, arithmetic); Lap(6);
            }
            RmsNorm.Apply(h0, t, d, norm, 1e-5f, x); Lap(0);
            Gemm.MultiplyTransposed(x, t, head, logits, bf16Arithmetic: arithmetic); Lap(7);
            totals[rep] = (Now() - start) * tickMs;
        }
        double flopsLayerGemm = 2.0 * t * d * (4.0 * d + 3.0 * mlp);
        double[] flops = [0, 2.0 * t * 4 * d * d * layers, 0, 4.0 * t * t * d * layers, 2.0 * t * 2 * d * mlp * layers, 0, 2.0 * t * d * mlp * layers, 2.0 * t * d * vocab];
        string kernel = type == DType.Q8_0 ? $" ({Llada.Numerics.Native.NativeKernels.Q8Kernel})"
            : type == DType.BF16 && arithmetic == Bf16Arithmetic.Bf16Activations ? $" (bf16 activations, {Llada.Numerics.Native.NativeKernels.Bf16Kernel})" : "";
        Console.WriteLine($"shape {shape}, T={t}, {type}{kernel}, threads={Parallelism.ThreadCount}{(cpu ? ", thread CPU time" : "")}, median and best of {repeat} passes after a warm-up");
        for (int st = 0; st < Steps.Length; st++)
        {
            double[] all = Enumerable.Range(1, repeat).Select(r => times[r, st]).ToArray();
            double ms = Median(all), best = all.Min();
            string rate = flops[st] > 0 ? $"{flops[st] / ms / 1e6,8:F1} GFLOP/s (best {flops[st] / best / 1e6,6:F1})" : "";
            Console.WriteLine($"  {Steps[st],-10} {ms,9:F1} ms (best {best,7:F1}) {rate}");
        }
        double total = Median(totals[1..]);
        Console.WriteLine($"  {"total",-10} {total,9:F1} ms {(layers * (flopsLayerGemm + 4.0 * t * t * d) + 2.0 * t * d * vocab) / total / 1e6,8:F1} GFLOP/s");
        _ = flopsLayerGemm;
    }

    private static string? Option(string[] args, string name)
    {
        int at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
    }

    private static double Median(double[] values)
    {
        Array.Sort(values);
        int n = values.Length;
        return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    }
}
