using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llada.Numerics;

/// <summary>Element-wise activations and the row softmax, float32, span in / span out (outputs may be the same memory as an input).</summary>
public static class Activations
{
    // Elements per work item: large enough to amortise the hand-off, small enough to balance two or more threads.
    private const int Chunk = 16384;

    /// <summary>y = silu(x) = x * sigmoid(x). <paramref name="y"/> may be the same memory as <paramref name="x"/>.</summary>
    public static unsafe void Silu(ReadOnlySpan<float> x, Span<float> y)
    {
        CheckSame(x.Length, y.Length, nameof(y));
        CheckAlias(x, y, nameof(y));
        fixed (float* xp = x, yp = y)
        {
            var job = new GluJob { Gate = xp, Up = null, Output = yp, Length = x.Length };
            Run(ref job);
        }
    }

    /// <summary>
    /// SwiGLU: output = silu(gate) * up, element-wise, fused into one pass and multithreaded for long inputs.
    /// <paramref name="output"/> may be the same memory as <paramref name="gate"/> or <paramref name="up"/>
    /// (but not partially overlap them).
    /// </summary>
    public static unsafe void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> output)
    {
        CheckSame(gate.Length, up.Length, nameof(up));
        CheckSame(gate.Length, output.Length, nameof(output));
        CheckAlias(gate, output, nameof(output));
        CheckAlias(up, output, nameof(output));
        fixed (float* gp = gate, up_ = up, op = output)
        {
            var job = new GluJob { Gate = gp, Up = up_, Output = op, Length = gate.Length };
            Run(ref job);
        }
    }

    private unsafe struct GluJob
    {
        public float* Gate, Up, Output;
        public int Length;
    }

    private static unsafe void Run(ref GluJob job)
    {
        int items = (job.Length + Chunk - 1) / Chunk;
        fixed (GluJob* p = &job)
        {
            if (items <= 1) { if (job.Length > 0) GluItem(p, 0); }
            else WorkerPool.For(items, &GluItem, p);
        }
    }

    /// <summary>
    /// silu(g) * u with sigmoid(g) = 1 / (1 + e) for g &gt;= 0 and e / (1 + e) for g &lt; 0, where e = exp(-|g|) never
    /// overflows. Each element is read before its output is written, so exact aliasing is safe.
    /// </summary>
    private static unsafe void GluItem(void* context, int item)
    {
        ref GluJob job = ref *(GluJob*)context;
        int start = item * Chunk, end = Math.Min(job.Length, start + Chunk);
        float* g = job.Gate, u = job.Up, o = job.Output;
        int i = start;
        for (; i + 8 <= end; i += 8)
        {
            var r = Glu(Vector256.Load(g + i));
            if (u != null) r *= Vector256.Load(u + i);
            r.Store(o + i);
        }
        if (i < end)
        {
            float* tail = stackalloc float[8];
            for (int t = 0; t < 8; t++) tail[t] = i + t < end ? g[i + t] : 0;
            var r = Glu(Vector256.Load(tail));
            r.Store(tail);
            for (int t = 0; i + t < end; t++) o[i + t] = u != null ? tail[t] * u[i + t] : tail[t];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Glu(Vector256<float> g)
    {
        var e = VectorMath.ExpNonPositive(-Vector256.Abs(g));
        var numerator = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(g, Vector256<float>.Zero), Vector256<float>.One, e);
        return g * numerator / (Vector256<float>.One + e);
    }

    private static void CheckAlias(ReadOnlySpan<float> input, ReadOnlySpan<float> output, string name)
    {
        if (input.Overlaps(output, out int offset) && offset != 0)
            throw new ArgumentException($"{name} partially overlaps an input (offset {offset}); use the same memory or a separate buffer", name);
    }

    /// <summary>
    /// Numerically stable softmax of each row of a [rows, cols] matrix: exp(x - max) / sum. A row whose entries
    /// are all -inf (everything masked) becomes all zeros.
    /// </summary>
    public static void SoftmaxRows(ReadOnlySpan<float> x, int rows, int cols, Span<float> y)
    {
        RmsNorm.Check(x.Length, y.Length, rows, cols);
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> row = x.Slice(r * cols, cols);
            Span<float> o = y.Slice(r * cols, cols);
            float max = TensorPrimitives.Max(row);
            if (float.IsNegativeInfinity(max))
            {
                o.Clear();
                continue;
            }
            TensorPrimitives.Subtract(row, max, o);
            TensorPrimitives.Exp(o, o);
            TensorPrimitives.Divide(o, TensorPrimitives.Sum(o), o);
        }
    }

    private static void CheckSame(int expected, int actual, string name)
    {
        if (actual < expected) throw new ArgumentException($"{name} holds {actual} floats, expected {expected}", name);
    }
}
