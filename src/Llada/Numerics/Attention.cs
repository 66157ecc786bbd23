using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Llada.Numerics;

/// <summary>
/// Fused scaled-dot-product attention, flash style: keys are visited in tiles with an online softmax, so no
/// [heads, Tq, Tk] score matrix is ever materialised. Multithreaded over (head, query tile) pairs; each output
/// row is computed by the same sequence of operations whatever the thread count (bit-identical results).
/// </summary>
public static unsafe class Attention
{
    private const int QueryTile = 16;
    private const int KeyTile = 64;

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
            var job = new Job
            {
                Q = qp, K = kp, V = vp, O = op, Mask = keyMask.IsEmpty ? null : mp, Positions = queryPositions.IsEmpty ? null : pp,
                Tq = queries, Tk = keys, Heads = heads, KvHeads = kvHeads, D = headDim, Causal = causal,
                QueryTiles = (queries + QueryTile - 1) / QueryTile, Scale = 1f / MathF.Sqrt(headDim),
            };
            WorkerPool.For(heads * job.QueryTiles, &Item, &job);
        }
    }

    private struct Job
    {
        public float* Q, K, V, O;
        public bool* Mask;
        public int* Positions;
        public int Tq, Tk, Heads, KvHeads, D, QueryTiles;
        public bool Causal;
        public float Scale;

        public readonly int PositionOf(int i) => Positions != null ? Positions[i] : Tk - Tq + i;
    }

    private static void Item(void* context, int item)
    {
        ref Job job = ref *(Job*)context;
        int h = item / job.QueryTiles, i0 = item % job.QueryTiles * QueryTile;
        int rows = Math.Min(QueryTile, job.Tq - i0);
        int d = job.D, g = h / (job.Heads / job.KvHeads);
        long qStride = (long)job.Heads * d, kvStride = (long)job.KvHeads * d;

        // Scratch: scores [QueryTile][KeyTile], accumulators [QueryTile + 1][D] (last row is a sink for padding
        // rows), running max and sum per row, and a zero probability row for padding.
        float* scores = ScratchBuffers.Get(5, QueryTile * KeyTile + (QueryTile + 1) * d + 2 * QueryTile + KeyTile);
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

        float** qRows = stackalloc float*[4];
        float** kRows = stackalloc float*[4];
        float* sums = stackalloc float[16];
        for (int j0 = 0; j0 < keyEnd; j0 += KeyTile)
        {
            int kb = Math.Min(KeyTile, keyEnd - j0);
            // Scores for the tile, 4 queries x 4 keys at a time.
            for (int r = 0; r < rows; r += 4)
            {
                for (int t = 0; t < 4; t++) qRows[t] = job.Q + (i0 + Math.Min(r + t, rows - 1)) * qStride + h * d;
                for (int c = 0; c < kb; c += 4)
                {
                    for (int t = 0; t < 4; t++) kRows[t] = job.K + (j0 + Math.Min(c + t, kb - 1)) * kvStride + g * d;
                    GemmEngine.Dot4x4(qRows, kRows, d, sums);
                    for (int a = 0; a < 4 && r + a < rows; a++)
                        for (int b = 0; b < 4 && c + b < kb; b++)
                            scores[(r + a) * KeyTile + c + b] = sums[a * 4 + b] * job.Scale;
                }
            }
            // Hide masked / future keys, then the online-softmax update of each row.
            for (int r = 0; r < rows; r++)
            {
                float* s = scores + r * KeyTile;
                int pos = job.Causal ? job.PositionOf(i0 + r) : int.MaxValue;
                for (int c = 0; c < kb; c++)
                    if ((job.Mask != null && !job.Mask[j0 + c]) || j0 + c > pos) s[c] = float.NegativeInfinity;
                var row = new Span<float>(s, kb);
                float tileMax = TensorPrimitives.Max(row);
                if (float.IsNegativeInfinity(tileMax))
                {
                    row.Clear(); // nothing visible here: contributes nothing
                    continue;
                }
                float newMax = Math.Max(runMax[r], tileMax);
                float correction = float.IsNegativeInfinity(runMax[r]) ? 0 : MathF.Exp(runMax[r] - newMax);
                TensorPrimitives.Subtract(row, newMax, row);
                TensorPrimitives.Exp(row, row);
                runSum[r] = runSum[r] * correction + TensorPrimitives.Sum(row);
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
                AccumulateValues(p0, p1, p2, p3, job.V + j0 * kvStride + g * d, kvStride, kb, d, a0, a1, a2, a3);
            }
        }
        for (int r = 0; r < rows; r++)
        {
            var dst = new Span<float>(job.O + (i0 + r) * qStride + h * d, d);
            if (runSum[r] == 0) dst.Clear();
            else TensorPrimitives.Divide(new ReadOnlySpan<float>(acc + r * d, d), runSum[r], dst);
        }
    }

    private static void AccumulateValues(float* p0, float* p1, float* p2, float* p3, float* v, long vStride, int kb, int d,
        float* a0, float* a1, float* a2, float* a3)
    {
        int x = 0;
        if (Vector256.IsHardwareAccelerated)
        {
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
                s0.Store(a0 + x);
                s1.Store(a1 + x);
                s2.Store(a2 + x);
                s3.Store(a3 + x);
            }
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
}
