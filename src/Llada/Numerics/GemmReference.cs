namespace Llada.Numerics;

/// <summary>
/// Naive scalar products with the same contracts as <see cref="Gemm"/>: the slow path used when no SIMD is
/// available and the independent reference the tests compare the fast kernels against.
/// </summary>
internal static class GemmReference
{
    /// <summary>Y[m, n] = X[m, k] * W[n, k]^T (or Y += ...), one float32 dot product per output.</summary>
    public static void MultiplyTransposed(ReadOnlySpan<float> x, int m, in WeightMatrix w, Span<float> y, bool accumulate)
    {
        int k = w.Cols, n = w.Rows;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++) s += x[i * k + p] * w[j, p];
                y[i * n + j] = accumulate ? y[i * n + j] + s : s;
            }
    }

    /// <summary>C = alpha * op(A) * op(B) + beta * C with the layout rules of <see cref="Gemm.Sgemm"/>.</summary>
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
