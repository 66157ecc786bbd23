using System.Numerics.Tensors;

namespace Llada.Numerics;

/// <summary>Element-wise activations and the row softmax, float32, span in / span out (outputs may alias inputs).</summary>
public static class Activations
{
    /// <summary>y = silu(x) = x * sigmoid(x).</summary>
    public static void Silu(ReadOnlySpan<float> x, Span<float> y)
    {
        CheckSame(x.Length, y.Length, nameof(y));
        TensorPrimitives.Sigmoid(x, y.Slice(0, x.Length));
        TensorPrimitives.Multiply(x, y.Slice(0, x.Length), y.Slice(0, x.Length));
    }

    /// <summary>SwiGLU: output = silu(gate) * up, element-wise.</summary>
    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> output)
    {
        CheckSame(gate.Length, up.Length, nameof(up));
        CheckSame(gate.Length, output.Length, nameof(output));
        Span<float> o = output.Slice(0, gate.Length);
        if (!o.Overlaps(up))
        {
            TensorPrimitives.Sigmoid(gate, o);
            TensorPrimitives.Multiply(gate, o, o);
            TensorPrimitives.Multiply(o, up, o);
            return;
        }
        // output aliases up: go in chunks through a stack buffer so up is read before it is overwritten.
        Span<float> tmp = stackalloc float[256];
        for (int i = 0; i < gate.Length; i += tmp.Length)
        {
            int len = Math.Min(tmp.Length, gate.Length - i);
            Span<float> t = tmp.Slice(0, len);
            TensorPrimitives.Sigmoid(gate.Slice(i, len), t);
            TensorPrimitives.Multiply(gate.Slice(i, len), t, t);
            TensorPrimitives.Multiply(t, up.Slice(i, len), o.Slice(i, len));
        }
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
