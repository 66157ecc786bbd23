using System.Runtime.InteropServices;

namespace Llada.Benchmarks;

/// <summary>
/// Optional side-by-side reference: OpenBLAS cblas_sgemm through P/Invoke, loaded only if the system library is
/// present (Debian: apt-get install libopenblas0). The product never uses it.
/// </summary>
internal static unsafe class OpenBlas
{
    private static readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> Sgemm = Load();

    public static bool Available => Sgemm != null;

    private static delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> Load()
    {
        foreach (string name in new[] { "libopenblas.so.0", "libopenblas.so", "libopenblas" })
            if (NativeLibrary.TryLoad(name, out nint handle) && NativeLibrary.TryGetExport(handle, "cblas_sgemm", out nint fn))
                return (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)fn;
        return null;
    }

    /// <summary>Row-major C = alpha op(A) op(B) + beta C.</summary>
    public static void RowMajorSgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        const int RowMajor = 101, NoTrans = 111, Trans = 112;
        Sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}
