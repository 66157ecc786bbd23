using Llada.Numerics;

namespace Llada.Model;

/// <summary>
/// The LLaDA mask predictor (spec section 4) running on a memory-mapped checkpoint: embeddings, then per
/// block h += attn_out(Attention(RMSNorm(h))) and h += ff_out(silu(ff_proj(x)) * up_proj(x)) with x = RMSNorm(h),
/// RoPE on q and k, bidirectional attention; finally ln_f and the LM head. Weights stay in the checkpoint's dtype
/// and are widened to float32 inside the matrix kernels; activations are float32 (unless <see cref="Bf16Arithmetic"/>
/// opts bf16-weight products into bf16 activations). A LLaDA-MoE checkpoint (spec
/// section 7) runs through the same blocks with RMSNorm over head_dim on q and k before RoPE and, in its MoE layers,
/// a <see cref="MixtureOfExperts"/> in place of the SwiGLU MLP; <see cref="Load"/> picks the variant from config.json.
/// </summary>
/// <remarks>One forward pass runs at a time per instance (calls are serialised); buffers are reused between calls.</remarks>
public sealed class MaskPredictor : IKvCachePredictor, IDisposable
{
    private readonly LladaCheckpoint _checkpoint;
    private readonly bool _ownsCheckpoint;
    private readonly LayerWeights[] _layers;
    private readonly float[] _finalNorm;
    private readonly WeightMatrix _embedding, _lmHead;
    private readonly RopeTable _rope;
    private readonly Lock _gate = new();
    private readonly PackedWeights _packed = new();
    private Workspace? _work;

    private readonly MoeScratch _moeScratch = new();

    // Moe is null for a dense SwiGLU layer; QNorm / KNorm are null without QK-norm.
    private readonly record struct LayerWeights(
        float[] AttnNorm, float[] FfNorm, WeightMatrix Q, WeightMatrix K, WeightMatrix V, WeightMatrix AttnOut,
        WeightMatrix Gate, WeightMatrix Up, WeightMatrix Down, float[]? QNorm, float[]? KNorm, MixtureOfExperts? Moe);

    /// <summary>Wraps an open checkpoint; disposing the predictor disposes it when <paramref name="ownsCheckpoint"/>.</summary>
    public MaskPredictor(LladaCheckpoint checkpoint, bool ownsCheckpoint = false)
    {
        _checkpoint = checkpoint;
        _ownsCheckpoint = ownsCheckpoint;
        // Packed panels are native memory: free them if loading fails part-way (e.g. out of memory).
        try
        {
            var c = checkpoint.Config;
            _layers = new LayerWeights[c.NLayers];
            for (int i = 0; i < c.NLayers; i++)
            {
                var l = checkpoint.Layer(i);
                l = l with
                {
                    QProj = Pack(l.QProj), KProj = Pack(l.KProj), VProj = Pack(l.VProj), AttnOut = Pack(l.AttnOut),
                    FfProj = Pack(l.FfProj), UpProj = Pack(l.UpProj), FfOut = Pack(l.FfOut),
                };
                var moeWeights = checkpoint.MoeLayer(i) is { } stored
                    ? new MoeLayerWeights(Pack(stored.Router), stored.Experts.Select(Pack).ToArray(), stored.Shared is { } s ? Pack(s) : null)
                    : null;
                var moe = moeWeights is { } m ? new MixtureOfExperts(m, c.Moe!, c.DModel) : null;
                _layers[i] = new LayerWeights(
                    NormWeights(l.AttnNorm), NormWeights(l.FfNorm), l.QProj, l.KProj, l.VProj, l.AttnOut, l.FfProj, l.UpProj, l.FfOut,
                    l.QNorm is { } qn ? NormWeights(qn) : null, l.KNorm is { } kn ? NormWeights(kn) : null, moe);
            }
            _finalNorm = NormWeights(checkpoint.FinalNorm);
            _embedding = checkpoint.Embedding;
            _lmHead = Pack(checkpoint.LmHead);
            _rope = new RopeTable(c.HeadDim, c.MaxSequenceLength, c.RopeTheta);
        }
        catch
        {
            _packed.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A Q8_0 matrix packed once into the kernel's panel layout, its mapped rows released as they are packed, so the
    /// weights are resident once (as panels) rather than twice; other matrices unchanged. See docs/quantization.md.
    /// </summary>
    /// <summary>Every matrix the model multiplies by passes through here once at load, so this also notes bf16 ones.</summary>
    private WeightMatrix Pack(WeightMatrix w)
    {
        // A MoE layer has no dense MLP: its unused slots are empty matrices.
        if (w.DType == DType.BF16 && (long)w.Rows * w.Cols > 0) HasBf16Matrices = true;
        return _packed.Pack(w, _checkpoint.ReleasePages);
    }

    private SwiGluWeights Pack(SwiGluWeights e) => new(Pack(e.Gate), Pack(e.Up), Pack(e.Down));

    /// <summary>Bytes of Q8_0 weights held packed in the matrix kernel's layout (0 for float weights or without a vector kernel).</summary>
    internal long PackedWeightBytes => _packed.ByteLength;

    /// <summary>
    /// Opens the checkpoint directory <paramref name="directory"/> (see <see cref="LladaCheckpoint.Open"/>), dense LLaDA
    /// or LLaDA-MoE as its config.json says. This is the one model loader every command uses.
    /// </summary>
    public static MaskPredictor Load(string directory)
    {
        var checkpoint = LladaCheckpoint.Open(directory);
        try
        {
            return new MaskPredictor(checkpoint, ownsCheckpoint: true);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>The architecture.</summary>
    public LladaConfig Config => _checkpoint.Config;

    /// <summary>The checkpoint the weights come from.</summary>
    public LladaCheckpoint Checkpoint => _checkpoint;

    /// <inheritdoc />
    public int VocabSize => Config.EmbeddingSize;

    /// <inheritdoc />
    public int MaskTokenId => Config.MaskTokenId;

    /// <inheritdoc />
    public int MaxSequenceLength => Config.MaxSequenceLength;

    /// <summary>Number of forward passes run so far.</summary>
    public long ForwardPasses { get; private set; }

    /// <summary>Expert MLP evaluations (one per active expert per MoE layer per pass) run so far; 0 for a dense model.</summary>
    public long ExpertEvaluations { get; private set; }

    /// <summary>
    /// Run every expert on every token (unselected experts weighted 0) instead of only the routed ones: the same
    /// logits at dense cost. For measuring what sparse execution saves (<c>llada bench --all-experts</c>).
    /// </summary>
    public bool RunAllExperts { get; set; }

    /// <summary>
    /// How this model multiplies its bf16 weight matrices: <see cref="Numerics.Bf16Arithmetic.Float32"/> (the default:
    /// widened to float32, exact with respect to the stored weights) or <see cref="Numerics.Bf16Arithmetic.Bf16Activations"/>
    /// (activations rounded to bf16, products summed in float32, like PyTorch's bf16 autocast: faster where the CPU
    /// has AVX512_BF16, slightly different logits). Matrices of other dtypes are unaffected. Per model, so models
    /// with different settings can share a process; a change applies from the next forward pass.
    /// </summary>
    public Bf16Arithmetic Bf16Arithmetic { get; set; }

    /// <summary>Whether any matrix product of this model has bf16 weights, i.e. whether <see cref="Bf16Arithmetic"/> changes anything.</summary>
    public bool HasBf16Matrices { get; private set; }

    /// <inheritdoc />
    public void Forward(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask,
        ReadOnlySpan<int> logitPositions, Span<float> logits, CancellationToken cancellationToken = default)
    {
        Validate(tokens, batch, seqLen, keyMask, logitPositions, logits);
        Run(tokens, batch, seqLen, keyMask, null, 0, seqLen, logitPositions, logits, cancellationToken);
    }

    /// <inheritdoc />
    public KvCache CreateCache(int rows, int seqLen) =>
        new(Config.NLayers, rows, seqLen, Config.NKvHeads * Config.HeadDim);

    /// <inheritdoc />
    public void ForwardFillingCache(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask,
        ReadOnlySpan<int> logitPositions, Span<float> logits, KvCache cache, CancellationToken cancellationToken = default)
    {
        Validate(tokens, batch, seqLen, keyMask, logitPositions, logits);
        ValidateCache(cache, batch, seqLen);
        cache.IsFilled = false;
        Run(tokens, batch, seqLen, keyMask, cache, 0, seqLen, logitPositions, logits, cancellationToken);
        cache.IsFilled = true;
    }

    /// <inheritdoc />
    public void ForwardWindow(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask, KvCache cache,
        int windowStart, int windowEnd, ReadOnlySpan<int> logitPositions, Span<float> logits,
        CancellationToken cancellationToken = default)
    {
        Validate(tokens, batch, seqLen, keyMask, logitPositions, logits);
        ValidateCache(cache, batch, seqLen);
        if (!cache.IsFilled) throw new InvalidOperationException("the KV cache is empty: run ForwardFillingCache first");
        if (windowStart < 0 || windowEnd > seqLen || windowStart >= windowEnd)
            throw new ArgumentOutOfRangeException(nameof(windowStart), $"window [{windowStart}, {windowEnd}) is not a non-empty range inside 0..{seqLen}");
        foreach (int pos in logitPositions)
            if (pos < windowStart || pos >= windowEnd)
                throw new ArgumentOutOfRangeException(nameof(logitPositions), pos, $"logit position outside the window [{windowStart}, {windowEnd})");
        Run(tokens, batch, seqLen, keyMask, cache, windowStart, windowEnd, logitPositions, logits, cancellationToken);
    }

    /// <summary>
    /// The forward pass over positions [<paramref name="start"/>, <paramref name="end"/>) of each row (all of them
    /// without a cache). With a cache the window's keys and values are written into it and attention reads all
    /// seqLen keys from it.
    /// </summary>
    private void Run(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask, KvCache? cache,
        int start, int end, ReadOnlySpan<int> logitPositions, Span<float> logits, CancellationToken cancellationToken)
    {
        var c = Config;
        lock (_gate)
        {
            var arithmetic = Bf16Arithmetic; // one setting for the whole pass
            int t = end - start, n = batch * t, p = logitPositions.Length, d = c.DModel;
            var w = EnsureWorkspace(batch, t, start, batch * p);
            Span<float> h = w.H.AsSpan(0, n * d);

            for (int b = 0; b < batch; b++)
                for (int i = 0; i < t; i++)
                    WeightRows.ToSingle(_embedding, tokens[b * seqLen + start + i], h.Slice((b * t + i) * d, d));

            // Window-relative rows of the wanted positions.
            Span<int> selected = w.SelectedRows.AsSpan(0, p);
            for (int i = 0; i < p; i++) selected[i] = logitPositions[i] - start;

            // Every query of the last block except the wanted positions is dead work: after its attention only
            // the selected rows reach ln_f, so the last block runs its queries and MLP on those rows alone.
            bool selectLast = p < t;
            for (int layer = 0; layer < _layers.Length; layer++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                bool last = layer == _layers.Length - 1;
                RunBlock(_layers[layer], layer, w, batch, t, start, seqLen, keyMask, cache, last && selectLast ? selected : default, arithmetic);
            }
            cancellationToken.ThrowIfCancellationRequested();

            int rows = batch * p;
            Span<float> final = w.Selected.AsSpan(0, rows * d);
            if (!selectLast) GatherRows(h, batch, t, d, selected, final);
            RmsNorm.Apply(final, rows, d, _finalNorm, (float)c.RmsNormEps, final);
            Gemm.MultiplyTransposed(final, rows, _lmHead, logits.Slice(0, rows * VocabSize), bf16Arithmetic: arithmetic);
            ForwardPasses++;
        }
    }

    /// <summary>
    /// One transformer block on the residual stream w.H ([batch, t] rows, the positions start..start+t-1 of each
    /// row). Keys come from w.K (t = seqLen) or, with a cache, from the cache after the rows' own keys are written
    /// into it. With <paramref name="selected"/> non-empty only those rows' outputs are produced, into w.Selected
    /// ([batch, selected.Length, d]); w.H is left stale.
    /// </summary>
    private void RunBlock(in LayerWeights l, int layer, Workspace w, int batch, int t, int start, int seqLen,
        ReadOnlySpan<bool> keyMask, KvCache? cache, ReadOnlySpan<int> selected, Bf16Arithmetic arithmetic)
    {
        var c = Config;
        int n = batch * t, d = c.DModel, kvd = c.NKvHeads * c.HeadDim;
        float normEps = (float)c.RmsNormEps;
        Span<float> h = w.H.AsSpan(0, n * d), x = w.X.AsSpan(0, n * d);
        Span<float> k = w.K.AsSpan(0, n * kvd), v = w.V.AsSpan(0, n * kvd);

        RmsNorm.Apply(h, n, d, l.AttnNorm, normEps, x);
        Gemm.MultiplyTransposed(x, n, l.K, k, bf16Arithmetic: arithmetic);
        Gemm.MultiplyTransposed(x, n, l.V, v, bf16Arithmetic: arithmetic);
        if (l.KNorm is not null) RmsNorm.Apply(k, n * c.NKvHeads, c.HeadDim, l.KNorm, normEps, k);
        _rope.Apply(k, c.NKvHeads, w.Positions.AsSpan(0, n));
        ReadOnlySpan<float> keys = k, values = v;
        if (cache is not null)
        {
            Span<float> cachedK = cache.Keys(layer), cachedV = cache.Values(layer);
            for (int b = 0; b < batch; b++)
            {
                k.Slice(b * t * kvd, t * kvd).CopyTo(cachedK.Slice((b * seqLen + start) * kvd));
                v.Slice(b * t * kvd, t * kvd).CopyTo(cachedV.Slice((b * seqLen + start) * kvd));
            }
            keys = cachedK;
            values = cachedV;
        }

        // Queries: every row, or only the selected ones (their residual rows move to w.Selected).
        int qPerRow = selected.IsEmpty ? t : selected.Length;
        int m = batch * qPerRow;
        Span<float> resid = selected.IsEmpty ? h : w.Selected.AsSpan(0, m * d);
        Span<float> xq = x;
        Span<int> qPositions = w.Positions.AsSpan(0, n);
        if (!selected.IsEmpty)
        {
            GatherRows(h, batch, t, d, selected, resid);
            xq = w.XSelected.AsSpan(0, m * d);
            GatherRows(x, batch, t, d, selected, xq);
            qPositions = w.SelectedPositions.AsSpan(0, m);
            for (int b = 0; b < batch; b++)
                for (int i = 0; i < qPerRow; i++) qPositions[b * qPerRow + i] = start + selected[i];
        }
        Span<float> q = w.Q.AsSpan(0, m * d), att = w.Att.AsSpan(0, m * d);
        Gemm.MultiplyTransposed(xq, m, l.Q, q, bf16Arithmetic: arithmetic);
        if (l.QNorm is not null) RmsNorm.Apply(q, m * c.NHeads, c.HeadDim, l.QNorm, normEps, q);
        _rope.Apply(q, c.NHeads, qPositions);

        for (int b = 0; b < batch; b++)
        {
            Attention.Forward(q.Slice(b * qPerRow * d, qPerRow * d), qPerRow,
                keys.Slice(b * seqLen * kvd, seqLen * kvd), values.Slice(b * seqLen * kvd, seqLen * kvd), seqLen,
                c.NHeads, c.NKvHeads, c.HeadDim, att.Slice(b * qPerRow * d, qPerRow * d),
                keyMask.IsEmpty ? default : keyMask.Slice(b * seqLen, seqLen));
        }
        Gemm.MultiplyTransposed(att, m, l.AttnOut, resid, accumulate: true, arithmetic);

        Span<float> xf = w.X.AsSpan(0, m * d);
        RmsNorm.Apply(resid, m, d, l.FfNorm, normEps, xf);
        if (l.Moe is not null)
        {
            ExpertEvaluations += l.Moe.Forward(xf, m, resid, _moeScratch, RunAllExperts, arithmetic);
            return;
        }
        Span<float> gate = w.Gate.AsSpan(0, m * c.MlpHiddenSize), up = w.Up.AsSpan(0, m * c.MlpHiddenSize);
        Gemm.MultiplyTransposed(xf, m, l.Gate, gate, bf16Arithmetic: arithmetic);
        Gemm.MultiplyTransposed(xf, m, l.Up, up, bf16Arithmetic: arithmetic);
        Activations.SwiGlu(gate, up, gate);
        Gemm.MultiplyTransposed(gate, m, l.Down, resid, accumulate: true, arithmetic);
    }

    private static void GatherRows(ReadOnlySpan<float> src, int batch, int seqLen, int d, ReadOnlySpan<int> positions, Span<float> dst)
    {
        int p = positions.Length;
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < p; i++)
                src.Slice((b * seqLen + positions[i]) * d, d).CopyTo(dst.Slice((b * p + i) * d, d));
    }

    private void Validate(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask,
        ReadOnlySpan<int> logitPositions, Span<float> logits)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(seqLen);
        if (seqLen > MaxSequenceLength)
            throw new ArgumentException($"sequence of {seqLen} tokens is longer than the model's max_sequence_length {MaxSequenceLength}", nameof(seqLen));
        if (tokens.Length != batch * seqLen)
            throw new ArgumentException($"tokens holds {tokens.Length} ids, expected {batch}x{seqLen}", nameof(tokens));
        if (!keyMask.IsEmpty && keyMask.Length != batch * seqLen)
            throw new ArgumentException($"key mask holds {keyMask.Length} flags, expected {batch}x{seqLen}", nameof(keyMask));
        int rows = _embedding.Rows;
        for (int i = 0; i < tokens.Length; i++)
            if ((uint)tokens[i] >= (uint)rows)
                throw new ArgumentOutOfRangeException(nameof(tokens), tokens[i], $"token id at index {i} is outside the vocabulary 0..{rows - 1}");
        foreach (int pos in logitPositions)
            if ((uint)pos >= (uint)seqLen)
                throw new ArgumentOutOfRangeException(nameof(logitPositions), pos, $"logit position outside 0..{seqLen - 1}");
        if (logits.Length < (long)batch * logitPositions.Length * VocabSize)
            throw new ArgumentException($"logits holds {logits.Length} floats, expected {batch}x{logitPositions.Length}x{VocabSize}", nameof(logits));
    }

    private void ValidateCache(KvCache cache, int batch, int seqLen)
    {
        ArgumentNullException.ThrowIfNull(cache);
        var c = Config;
        if (cache.Rows != batch || cache.SeqLen != seqLen || cache.Layers != c.NLayers || cache.KvWidth != c.NKvHeads * c.HeadDim)
            throw new ArgumentException(
                $"KV cache holds {cache.Layers} layers x {cache.Rows}x{cache.SeqLen} positions x {cache.KvWidth}, expected {c.NLayers} x {batch}x{seqLen} x {c.NKvHeads * c.HeadDim}",
                nameof(cache));
    }

    private Workspace EnsureWorkspace(int batch, int rowLength, int start, int selectedRows)
    {
        int tokens = batch * rowLength;
        if (_work is null || _work.Tokens < tokens || _work.SelectedRowCount < selectedRows)
            _work = new Workspace(Config, Math.Max(tokens, _work?.Tokens ?? 0), Math.Max(selectedRows, _work?.SelectedRowCount ?? 0));
        // RoPE positions are absolute (start..start+rowLength-1) in every row, also with left padding, as in the reference.
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < rowLength; i++) _work.Positions[b * rowLength + i] = start + i;
        return _work;
    }

    private static float[] NormWeights(WeightMatrix m)
    {
        var values = new float[m.Cols];
        WeightRows.ToSingle(m, 0, values);
        return values;
    }

    /// <summary>Releases the checkpoint when this predictor owns it.</summary>
    public void Dispose()
    {
        _packed.Dispose();
        if (_ownsCheckpoint) _checkpoint.Dispose();
    }

    /// <summary>Activation buffers for up to <see cref="Tokens"/> positions, reused between calls.</summary>
    private sealed class Workspace
    {
        public readonly int Tokens, SelectedRowCount;
        public readonly float[] H, X, Q, K, V, Att, Gate, Up, Selected, XSelected;
        public readonly int[] Positions, SelectedPositions, SelectedRows;

        public Workspace(LladaConfig c, int tokens, int selectedRows)
        {
            Tokens = tokens;
            SelectedRowCount = selectedRows;
            int n = tokens, s = Math.Max(selectedRows, 1), d = c.DModel, kvd = c.NKvHeads * c.HeadDim, mlp = c.DenseMlpWidth;
            H = new float[n * d]; X = new float[n * d]; Q = new float[n * d]; Att = new float[n * d];
            K = new float[n * kvd]; V = new float[n * kvd];
            Gate = new float[n * mlp]; Up = new float[n * mlp];
            Selected = new float[s * d]; XSelected = new float[s * d];
            Positions = new int[n]; SelectedPositions = new int[s]; SelectedRows = new int[s];
        }
    }
}
