namespace Llada.Numerics;

/// <summary>
/// Matrix products. Placeholder reference implementation: the numerics work replaces the bodies with
/// blocked, packed, vectorised, multithreaded kernels behind the same signatures.
/// </summary>
public static class Gemm
{
    /// <summary>
    /// Y[m, n] = X[m, k] * W[n, k]^T (or Y += ... when <paramref name="accumulate"/>), X and Y row-major float32,
    /// W in any <see cref="DType"/>, k = W.Cols, n = W.Rows.
    /// </summary>
    public static void MultiplyTransposed(ReadOnlySpan<float> x, int m, in WeightMatrix w, Span<float> y, bool accumulate = false)
    {
        int k = w.Cols, n = w.Rows;
        if (x.Length < (long)m * k) throw new ArgumentException($"x holds {x.Length} floats, expected {m}x{k}", nameof(x));
        if (y.Length < (long)m * n) throw new ArgumentException($"y holds {y.Length} floats, expected {m}x{n}", nameof(y));
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++) s += x[i * k + p] * w[j, p];
                y[i * n + j] = accumulate ? y[i * n + j] + s : s;
            }
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
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++)
                {
                    float av = transA ? a[p * lda + i] : a[i * lda + p];
                    float bv = transB ? b[j * ldb + p] : b[p * ldb + j];
                    s += av * bv;
                }
                c[i * ldc + j] = beta == 0 ? alpha * s : alpha * s + beta * c[i * ldc + j];
            }
    }
}
