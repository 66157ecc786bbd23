using System.Numerics.Tensors;
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
            TensorPrimitives.Multiply(dy, weight, g);
            float c = s * s * s * TensorPrimitives.Dot(g, x) / d;
            for (int j = 0; j < d; j++)
            {
                dweight[j] += dy[j] * x[j] * s;
                dx[j] += s * g[j] - c * x[j];
            }
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
    // rows of dk/dv it writes and results do not depend on the thread count.

    public static void AttentionForward(float[] outp, float[] att, float[] q, float[] k, float[] v, bool[] keyMask, bool useKeyMask,
        int batch, int seqLen, int heads, int kvHeads, int headDim, bool causal)
    {
        Threads.For(batch * kvHeads, item =>
        {
            int b = item / kvHeads, kvh = item % kvHeads, group = heads / kvHeads;
            int qStride = heads * headDim, kvStride = kvHeads * headDim;
            float scale = 1f / MathF.Sqrt(headDim);
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
                for (int t = 0; t < seqLen; t++)
                {
                    ReadOnlySpan<float> qt = q.AsSpan((b * seqLen + t) * qStride + h * headDim, headDim);
                    Span<float> p = att.AsSpan(((b * heads + h) * seqLen + t) * seqLen, seqLen);
                    int end = causal ? t + 1 : seqLen;
                    float max = float.NegativeInfinity;
                    for (int s = 0; s < end; s++)
                    {
                        if (useKeyMask && !keyMask[b * seqLen + s]) continue;
                        p[s] = scale * TensorPrimitives.Dot(qt, k.AsSpan((b * seqLen + s) * kvStride + kvh * headDim, headDim));
                        max = MathF.Max(max, p[s]);
                    }
                    float sum = 0;
                    for (int s = 0; s < seqLen; s++)
                    {
                        bool visible = s < end && (!useKeyMask || keyMask[b * seqLen + s]);
                        p[s] = visible ? MathF.Exp(p[s] - max) : 0f;
                        sum += p[s];
                    }
                    // A query with no visible key (a pad query in causal mode) outputs zeros.
                    if (sum > 0) TensorPrimitives.Multiply(p, 1f / sum, p);
                    Span<float> o = outp.AsSpan((b * seqLen + t) * qStride + h * headDim, headDim);
                    o.Clear();
                    for (int s = 0; s < end; s++)
                        if (p[s] != 0)
                            TensorPrimitives.MultiplyAdd(v.AsSpan((b * seqLen + s) * kvStride + kvh * headDim, headDim), p[s], o, o);
                }
        });
    }

    /// <summary>
    /// Overwrites dq, dk, dv. With P the probabilities and dP = dO V^T: dS = P * (dP - rowsum(P * dP)),
    /// dQ = dS K / sqrt(hd), dK = dS^T Q / sqrt(hd), dV = P^T dO. Keys with P = 0 contribute nothing and are skipped.
    /// <paramref name="scratch"/> holds batch * kvHeads * seqLen floats.
    /// </summary>
    public static void AttentionBackward(float[] dq, float[] dk, float[] dv, float[] dout, float[] att, float[] q, float[] k, float[] v,
        float[] scratch, int batch, int seqLen, int heads, int kvHeads, int headDim)
    {
        Threads.For(batch * kvHeads, item =>
        {
            int b = item / kvHeads, kvh = item % kvHeads, group = heads / kvHeads;
            int qStride = heads * headDim, kvStride = kvHeads * headDim;
            float scale = 1f / MathF.Sqrt(headDim);
            Span<float> dp = scratch.AsSpan(item * seqLen, seqLen);
            for (int s = 0; s < seqLen; s++)
            {
                dk.AsSpan((b * seqLen + s) * kvStride + kvh * headDim, headDim).Clear();
                dv.AsSpan((b * seqLen + s) * kvStride + kvh * headDim, headDim).Clear();
            }
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
                for (int t = 0; t < seqLen; t++)
                {
                    int qOff = (b * seqLen + t) * qStride + h * headDim;
                    ReadOnlySpan<float> p = att.AsSpan(((b * heads + h) * seqLen + t) * seqLen, seqLen);
                    ReadOnlySpan<float> dot = dout.AsSpan(qOff, headDim), qt = q.AsSpan(qOff, headDim);
                    float pdp = 0;
                    for (int s = 0; s < seqLen; s++)
                    {
                        if (p[s] == 0) continue;
                        int kvOff = (b * seqLen + s) * kvStride + kvh * headDim;
                        dp[s] = TensorPrimitives.Dot(dot, v.AsSpan(kvOff, headDim));
                        pdp += p[s] * dp[s];
                        Span<float> dvs = dv.AsSpan(kvOff, headDim);
                        TensorPrimitives.MultiplyAdd(dot, p[s], dvs, dvs);
                    }
                    Span<float> dqt = dq.AsSpan(qOff, headDim);
                    dqt.Clear();
                    for (int s = 0; s < seqLen; s++)
                    {
                        if (p[s] == 0) continue;
                        int kvOff = (b * seqLen + s) * kvStride + kvh * headDim;
                        float ds = p[s] * (dp[s] - pdp) * scale;
                        TensorPrimitives.MultiplyAdd(k.AsSpan(kvOff, headDim), ds, dqt, dqt);
                        Span<float> dks = dk.AsSpan(kvOff, headDim);
                        TensorPrimitives.MultiplyAdd(qt, ds, dks, dks);
                    }
                }
        });
    }

    // ---------------------------------------------------------------- SwiGLU: act = silu(gate) * up, silu(g) = g * sigmoid(g)

    public static void SwiGluForward(Span<float> act, ReadOnlySpan<float> gate, ReadOnlySpan<float> up)
    {
        TensorPrimitives.Sigmoid(gate, act);
        TensorPrimitives.Multiply(act, gate, act);
        TensorPrimitives.Multiply(act, up, act);
    }

    /// <summary>Overwrites dgate and dup. silu'(g) = sigmoid(g) * (1 + g * (1 - sigmoid(g))).</summary>
    public static void SwiGluBackward(Span<float> dgate, Span<float> dup, ReadOnlySpan<float> dact, ReadOnlySpan<float> gate, ReadOnlySpan<float> up)
    {
        TensorPrimitives.Sigmoid(gate, dgate);
        for (int i = 0; i < dact.Length; i++)
        {
            float g = gate[i], sg = dgate[i];
            dup[i] = dact[i] * g * sg;
            dgate[i] = dact[i] * up[i] * sg * (1f + g * (1f - sg));
        }
    }

    // ---------------------------------------------------------------- weighted cross-entropy over selected rows
    // loss = sum_j w_j * (logsumexp(z_j) - z_j[target_j]); dz_j = w_j * (softmax(z_j) - onehot(target_j)).

    /// <summary>Per-row weighted negative log-likelihoods into rowLoss, log-sum-exps into lse; returns their sum (in double).</summary>
    public static double CrossEntropyForward(float[] rowLoss, float[] lse, float[] logits, int[] targets, float[] weights, int m, int vocab)
    {
        Threads.For(m, j =>
        {
            ReadOnlySpan<float> z = logits.AsSpan(j * vocab, vocab);
            float max = TensorPrimitives.Max(z);
            double sum = 0;
            for (int c = 0; c < vocab; c++) sum += Math.Exp(z[c] - max);
            lse[j] = max + (float)Math.Log(sum);
            rowLoss[j] = weights[j] * (lse[j] - z[targets[j]]);
        });
        double total = 0;
        for (int j = 0; j < m; j++) total += rowLoss[j];
        return total;
    }

    /// <summary>Overwrites the logits with their gradient.</summary>
    public static void CrossEntropyBackward(float[] logits, float[] lse, int[] targets, float[] weights, int m, int vocab)
    {
        Threads.For(m, j =>
        {
            Span<float> z = logits.AsSpan(j * vocab, vocab);
            float w = weights[j], l = lse[j];
            for (int c = 0; c < vocab; c++) z[c] = w * MathF.Exp(z[c] - l);
            z[targets[j]] -= w;
        });
    }
}

/// <summary>Runs independent work items on up to <see cref="Parallelism.ThreadCount"/> threads.</summary>
internal static class Threads
{
    private static ParallelOptions _options = new() { MaxDegreeOfParallelism = 1 };

    public static void For(int count, Action<int> body)
    {
        int threads = Parallelism.ThreadCount;
        if (threads <= 1 || count <= 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        if (_options.MaxDegreeOfParallelism != threads) _options = new ParallelOptions { MaxDegreeOfParallelism = threads };
        Parallel.For(0, count, _options, body);
    }
}
