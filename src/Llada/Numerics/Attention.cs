using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Llada.Numerics;

/// <summary>
/// Fused scaled-dot-product attention, flash style: keys are visited in tiles with an online softmax, so no
/// [heads, Tq, Tk] score matrix is ever materialised. Keys are first transposed per key/value head ([D][Tk]), so
/// a tile of scores is a register-tiled outer-product kernel (8 queries x 32 keys with Vector512); P * V keeps
/// 4 query rows x 64 head dimensions in registers per pass over the value tile. Multithreaded over (head, query tile) pairs; each output
/// row is computed by the same sequence of operations whatever the thread count (bit-identical results).
/// </summary>
public static unsafe class Attention
{
    // Tile sizes fix the order of operations (and so the exact results); they do not depend on the thread count.
    private const int QueryTile = 32;
    private const int KeyTile = 128;
    private const int KeyPad = 32; // widest score-kernel column block

    /// <summary>
    /// output[i, h*D:(h+1)*D] = sum_j softmax_j(q_i,h . k_j,g / sqrt(D)) v_j,g with g = h / (heads / kvHeads)
    /// (grouped-query attention when kvHeads &lt; heads).
    /// </summary>
    /// <param name="q">Queries, row-major [queries, heads * headDim].</param>
    /// <param name="queries">Number of query rows Tq.</param>
    /// <param name="k">Keys, row-major [keys, kvHeads * headDim]; key j is at absolute position j.</param>
    /// <param name="v">Values, same layout as <paramref name="k"/>.</param>
    /// <param name="keys">Number of key rows Tk.</param>
    /// <param name="heads">Query heads.</param>
    /// <param name="kvHeads">Key/value heads; must divide <paramref name="heads"/>.</param>
    /// <param name="headDim">Per-head dimension D.</param>
    /// <param name="output">Result, row-major [queries, heads * headDim].</param>
    /// <param name="keyMask">Empty (all keys visible) or one flag per key; false hides that key (e.g. padding).</param>
    /// <param name="causal">When true, a query sees only keys whose position is &lt;= the query's position.</param>
    /// <param name="queryPositions">
    /// Absolute position of each query row (only used when <paramref name="causal"/>). Empty means the queries
    /// are the last Tq keys: positions Tk - Tq + i.
    /// </param>
    /// <remarks>A query row that can see no key at all (every key masked) gets an all-zero output row.</remarks>
    public static void Forward(ReadOnlySpan<float> q, int queries, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int keys,
        int heads, int kvHeads, int headDim, Span<float> output,
        ReadOnlySpan<bool> keyMask = default, bool causal = false, ReadOnlySpan<int> queryPositions = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(queries);
        ArgumentOutOfRangeException.ThrowIfNegative(keys);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        if (heads % kvHeads != 0) throw new ArgumentException($"{heads} query heads are not a multiple of {kvHeads} key/value heads", nameof(kvHeads));
        long qWidth = (long)heads * headDim, kvWidth = (long)kvHeads * headDim;
        if (q.Length < queries * qWidth) throw new ArgumentException($"q holds {q.Length} floats, expected {queries}x{qWidth}", nameof(q));
        if (k.Length < keys * kvWidth) throw new ArgumentException($"k holds {k.Length} floats, expected {keys}x{kvWidth}", nameof(k));
        if (v.Length < keys * kvWidth) throw new ArgumentException($"v holds {v.Length} floats, expected {keys}x{kvWidth}", nameof(v));
        if (output.Length < queries * qWidth) throw new ArgumentException($"output holds {output.Length} floats, expected {queries}x{qWidth}", nameof(output));
        if (!keyMask.IsEmpty && keyMask.Length != keys) throw new ArgumentException($"key mask has {keyMask.Length} entries, expected {keys}", nameof(keyMask));
        if (!queryPositions.IsEmpty && queryPositions.Length != queries)
            throw new ArgumentException($"{queryPositions.Length} query positions given for {queries} queries", nameof(queryPositions));
        if (queries == 0) return;

        fixed (float* qp = q, kp = k, vp = v, op = output)
        fixed (bool* mp = keyMask)
        fixed (int* pp = queryPositions)
        {
            int tkPad = (keys + KeyPad - 1) / KeyPad * KeyPad;
            var job = new Job
            {
                Q = qp, K = kp, V = vp, O = op, Mask = keyMask.IsEmpty ? null : mp, Positions = queryPositions.IsEmpty ? null : pp,
                Tq = queries, Tk = keys, TkPad = tkPad, Heads = heads, KvHeads = kvHeads, D = headDim, Causal = causal,
                QueryTiles = (queries + QueryTile - 1) / QueryTile, Scale = 1f / MathF.Sqrt(headDim),
                Wide = GemmEngine.Kind == GemmEngine.KernelKind.Vector512,
                KtStride = tkPad + 16,
            };
            // Transposed keys and packed values live in the calling thread's scratch; workers only read them while
            // it waits in For.
            job.Kt = ScratchBuffers.Get(6, (long)kvHeads * headDim * (job.KtStride + keys));
            job.Vp = job.Kt + (long)kvHeads * headDim * job.KtStride;
            WorkerPool.For(kvHeads, &PackKeysValues, &job);
            WorkerPool.For(heads * job.QueryTiles, &Item, &job);
        }
    }

    private struct Job
    {
        public float* Q, K, V, O, Kt, Vp;
        public bool* Mask;
        public int* Positions;
        public int Tq, Tk, TkPad, KtStride, Heads, KvHeads, D, QueryTiles;
        public bool Causal, Wide;
        public float Scale;

        public readonly int PositionOf(int i) => Positions != null ? Positions[i] : Tk - Tq + i;
    }

    /// <summary>
    /// Kt[g] = K[:, g]^T as [D][KtStride] (keys zero-padded to a whole number of score-kernel columns, rows 64 bytes
    /// longer than a power of two so walking D does not hit one cache set) and Vp[g] = V[:, g] as contiguous [Tk][D]
    /// (rows of V are kvHeads * D apart, typically 4 KB, which would alias in L1).
    /// </summary>
    private static void PackKeysValues(void* context, int g)
    {
        ref Job job = ref *(Job*)context;
        int d = job.D;
        long stride = (long)job.KvHeads * d;
        GemmEngine.Transpose(job.K + g * d, stride, job.Tk, d, job.Kt + (long)g * d * job.KtStride, job.KtStride);
        float* vp = job.Vp + (long)g * job.Tk * d;
        for (int j = 0; j < job.Tk; j++)
            Buffer.MemoryCopy(job.V + j * stride + g * d, vp + (long)j * d, d * sizeof(float), d * sizeof(float));
    }

    private static void Item(void* context, int item)
    {
        ref Job job = ref *(Job*)context;
        int h = item / job.QueryTiles, i0 = item % job.QueryTiles * QueryTile;
        int rows = Math.Min(QueryTile, job.Tq - i0);
        int d = job.D, g = h / (job.Heads / job.KvHeads);
        long qStride = (long)job.Heads * d;
        float* kt = job.Kt + (long)g * d * job.KtStride, vp = job.Vp + (long)g * job.Tk * d;

        // Scratch: the query rows [QueryTile][D] (contiguous, away from 4 KB aliasing), scores [QueryTile][KeyTile], accumulators [QueryTile + 1][D] (last row is a sink for padding
        // rows), running max and sum per row, and a zero probability row for padding.
        float* qTile = ScratchBuffers.Get(5, QueryTile * KeyTile + (2 * QueryTile + 1) * d + 2 * QueryTile + KeyTile);
        float* scores = qTile + QueryTile * d;
        float* acc = scores + QueryTile * KeyTile;
        float* runMax = acc + (QueryTile + 1) * d;
        float* runSum = runMax + QueryTile;
        float* zeroRow = runSum + QueryTile;
        new Span<float>(acc, (QueryTile + 1) * d).Clear();
        new Span<float>(zeroRow, KeyTile).Clear();
        for (int r = 0; r < QueryTile; r++) { runMax[r] = float.NegativeInfinity; runSum[r] = 0; }

        int keyEnd = job.Tk;
        if (job.Causal)
        {
            int maxPos = int.MinValue;
            for (int r = 0; r < rows; r++) maxPos = Math.Max(maxPos, job.PositionOf(i0 + r));
            keyEnd = (int)Math.Clamp(maxPos + 1L, 0, job.Tk);
        }

        for (int r = 0; r < rows; r++)
            Buffer.MemoryCopy(job.Q + (i0 + r) * qStride + h * d, qTile + r * d, d * sizeof(float), d * sizeof(float));
        float** q = stackalloc float*[8];
        int rowBlock = job.Wide ? 8 : 4, colBlock = job.Wide ? 32 : 16;
        for (int j0 = 0; j0 < keyEnd; j0 += KeyTile)
        {
            int kb = Math.Min(KeyTile, keyEnd - j0);
            // Scores for the tile: register-tiled Q * Kt blocks (rows past the tile's end repeat its last query;
            // columns past kb read the zero padding or later keys and are ignored).
            for (int r = 0; r < rows; r += rowBlock)
            {
                for (int t = 0; t < rowBlock; t++) q[t] = qTile + Math.Min(r + t, rows - 1) * d;
                for (int c = 0; c < kb; c += colBlock)
                {
                    if (job.Wide) Scores8x32(q, kt + j0 + c, job.KtStride, d, scores + r * KeyTile + c, KeyTile, job.Scale);
                    else Scores4x16(q, kt + j0 + c, job.KtStride, d, scores + r * KeyTile + c, KeyTile, job.Scale);
                }
            }
            // Hide masked / future keys, then the online-softmax update of each row: p = exp(s - newMax) and its
            // sum in one pass.
            for (int r = 0; r < rows; r++)
            {
                float* s = scores + r * KeyTile;
                if (job.Mask != null)
                    for (int c = 0; c < kb; c++)
                        if (!job.Mask[j0 + c]) s[c] = float.NegativeInfinity;
                if (job.Causal)
                    for (int c = Math.Max(0, job.PositionOf(i0 + r) + 1 - j0); c < kb; c++) s[c] = float.NegativeInfinity;
                float tileMax = RowMax(s, kb);
                if (float.IsNegativeInfinity(tileMax))
                {
                    new Span<float>(s, kb).Clear(); // nothing visible here: contributes nothing
                    continue;
                }
                float newMax = Math.Max(runMax[r], tileMax);
                float correction = float.IsNegativeInfinity(runMax[r]) ? 0 : MathF.Exp(runMax[r] - newMax);
                runSum[r] = runSum[r] * correction + ExpShiftedSum(s, kb, newMax, job.Wide);
                runMax[r] = newMax;
                if (correction != 1)
                {
                    var accRow = new Span<float>(acc + r * d, d);
                    TensorPrimitives.Multiply(accRow, correction, accRow);
                }
            }
            // acc[r] += sum_c p[r, c] * v[j0 + c], four query rows per pass over the value tile.
            for (int r = 0; r < rows; r += 4)
            {
                float* p0 = scores + r * KeyTile;
                float* p1 = r + 1 < rows ? p0 + KeyTile : zeroRow;
                float* p2 = r + 2 < rows ? p0 + 2 * KeyTile : zeroRow;
                float* p3 = r + 3 < rows ? p0 + 3 * KeyTile : zeroRow;
                float* sink = acc + QueryTile * d;
                float* a0 = acc + r * d;
                float* a1 = r + 1 < rows ? a0 + d : sink;
                float* a2 = r + 2 < rows ? a0 + 2 * d : sink;
                float* a3 = r + 3 < rows ? a0 + 3 * d : sink;
                AccumulateValues(job.Wide, p0, p1, p2, p3, vp + (long)j0 * d, d, kb, d, a0, a1, a2, a3);
            }
        }
        for (int r = 0; r < rows; r++)
        {
            var dst = new Span<float>(job.O + (i0 + r) * qStride + h * d, d);
            if (runSum[r] == 0) dst.Clear();
            else TensorPrimitives.Divide(new ReadOnlySpan<float>(acc + r * d, d), runSum[r], dst);
        }
    }

    private static float RowMax(float* s, int n)
    {
        int c = 0;
        float max = float.NegativeInfinity;
        if (n >= 8)
        {
            var m = Vector256.Load(s);
            for (c = 8; c + 8 <= n; c += 8) m = Vector256.Max(m, Vector256.Load(s + c));
            var h = Vector128.Max(m.GetLower(), m.GetUpper());
            max = MathF.Max(MathF.Max(h[0], h[1]), MathF.Max(h[2], h[3]));
        }
        for (; c < n; c++) max = MathF.Max(max, s[c]);
        return max;
    }

    /// <summary>
    /// s[c] = exp(s[c] - max) for c &lt; n, returning the sum (fixed order: lane sums folded pairwise), 16 lanes at
    /// a time when <paramref name="wide"/>, else 8. Arguments are &lt;= 0; the tail goes through the same vector code
    /// padded with -inf (exp = 0).
    /// </summary>
    internal static float ExpShiftedSum(float* s, int n, float max, bool wide)
    {
        if (wide) return ExpShiftedSum512(s, n, max);
        var shift = Vector256.Create(max);
        var sum = Vector256<float>.Zero;
        int c = 0;
        for (; c + 8 <= n; c += 8)
        {
            var e = VectorMath.ExpNonPositive(Vector256.Load(s + c) - shift);
            e.Store(s + c);
            sum += e;
        }
        if (c < n)
        {
            float* tail = stackalloc float[8];
            for (int t = 0; t < 8; t++) tail[t] = c + t < n ? s[c + t] : float.NegativeInfinity;
            var e = VectorMath.ExpNonPositive(Vector256.Load(tail) - shift);
            e.Store(tail);
            sum += e;
            for (int t = 0; c + t < n; t++) s[c + t] = tail[t];
        }
        var h = sum.GetLower() + sum.GetUpper();
        return (h[0] + h[2]) + (h[1] + h[3]);
    }

    private static float ExpShiftedSum512(float* s, int n, float max)
    {
        var shift = Vector512.Create(max);
        var sum = Vector512<float>.Zero;
        int c = 0;
        for (; c + 16 <= n; c += 16)
        {
            var e = VectorMath.ExpNonPositive(Vector512.Load(s + c) - shift);
            e.Store(s + c);
            sum += e;
        }
        if (c < n)
        {
            float* tail = stackalloc float[16];
            for (int t = 0; t < 16; t++) tail[t] = c + t < n ? s[c + t] : float.NegativeInfinity;
            var e = VectorMath.ExpNonPositive(Vector512.Load(tail) - shift);
            e.Store(tail);
            sum += e;
            for (int t = 0; c + t < n; t++) s[c + t] = tail[t];
        }
        var h8 = sum.GetLower() + sum.GetUpper();
        var h = h8.GetLower() + h8.GetUpper();
        return (h[0] + h[2]) + (h[1] + h[3]);
    }

    /// <summary>
    /// s[r * sStride + c] = scale * sum_x q[r][x] * kt[x * ktStride + c] for 8 query rows and 32 keys; the 16
    /// accumulators stay in zmm registers (same outer-product scheme as the GEMM micro-kernel).
    /// </summary>
    private static void Scores8x32(float** q, float* kt, long ktStride, int d, float* s, int sStride, float scale)
    {
        float* q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3], q4 = q[4], q5 = q[5], q6 = q[6], q7 = q[7];
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default;
        for (int x = 0; x < d; x++, kt += ktStride)
        {
            var b0 = Vector512.Load(kt);
            var b1 = Vector512.Load(kt + 16);
            var a = Vector512.Create(q0[x]);
            c00 = Vector512.FusedMultiplyAdd(a, b0, c00); c01 = Vector512.FusedMultiplyAdd(a, b1, c01);
            a = Vector512.Create(q1[x]);
            c10 = Vector512.FusedMultiplyAdd(a, b0, c10); c11 = Vector512.FusedMultiplyAdd(a, b1, c11);
            a = Vector512.Create(q2[x]);
            c20 = Vector512.FusedMultiplyAdd(a, b0, c20); c21 = Vector512.FusedMultiplyAdd(a, b1, c21);
            a = Vector512.Create(q3[x]);
            c30 = Vector512.FusedMultiplyAdd(a, b0, c30); c31 = Vector512.FusedMultiplyAdd(a, b1, c31);
            a = Vector512.Create(q4[x]);
            c40 = Vector512.FusedMultiplyAdd(a, b0, c40); c41 = Vector512.FusedMultiplyAdd(a, b1, c41);
            a = Vector512.Create(q5[x]);
            c50 = Vector512.FusedMultiplyAdd(a, b0, c50); c51 = Vector512.FusedMultiplyAdd(a, b1, c51);
            a = Vector512.Create(q6[x]);
            c60 = Vector512.FusedMultiplyAdd(a, b0, c60); c61 = Vector512.FusedMultiplyAdd(a, b1, c61);
            a = Vector512.Create(q7[x]);
            c70 = Vector512.FusedMultiplyAdd(a, b0, c70); c71 = Vector512.FusedMultiplyAdd(a, b1, c71);
        }
        var vs = Vector512.Create(scale);
        (c00 * vs).Store(s); (c01 * vs).Store(s + 16); s += sStride;
        (c10 * vs).Store(s); (c11 * vs).Store(s + 16); s += sStride;
        (c20 * vs).Store(s); (c21 * vs).Store(s + 16); s += sStride;
        (c30 * vs).Store(s); (c31 * vs).Store(s + 16); s += sStride;
        (c40 * vs).Store(s); (c41 * vs).Store(s + 16); s += sStride;
        (c50 * vs).Store(s); (c51 * vs).Store(s + 16); s += sStride;
        (c60 * vs).Store(s); (c61 * vs).Store(s + 16); s += sStride;
        (c70 * vs).Store(s); (c71 * vs).Store(s + 16);
    }

    /// <summary>As <see cref="Scores8x32"/> for 4 query rows and 16 keys with Vector256 (AVX2 machines).</summary>
    private static void Scores4x16(float** q, float* kt, long ktStride, int d, float* s, int sStride, float scale)
    {
        float* q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3];
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector256<float> c20 = default, c21 = default, c30 = default, c31 = default;
        for (int x = 0; x < d; x++, kt += ktStride)
        {
            var b0 = Vector256.Load(kt);
            var b1 = Vector256.Load(kt + 8);
            var a = Vector256.Create(q0[x]);
            c00 = Vector256.FusedMultiplyAdd(a, b0, c00); c01 = Vector256.FusedMultiplyAdd(a, b1, c01);
            a = Vector256.Create(q1[x]);
            c10 = Vector256.FusedMultiplyAdd(a, b0, c10); c11 = Vector256.FusedMultiplyAdd(a, b1, c11);
            a = Vector256.Create(q2[x]);
            c20 = Vector256.FusedMultiplyAdd(a, b0, c20); c21 = Vector256.FusedMultiplyAdd(a, b1, c21);
            a = Vector256.Create(q3[x]);
            c30 = Vector256.FusedMultiplyAdd(a, b0, c30); c31 = Vector256.FusedMultiplyAdd(a, b1, c31);
        }
        var vs = Vector256.Create(scale);
        (c00 * vs).Store(s); (c01 * vs).Store(s + 8); s += sStride;
        (c10 * vs).Store(s); (c11 * vs).Store(s + 8); s += sStride;
        (c20 * vs).Store(s); (c21 * vs).Store(s + 8); s += sStride;
        (c30 * vs).Store(s); (c31 * vs).Store(s + 8);
    }

    /// <summary>a_r[x] += sum_c p_r[c] * v[c * vStride + x] for four rows; the row accumulators stay in registers over the tile.</summary>
    private static void AccumulateValues(bool wide, float* p0, float* p1, float* p2, float* p3, float* v, long vStride, int kb, int d,
        float* a0, float* a1, float* a2, float* a3)
    {
        int x = 0;
        if (wide)
        {
            for (; x + 64 <= d; x += 64) Accumulate4x64(p0, p1, p2, p3, v + x, vStride, kb, a0 + x, a1 + x, a2 + x, a3 + x);
            for (; x + 16 <= d; x += 16)
            {
                var s0 = Vector512.Load(a0 + x);
                var s1 = Vector512.Load(a1 + x);
                var s2 = Vector512.Load(a2 + x);
                var s3 = Vector512.Load(a3 + x);
                float* vr = v + x;
                for (int c = 0; c < kb; c++, vr += vStride)
                {
                    var val = Vector512.Load(vr);
                    s0 = Vector512.FusedMultiplyAdd(Vector512.Create(p0[c]), val, s0);
                    s1 = Vector512.FusedMultiplyAdd(Vector512.Create(p1[c]), val, s1);
                    s2 = Vector512.FusedMultiplyAdd(Vector512.Create(p2[c]), val, s2);
                    s3 = Vector512.FusedMultiplyAdd(Vector512.Create(p3[c]), val, s3);
                }
                s0.Store(a0 + x); s1.Store(a1 + x); s2.Store(a2 + x); s3.Store(a3 + x);
            }
        }
        for (; x + 8 <= d; x += 8)
        {
            var s0 = Vector256.Load(a0 + x);
            var s1 = Vector256.Load(a1 + x);
            var s2 = Vector256.Load(a2 + x);
            var s3 = Vector256.Load(a3 + x);
            float* vr = v + x;
            for (int c = 0; c < kb; c++, vr += vStride)
            {
                var val = Vector256.Load(vr);
                s0 = Vector256.FusedMultiplyAdd(Vector256.Create(p0[c]), val, s0);
                s1 = Vector256.FusedMultiplyAdd(Vector256.Create(p1[c]), val, s1);
                s2 = Vector256.FusedMultiplyAdd(Vector256.Create(p2[c]), val, s2);
                s3 = Vector256.FusedMultiplyAdd(Vector256.Create(p3[c]), val, s3);
            }
            s0.Store(a0 + x); s1.Store(a1 + x); s2.Store(a2 + x); s3.Store(a3 + x);
        }
        for (; x < d; x++)
        {
            float s0 = a0[x], s1 = a1[x], s2 = a2[x], s3 = a3[x];
            for (int c = 0; c < kb; c++)
            {
                float val = v[c * vStride + x];
                s0 = MathF.FusedMultiplyAdd(p0[c], val, s0);
                s1 = MathF.FusedMultiplyAdd(p1[c], val, s1);
                s2 = MathF.FusedMultiplyAdd(p2[c], val, s2);
                s3 = MathF.FusedMultiplyAdd(p3[c], val, s3);
            }
            a0[x] = s0; a1[x] = s1; a2[x] = s2; a3[x] = s3;
        }
    }

    /// <summary>Four rows x 64 columns of <see cref="AccumulateValues"/>: 16 zmm accumulators, one value row (4 loads) per key.</summary>
    private static void Accumulate4x64(float* p0, float* p1, float* p2, float* p3, float* v, long vStride, int kb,
        float* a0, float* a1, float* a2, float* a3)
    {
        var s00 = Vector512.Load(a0); var s01 = Vector512.Load(a0 + 16); var s02 = Vector512.Load(a0 + 32); var s03 = Vector512.Load(a0 + 48);
        var s10 = Vector512.Load(a1); var s11 = Vector512.Load(a1 + 16); var s12 = Vector512.Load(a1 + 32); var s13 = Vector512.Load(a1 + 48);
        var s20 = Vector512.Load(a2); var s21 = Vector512.Load(a2 + 16); var s22 = Vector512.Load(a2 + 32); var s23 = Vector512.Load(a2 + 48);
        var s30 = Vector512.Load(a3); var s31 = Vector512.Load(a3 + 16); var s32 = Vector512.Load(a3 + 32); var s33 = Vector512.Load(a3 + 48);
        for (int c = 0; c < kb; c++, v += vStride)
        {
            var v0 = Vector512.Load(v); var v1 = Vector512.Load(v + 16); var v2 = Vector512.Load(v + 32); var v3 = Vector512.Load(v + 48);
            var p = Vector512.Create(p0[c]);
            s00 = Vector512.FusedMultiplyAdd(p, v0, s00); s01 = Vector512.FusedMultiplyAdd(p, v1, s01);
            s02 = Vector512.FusedMultiplyAdd(p, v2, s02); s03 = Vector512.FusedMultiplyAdd(p, v3, s03);
            p = Vector512.Create(p1[c]);
            s10 = Vector512.FusedMultiplyAdd(p, v0, s10); s11 = Vector512.FusedMultiplyAdd(p, v1, s11);
            s12 = Vector512.FusedMultiplyAdd(p, v2, s12); s13 = Vector512.FusedMultiplyAdd(p, v3, s13);
            p = Vector512.Create(p2[c]);
            s20 = Vector512.FusedMultiplyAdd(p, v0, s20); s21 = Vector512.FusedMultiplyAdd(p, v1, s21);
            s22 = Vector512.FusedMultiplyAdd(p, v2, s22); s23 = Vector512.FusedMultiplyAdd(p, v3, s23);
            p = Vector512.Create(p3[c]);
            s30 = Vector512.FusedMultiplyAdd(p, v0, s30); s31 = Vector512.FusedMultiplyAdd(p, v1, s31);
            s32 = Vector512.FusedMultiplyAdd(p, v2, s32); s33 = Vector512.FusedMultiplyAdd(p, v3, s33);
        }
        s00.Store(a0); s01.Store(a0 + 16); s02.Store(a0 + 32); s03.Store(a0 + 48);
        s10.Store(a1); s11.Store(a1 + 16); s12.Store(a1 + 32); s13.Store(a1 + 48);
        s20.Store(a2); s21.Store(a2 + 16); s22.Store(a2 + 32); s23.Store(a2 + 48);
        s30.Store(a3); s31.Store(a3 + 16); s32.Store(a3 + 32); s33.Store(a3 + 48);
    }
}
