using System.Numerics.Tensors;

namespace Llada.Numerics;

/// <summary>Element-wise activations and the row softmax, float32, span in / span out (outputs may alias inputs).</summary>
public static class Activations
{
    /// <summary>y = silu(x) = x * sigmoid(x).</summary>
    public static void Silu(ReadOnlySpan<float> x, Span<float> y)
    {
        CheckSame(x.Length, y.Length, nameof(y));
        // Through a small buffer: y may alias x, and x must be read again after the sigmoid.
        Span<float> tmp = stackalloc float[ChunkLength];
        for (int i = 0; i < x.Length; i += tmp.Length)
        {
            int len = Math.Min(tmp.Length, x.Length - i);
            Span<float> t = tmp.Slice(0, len);
            TensorPrimitives.Sigmoid(x.Slice(i, len), t);
            TensorPrimitives.Multiply(x.Slice(i, len), t, y.Slice(i, len));
        }
    }

    /// <summary>SwiGLU: output = silu(gate) * up, element-wise. <paramref name="output"/> may alias either input.</summary>
    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> output)
    {
        CheckSame(gate.Length, up.Length, nameof(up));
        CheckSame(gate.Length, output.Length, nameof(output));
        // Chunked through a stack buffer, so each chunk of gate and up is read before output overwrites it.
        Span<float> tmp = stackalloc float[ChunkLength];
        for (int i = 0; i < gate.Length; i += tmp.Length)
        {
            int len = Math.Min(tmp.Length, gate.Length - i);
            Span<float> t = tmp.Slice(0, len);
            TensorPrimitives.Sigmoid(gate.Slice(i, len), t);
            TensorPrimitives.Multiply(gate.Slice(i, len), t, t);
            TensorPrimitives.Multiply(t, up.Slice(i, len), output.Slice(i, len));
        }
    }

    private const int ChunkLength = 512;

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
