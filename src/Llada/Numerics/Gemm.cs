namespace Llada.Numerics;

/// <summary>
/// Matrix products: cache-blocked, packed, register-tiled (Vector512 where accelerated, Vector256 otherwise)
/// and multithreaded over <see cref="Parallelism.ThreadCount"/> persistent workers. Results are bit-identical
/// for any thread count. Steady-state calls do not allocate (pack buffers are per-thread and reused).
/// </summary>
public static unsafe class Gemm
{
    /// <summary>
    /// Y[m, n] = X[m, k] * W[n, k]^T (or Y += ... when <paramref name="accumulate"/>), X and Y row-major float32,
    /// W in any <see cref="DType"/>, k = W.Cols, n = W.Rows. bf16/f16 weights are widened to float32 block by
    /// block while packing (or on the fly for small m); no float32 copy of W is ever made. Q8_0 weights take the
    /// integer path (<see cref="QuantizedGemm"/>): X is quantised to int8 blocks on the fly, so the result carries
    /// the activation rounding too (relative error ~1e-2 of the sum of |terms|, not float32 accuracy).
    /// <paramref name="bf16Arithmetic"/> chooses how a bf16 W is multiplied: widened to float32 (the default, exact
    /// with respect to the stored weights) or, opted into, with activations rounded to bf16
    /// (<see cref="Bf16Arithmetic.Bf16Activations"/>, faster where the CPU has AVX512_BF16); other dtypes ignore it.
    /// It is an argument, not a global, so two models in one process can run with different settings.
    /// </summary>
    public static void MultiplyTransposed(ReadOnlySpan<float> x, int m, in WeightMatrix w, Span<float> y, bool accumulate = false,
        Bf16Arithmetic bf16Arithmetic = Bf16Arithmetic.Float32)
    {
        int k = w.Cols, n = w.Rows;
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        if (x.Length < (long)m * k) throw new ArgumentException($"x holds {x.Length} floats, expected {m}x{k}", nameof(x));
        if (y.Length < (long)m * n) throw new ArgumentException($"y holds {y.Length} floats, expected {m}x{n}", nameof(y));
        if (w.Data == null && (long)n * k > 0) throw new ArgumentException("weight matrix has no data", nameof(w));
        fixed (float* xp = x)
        fixed (float* yp = y)
        {
            if (w.DType == DType.Q8_0) QuantizedGemm.MultiplyTransposed(xp, m, w, yp, accumulate);
            else if (w.DType == DType.BF16 && bf16Arithmetic == Bf16Arithmetic.Bf16Activations) Bf16Gemm.MultiplyTransposed(xp, m, w, yp, accumulate);
            else MultiplyTransposedFloat(xp, m, w, yp, accumulate);
        }
    }

    /// <summary>Y (+)= X W^T with float32 activations for a float dtype W, through the packed float32 engine.</summary>
    internal static void MultiplyTransposedFloat(float* xp, int m, in WeightMatrix w, float* yp, bool accumulate)
    {
        var problem = new GemmEngine.Problem
        {
            M = m, N = w.Rows, K = w.Cols,
            A = xp, Lda = w.Cols, ARowsAlongK = true,
            B = w.Data, Ldb = w.Cols, BRowsAlongK = true, BType = w.DType,
            C = yp, Ldc = w.Rows, Alpha = 1, Beta = accumulate ? 1 : 0,
        };
        GemmEngine.Run(ref problem);
    }

    /// <summary>
    /// General float32 product, row-major with leading dimensions:
    /// C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, where op(A) = A^T when <paramref name="transA"/>
    /// (A stored [k, m]) and op(B) = B^T when <paramref name="transB"/> (B stored [n, k]).
    /// beta = 0 overwrites C (NaNs in C are ignored).
    /// </summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        if (m == 0 || n == 0) return;
        CheckOperand(nameof(a), a.Length, transA ? k : m, transA ? m : k, lda);
        CheckOperand(nameof(b), b.Length, transB ? n : k, transB ? k : n, ldb);
        CheckOperand(nameof(c), c.Length, m, n, ldc);
        fixed (float* ap = a)
        fixed (float* bp = b)
        fixed (float* cp = c)
        {
            var problem = new GemmEngine.Problem
            {
                M = m, N = n, K = k,
                A = ap, Lda = lda, ARowsAlongK = !transA,
                B = bp, Ldb = ldb, BRowsAlongK = transB, BType = DType.F32,
                C = cp, Ldc = ldc, Alpha = alpha, Beta = beta,
            };
            GemmEngine.Run(ref problem);
        }
    }

    private static void CheckOperand(string name, int length, int rows, int cols, int ld)
    {
        if (rows == 0 || cols == 0) return;
        if (ld < cols) throw new ArgumentException($"leading dimension {ld} of {name} is smaller than its {cols} columns", name);
        long needed = (long)(rows - 1) * ld + cols;
        if (length < needed) throw new ArgumentException($"{name} holds {length} floats, expected {rows}x{cols} with leading dimension {ld} ({needed})", name);
    }
}
