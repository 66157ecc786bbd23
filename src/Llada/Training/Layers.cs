using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Llada.Numerics;

namespace Llada.Training;

/// <summary>
/// Forward and backward of every layer of the dense LLaDA Transformer, side by side (after karpathy/llm.c).
/// Rows are tokens: n = batch * seqLen, row r is position r % seqLen of sequence r / seqLen. All tensors are
/// row-major float32. Backward functions <b>accumulate</b> (+=) into parameter gradients; what they do to input
/// gradients is stated on each one.
/// </summary>
internal static class Layers
{
    // ---------------------------------------------------------------- embedding: out[r] = wte[token[r]]

    public static void EmbeddingForward(Span<float> outp, ReadOnlySpan<int> tokens, ReadOnlySpan<float> wte, int d)
    {
        for (int r = 0; r < tokens.Length; r++)
            wte.Slice(tokens[r] * d, d).CopyTo(outp.Slice(r * d, d));
    }

    /// <summary>dwte[token[r]] += dout[r].</summary>
    public static void EmbeddingBackward(Span<float> dwte, ReadOnlySpan<float> dout, ReadOnlySpan<int> tokens, int d)
    {
        for (int r = 0; r < tokens.Length; r++)
        {
            Span<float> row = dwte.Slice(tokens[r] * d, d);
            TensorPrimitives.Add(row, dout.Slice(r * d, d), row);
        }
    }

    // ---------------------------------------------------------------- RMSNorm: y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps)

    public static void RmsNormForward(Span<float> outp, Span<float> rstd, ReadOnlySpan<float> inp, ReadOnlySpan<float> weight,
        int n, int d, float eps)
    {
        for (int r = 0; r < n; r++)
        {
            ReadOnlySpan<float> x = inp.Slice(r * d, d);
            Span<float> y = outp.Slice(r * d, d);
            float s = 1f / MathF.Sqrt(TensorPrimitives.Dot(x, x) / d + eps);
            rstd[r] = s;
            TensorPrimitives.Multiply(x, s, y);
            TensorPrimitives.Multiply(y, weight, y);
        }
    }

    /// <summary>
    /// dinp += dL/dx, dweight += dL/dw. With g = dy * w: dx = rstd * g - x * rstd^3 * (g . x) / d.
    /// <paramref name="scratch"/> holds d floats.
    /// </summary>
    public static void RmsNormBackward(Span<float> dinp, Span<float> dweight, ReadOnlySpan<float> dout, ReadOnlySpan<float> inp,
        ReadOnlySpan<float> weight, ReadOnlySpan<float> rstd, int n, int d, Span<float> scratch)
    {
        Span<float> g = scratch[..d];
        for (int r = 0; r < n; r++)
        {
            ReadOnlySpan<float> x = inp.Slice(r * d, d), dy = dout.Slice(r * d, d);
            Span<float> dx = dinp.Slice(r * d, d);
            float s = rstd[r];
            // Each row's contribution is formed in scratch and added once, so accumulating onto existing
            // values rounds exactly like accumulating onto zero and then adding them.
            TensorPrimitives.Multiply(dy, x, g);
            TensorPrimitives.Multiply(g, s, g);
            TensorPrimitives.Add(dweight, g, dweight);
            TensorPrimitives.Multiply(dy, weight, g);
            float c = s * s * s * TensorPrimitives.Dot(g, x) / d;
            TensorPrimitives.Multiply(g, s, g);
            TensorPrimitives.MultiplyAdd(x, -c, g, g);
            TensorPrimitives.Add(dx, g, dx);
        }
    }

    // ---------------------------------------------------------------- linear (no bias): out[n, o] = inp[n, i] * W[o, i]^T

    public static void MatmulForward(Span<float> outp, ReadOnlySpan<float> inp, ReadOnlySpan<float> weight, int n, int inDim, int outDim)
        => Gemm.Sgemm(false, true, n, outDim, inDim, 1f, inp, inDim, weight, inDim, 0f, outp, outDim);

    /// <summary>dinp = (or += when <paramref name="accumulateInput"/>) dout * W; dweight += dout^T * inp.</summary>
    public static void MatmulBackward(Span<float> dinp, Span<float> dweight, ReadOnlySpan<float> dout, ReadOnlySpan<float> inp,
        ReadOnlySpan<float> weight, int n, int inDim, int outDim, bool accumulateInput)
    {
        Gemm.Sgemm(false, false, n, inDim, outDim, 1f, dout, outDim, weight, inDim, accumulateInput ? 1f : 0f, dinp, inDim);
        Gemm.Sgemm(true, false, outDim, inDim, n, 1f, dout, outDim, inp, inDim, 1f, dweight, inDim);
    }

    // ---------------------------------------------------------------- RoPE, rotate-half: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s)

    /// <summary>cos/sin tables [maxSeq, headDim/2]: angle = pos * theta^(-2j/headDim).</summary>
    public static void RopeTables(Span<float> cos, Span<float> sin, int maxSeq, int headDim, double theta)
    {
        int half = headDim / 2;
        for (int p = 0; p < maxSeq; p++)
            for (int j = 0; j < half; j++)
            {
                double angle = p * Math.Pow(theta, -2.0 * j / headDim);
                cos[p * half + j] = (float)Math.Cos(angle);
                sin[p * half + j] = (float)Math.Sin(angle);
            }
    }

    /// <summary>Rotates x [n, heads * headDim] in place; row r has position r % seqLen.</summary>
    public static void RopeForward(Span<float> x, int n, int seqLen, int heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = headDim / 2;
        for (int r = 0; r < n; r++)
        {
            int p = r % seqLen;
            for (int h = 0; h < heads; h++)
            {
                Span<float> v = x.Slice((r * heads + h) * headDim, headDim);
                for (int j = 0; j < half; j++)
                {
                    float c = cos[p * half + j], s = sin[p * half + j], x1 = v[j], x2 = v[j + half];
                    v[j] = x1 * c - x2 * s;
                    v[j + half] = x2 * c + x1 * s;
                }
            }
        }
    }

    /// <summary>Replaces dy by dx in place: the rotation is orthogonal, so its transpose rotates by -angle.</summary>
    public static void RopeBackward(Span<float> d, int n, int seqLen, int heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = headDim / 2;
        for (int r = 0; r < n; r++)
        {
            int p = r % seqLen;
            for (int h = 0; h < heads; h++)
            {
                Span<float> v = d.Slice((r * heads + h) * headDim, headDim);
                for (int j = 0; j < half; j++)
                {
                    float c = cos[p * half + j], s = sin[p * half + j], d1 = v[j], d2 = v[j + half];
                    v[j] = d1 * c + d2 * s;
                    v[j + half] = d2 * c - d1 * s;
                }
            }
        }
    }

    // ---------------------------------------------------------------- attention (grouped-query, bidirectional or causal)
    // q [n, H*hd], k/v [n, Hkv*hd], out [n, H*hd], att [B, H, T, T] = softmax(q k^T / sqrt(hd)) with hidden keys at 0.
    // Query head h reads kv head h / (H / Hkv). Work items are (sequence, kv head) pairs, so every item owns the
    // rows of dk/dv it writes and results do not depend on the thread count. Each item does its products with
    // Gemm.Sgemm on strided head views (no copies); inside a pool item those run on the item's thread.

    private struct AttentionArgs
    {
        public float[] Out, Att, Q, K, V, DOut, DK, DV, Scratch; // Out is the output forward, dq backward
        public bool[] KeyMask;
        public bool UseKeyMask, Causal;
        public int SeqLen, Heads, KvHeads, HeadDim;
    }

    public static unsafe void AttentionForward(float[] outp, float[] att, float[] q, float[] k, float[] v, bool[] keyMask, bool useKeyMask,
        int batch, int seqLen, int heads, int kvHeads, int headDim, bool causal)
    {
        var args = new AttentionArgs
        {
            Out = outp, Att = att, Q = q, K = k, V = v, DOut = [], DK = [], DV = [], Scratch = [], KeyMask = keyMask,
            UseKeyMask = useKeyMask, Causal = causal, SeqLen = seqLen, Heads = heads, KvHeads = kvHeads, HeadDim = headDim,
        };
        WorkerPool.For(batch * kvHeads, &AttentionForwardItem, Unsafe.AsPointer(ref args));
    }

    private static unsafe void AttentionForwardItem(void* context, int item)
    {
        ref AttentionArgs a = ref Unsafe.AsRef<AttentionArgs>(context);
        int T = a.SeqLen, hd = a.HeadDim, heads = a.Heads, kvHeads = a.KvHeads, group = heads / kvHeads;
        int b = item / kvHeads, kvh = item % kvHeads;
        int qStride = heads * hd, kvStride = kvHeads * hd;
        int kOff = b * T * kvStride + kvh * hd;
        float scale = 1f / MathF.Sqrt(hd);
        for (int h = kvh * group; h < (kvh + 1) * group; h++)
        {
            int qOff = b * T * qStride + h * hd;
            Span<float> scores = a.Att.AsSpan((b * heads + h) * T * T, T * T);
            Gemm.Sgemm(false, true, T, T, hd, scale, a.Q.AsSpan(qOff), qStride, a.K.AsSpan(kOff), kvStride, 0f, scores, T);
            for (int t = 0; t < T; t++)
            {
                Span<float> p = scores.Slice(t * T, T);
                int end = a.Causal ? t + 1 : T;
                Span<float> visible = p[..end];
                if (a.UseKeyMask)
                    for (int s = 0; s < end; s++)
                        if (!a.KeyMask[b * T + s]) visible[s] = float.NegativeInfinity;
                p[end..].Clear();
                float max = TensorPrimitives.Max(visible);
                // A query with no visible key (a pad query in causal mode) outputs zeros.
                if (float.IsNegativeInfinity(max)) { visible.Clear(); continue; }
                TensorPrimitives.Subtract(visible, max, visible);
                TensorPrimitives.Exp(visible, visible); // exp(-inf) = 0 for hidden keys
                TensorPrimitives.Multiply(visible, 1f / TensorPrimitives.Sum(visible), visible);
            }
            Gemm.Sgemm(false, false, T, hd, T, 1f, scores, T, a.V.AsSpan(kOff), kvStride, 0f, a.Out.AsSpan(qOff), qStride);
        }
    }

    /// <summary>
    /// Overwrites dq, dk, dv. With P the probabilities and dP = dO V^T: dS = P * (dP - rowsum(P * dP)),
    /// dQ = dS K / sqrt(hd), dK = dS^T Q / sqrt(hd), dV = P^T dO. Hidden keys have P = 0, hence dS = 0.
    /// <paramref name="scratch"/> holds batch * kvHeads * seqLen * seqLen floats.
    /// </summary>
    public static unsafe void AttentionBackward(float[] dq, float[] dk, float[] dv, float[] dout, float[] att, float[] q, float[] k, float[] v,
        float[] scratch, int batch, int seqLen, int heads, int kvHeads, int headDim)
    {
        if (scratch.Length < (long)batch * kvHeads * seqLen * seqLen)
            throw new ArgumentException($"attention scratch holds {scratch.Length} floats, expected {batch}x{kvHeads}x{seqLen}x{seqLen}", nameof(scratch));
        var args = new AttentionArgs
        {
            Out = dq, Att = att, Q = q, K = k, V = v, DOut = dout, DK = dk, DV = dv, Scratch = scratch, KeyMask = [],
            SeqLen = seqLen, Heads = heads, KvHeads = kvHeads, HeadDim = headDim,
        };
        WorkerPool.For(batch * kvHeads, &AttentionBackwardItem, Unsafe.AsPointer(ref args));
    }

    private static unsafe void AttentionBackwardItem(void* context, int item)
    {
        ref AttentionArgs a = ref Unsafe.AsRef<AttentionArgs>(context);
        int T = a.SeqLen, hd = a.HeadDim, heads = a.Heads, kvHeads = a.KvHeads, group = heads / kvHeads;
        int b = item / kvHeads, kvh = item % kvHeads;
        int qStride = heads * hd, kvStride = kvHeads * hd;
        int kOff = b * T * kvStride + kvh * hd;
        float scale = 1f / MathF.Sqrt(hd);
        Span<float> ds = a.Scratch.AsSpan(item * T * T, T * T);
        for (int h = kvh * group; h < (kvh + 1) * group; h++)
        {
            int qOff = b * T * qStride + h * hd;
            float beta = h == kvh * group ? 0f : 1f; // the group's first head overwrites dk/dv, the others add
            ReadOnlySpan<float> p = a.Att.AsSpan((b * heads + h) * T * T, T * T);
            ReadOnlySpan<float> dO = a.DOut.AsSpan(qOff);
            Gemm.Sgemm(true, false, T, hd, T, 1f, p, T, dO, qStride, beta, a.DV.AsSpan(kOff), kvStride);
            Gemm.Sgemm(false, true, T, T, hd, 1f, dO, qStride, a.V.AsSpan(kOff), kvStride, 0f, ds, T);
            for (int t = 0; t < T; t++)
            {
                ReadOnlySpan<float> pt = p.Slice(t * T, T);
                Span<float> row = ds.Slice(t * T, T);
                SoftmaxBackward(row, pt);
                TensorPrimitives.Multiply(row, scale, row);
            }
            Gemm.Sgemm(false, false, T, hd, T, 1f, ds, T, a.K.AsSpan(kOff), kvStride, 0f, a.Out.AsSpan(qOff), qStride);
            Gemm.Sgemm(true, false, T, hd, T, 1f, ds, T, a.Q.AsSpan(qOff), qStride, beta, a.DK.AsSpan(kOff), kvStride);
        }
    }

    // ---------------------------------------------------------------- SwiGLU: act = silu(gate) * up, silu(g) = g * sigmoid(g)
    // Elementwise, so it is split into fixed chunks run on the pool: the same bits for any thread count.

    private const int SwiGluChunk = 512, SwiGluItem = 32 * SwiGluChunk;

    private unsafe struct SwiGluArgs
    {
        public float* Act, Gate, Up, DGate, DUp;
        public int Length;
    }

    /// <summary>Backward of p = softmax(z) over one row, in place: dz = p * (dp - p . dp).</summary>
    public static void SoftmaxBackward(Span<float> dp, ReadOnlySpan<float> p)
    {
        float pdp = TensorPrimitives.Dot(p, dp);
        TensorPrimitives.Subtract(dp, pdp, dp);
        TensorPrimitives.Multiply(dp, p, dp);
    }

    public static unsafe void SwiGluForward(Span<float> act, ReadOnlySpan<float> gate, ReadOnlySpan<float> up)
    {
        if (gate.Length != act.Length || up.Length != act.Length) throw new ArgumentException($"SwiGLU spans differ in length: act {act.Length}, gate {gate.Length}, up {up.Length}");
        fixed (float* a = act) fixed (float* g = gate) fixed (float* u = up)
        {
            var args = new SwiGluArgs { Act = a, Gate = g, Up = u, Length = act.Length };
            WorkerPool.For((act.Length + SwiGluItem - 1) / SwiGluItem, &SwiGluForwardItem, &args);
        }
    }

    private static unsafe void SwiGluForwardItem(void* context, int item)
    {
        var a = (SwiGluArgs*)context;
        int start = item * SwiGluItem, len = Math.Min(SwiGluItem, a->Length - start);
        var act = new Span<float>(a->Act + start, len);
        var gate = new ReadOnlySpan<float>(a->Gate + start, len);
        TensorPrimitives.Sigmoid(gate, act);
        TensorPrimitives.Multiply(act, gate, act);
        TensorPrimitives.Multiply(act, new ReadOnlySpan<float>(a->Up + start, len), act);
    }

    /// <summary>Overwrites dgate and dup. silu'(g) = sigmoid(g) + silu(g) * (1 - sigmoid(g)).</summary>
    public static unsafe void SwiGluBackward(Span<float> dgate, Span<float> dup, ReadOnlySpan<float> dact, ReadOnlySpan<float> gate, ReadOnlySpan<float> up)
    {
        int n = dact.Length;
        if (dgate.Length != n || dup.Length != n || gate.Length != n || up.Length != n)
            throw new ArgumentException($"SwiGLU spans differ in length: dact {n}, dgate {dgate.Length}, dup {dup.Length}, gate {gate.Length}, up {up.Length}");
        fixed (float* da = dact) fixed (float* g = gate) fixed (float* u = up) fixed (float* dg = dgate) fixed (float* du = dup)
        {
            var args = new SwiGluArgs { Act = da, Gate = g, Up = u, DGate = dg, DUp = du, Length = n };
            WorkerPool.For((n + SwiGluItem - 1) / SwiGluItem, &SwiGluBackwardItem, &args);
        }
    }

    private static unsafe void SwiGluBackwardItem(void* context, int item)
    {
        var args = (SwiGluArgs*)context;
        int end = Math.Min(args->Length, (item + 1) * SwiGluItem);
        // Vector passes over cache-sized chunks, with sigmoid and silu in stack scratch.
        Span<float> sg = stackalloc float[SwiGluChunk], silu = stackalloc float[SwiGluChunk];
        for (int i = item * SwiGluItem; i < end; i += SwiGluChunk)
        {
            int len = Math.Min(SwiGluChunk, end - i);
            Span<float> s = sg[..len], a = silu[..len], dg = new(args->DGate + i, len), du = new(args->DUp + i, len);
            ReadOnlySpan<float> g = new(args->Gate + i, len), da = new(args->Act + i, len);
            TensorPrimitives.Sigmoid(g, s);
            TensorPrimitives.Multiply(g, s, a);
            TensorPrimitives.Multiply(da, a, du);
            TensorPrimitives.Multiply(a, s, dg);
            TensorPrimitives.Subtract(a, dg, dg);
            TensorPrimitives.Add(dg, s, dg);
            TensorPrimitives.Multiply(dg, da, dg);
            TensorPrimitives.Multiply(dg, new ReadOnlySpan<float>(args->Up + i, len), dg);
        }
    }

    // ---------------------------------------------------------------- weighted cross-entropy over selected rows
    // loss = sum_j w_j * (logsumexp(z_j) - z_j[target_j]); dz_j = w_j * (softmax(z_j) - onehot(target_j)).

    /// <summary>
    /// Per-row weighted negative log-likelihoods into rowLoss, log-sum-exps into lse; returns their sum (in double).
    /// Overwrites the logits with their softmax, which is what <see cref="CrossEntropyBackward"/> needs.
    /// </summary>
    public static double CrossEntropyForward(float[] rowLoss, float[] lse, float[] logits, int[] targets, float[] weights, int m, int vocab)
    {
        Threads.For(m, j =>
        {
            Span<float> z = logits.AsSpan(j * vocab, vocab);
            float max = TensorPrimitives.Max(z), target = z[targets[j]];
            TensorPrimitives.Subtract(z, max, z);
            TensorPrimitives.Exp(z, z);
            float sum = TensorPrimitives.Sum(z);
            TensorPrimitives.Multiply(z, 1f / sum, z);
            lse[j] = max + MathF.Log(sum);
            rowLoss[j] = weights[j] * (lse[j] - target);
        });
        double total = 0;
        for (int j = 0; j < m; j++) total += rowLoss[j];
        return total;
    }

    /// <summary>Overwrites the probabilities left by <see cref="CrossEntropyForward"/> with the logits' gradient.</summary>
    public static void CrossEntropyBackward(float[] probs, int[] targets, float[] weights, int m, int vocab)
    {
        Threads.For(m, j =>
        {
            Span<float> z = probs.AsSpan(j * vocab, vocab);
            float w = weights[j];
            TensorPrimitives.Multiply(z, w, z);
            z[targets[j]] -= w;
        });
    }
}

/// <summary>
/// Runs independent work items on the numerics <see cref="WorkerPool"/> (up to <see cref="Parallelism.ThreadCount"/>
/// threads). Sharing the pool means a GEMM called inside an item runs on that item's thread instead of
/// oversubscribing the cores.
/// </summary>
internal static unsafe class Threads
{
    public static void For(int count, Action<int> body)
    {
        Action<int> local = body;
        WorkerPool.For(count, &Invoke, Unsafe.AsPointer(ref local));
    }

    private static void Invoke(void* context, int item) => Unsafe.AsRef<Action<int>>(context)(item);
}
