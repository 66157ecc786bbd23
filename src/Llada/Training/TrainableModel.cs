using Llada.Model;

namespace Llada.Training;

/// <summary>
/// A float32 LLaDA Transformer (dense, or LLaDA-MoE when <see cref="ModelShape.Moe"/> is set: QK-norm, sparse MoE
/// layers with router losses, tensors in the LLaDA-MoE layout) that can be trained on the CPU: every parameter lives in one contiguous
/// <see cref="Parameters"/> array (gradients in <see cref="Gradients"/>, same layout), exposed as named [out, in]
/// views with the Hugging Face tensor names. <see cref="Forward(ReadOnlySpan{int}, int, int, bool, ReadOnlySpan{bool}, ReadOnlySpan{int}, ReadOnlySpan{int}, ReadOnlySpan{float})"/>
/// caches the activations that <see cref="Backward"/> needs; all buffers are sized once for
/// <see cref="MaxBatch"/> x <see cref="MaxSeqLen"/>. Not thread-safe: one forward/backward at a time.
/// </summary>
public sealed class TrainableModel : IMaskPredictor
{
    // QNorm / KNorm are -1 without QK-norm; Moe is null for a dense SwiGLU layer (whose FfProj/UpProj/FfOut are then used).
    private readonly struct Block(int attnNorm, int q, int k, int v, int attnOut, int ffNorm, int ffProj, int upProj, int ffOut,
        int qNorm = -1, int kNorm = -1, MoeLayer? moe = null)
    {
        public readonly int AttnNorm = attnNorm, Q = q, K = k, V = v, AttnOut = attnOut, FfNorm = ffNorm, FfProj = ffProj, UpProj = upProj, FfOut = ffOut;
        public readonly int QNorm = qNorm, KNorm = kNorm;
        public readonly MoeLayer? Moe = moe;
    }

    private readonly List<ParameterTensor> _tensors = [];
    private readonly Dictionary<string, ParameterTensor> _byName = [];
    private readonly Block[] _blocks;
    private readonly int _wte, _lnF, _head;
    private readonly int _d, _kvd, _ff, _vocab, _heads, _kvHeads, _headDim;
    private readonly float _eps;

    // Activations, one array per layer so the attention work items can capture them.
    private readonly float[][] _h, _ln1, _rstd1, _q, _k, _v, _att, _attOut, _hMid, _ln2, _rstd2, _gate, _up, _act;
    // QK-norm inputs and reciprocal RMS per (token, head); empty without QK-norm.
    private readonly float[][] _qRaw, _kRaw, _rstdQ, _rstdK;
    private readonly float[] _dqRaw, _dkRaw;
    private readonly float[] _lnF_out, _rstdF, _xs, _logits, _lse, _rowLoss, _cos, _sin;
    // Gradient scratch, shared by all layers.
    private readonly float[] _dres, _dln, _dq, _dk, _dv, _dattOut, _dact, _dgate, _dup, _dxs, _dlnF, _attScratch, _normScratch;
    // The batch the cached activations belong to.
    private readonly int[] _tokens, _positions, _targets;
    private readonly float[] _weights;
    private readonly bool[] _keyMask;
    private int _batch, _seqLen, _count;
    private bool _causal, _useKeyMask, _ready;

    /// <summary>Creates a model with weights initialised from <paramref name="seed"/> (see <see cref="InitializeWeights"/>).</summary>
    /// <param name="shape">Architecture.</param>
    /// <param name="maxBatch">Largest batch any call will use.</param>
    /// <param name="maxSeqLen">Longest sequence any call will use (at most the shape's max_sequence_length).</param>
    /// <param name="seed">Initialisation seed.</param>
    public TrainableModel(ModelShape shape, int maxBatch, int maxSeqLen, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(shape);
        shape.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSeqLen, 1);
        if (maxSeqLen > shape.MaxSequenceLength)
            throw new ArgumentOutOfRangeException(nameof(maxSeqLen), $"maxSeqLen {maxSeqLen} exceeds the model's max_sequence_length {shape.MaxSequenceLength}");
        Shape = shape;
        MaxBatch = maxBatch;
        MaxSeqLen = maxSeqLen;
        _d = shape.DModel; _heads = shape.NHeads; _kvHeads = shape.NKvHeads; _headDim = shape.HeadDim;
        _kvd = _kvHeads * _headDim; _ff = shape.MlpHiddenSize; _vocab = shape.VocabSize; _eps = (float)shape.RmsNormEps;

        int offset = 0;
        int Add(string name, ParameterKind kind, params int[] dims)
        {
            var t = new ParameterTensor(name, offset, dims, kind);
            _tensors.Add(t);
            _byName.Add(name, t);
            offset = checked(offset + t.Length);
            return t.Offset;
        }
        int n = maxBatch * maxSeqLen, layers = shape.NLayers;
        const string P = "model.transformer.";
        _blocks = new Block[shape.NLayers];
        if (shape.Moe is { } moe)
        {
            string L(int l, string part) => MoeTensorNames.Layer(l, part);
            _wte = Add(MoeTensorNames.Embedding, ParameterKind.Embedding, _vocab, _d);
            for (int l = 0; l < shape.NLayers; l++)
            {
                int attnNorm = Add(L(l, "input_layernorm"), ParameterKind.Norm, _d);
                int q = Add(L(l, "self_attn.q_proj"), ParameterKind.Matrix, _d, _d);
                int k = Add(L(l, "self_attn.k_proj"), ParameterKind.Matrix, _kvd, _d);
                int v = Add(L(l, "self_attn.v_proj"), ParameterKind.Matrix, _kvd, _d);
                int o = Add(L(l, "self_attn.o_proj"), ParameterKind.ResidualMatrix, _d, _d);
                int qNorm = moe.QkNorm ? Add(L(l, "self_attn.q_norm"), ParameterKind.Norm, _headDim) : -1;
                int kNorm = moe.QkNorm ? Add(L(l, "self_attn.k_norm"), ParameterKind.Norm, _headDim) : -1;
                int ffNorm = Add(L(l, "post_attention_layernorm"), ParameterKind.Norm, _d);
                if (!moe.MoeLayers[l])
                {
                    _blocks[l] = new Block(attnNorm, q, k, v, o, ffNorm, Add(L(l, "mlp.gate_proj"), ParameterKind.Matrix, _ff, _d),
                        Add(L(l, "mlp.up_proj"), ParameterKind.Matrix, _ff, _d), Add(L(l, "mlp.down_proj"), ParameterKind.ResidualMatrix, _d, _ff),
                        qNorm, kNorm);
                    continue;
                }
                int router = Add(L(l, "mlp.gate"), ParameterKind.Matrix, moe.NumExperts, _d);
                int fe = moe.ExpertIntermediateSize;
                int[] gate = new int[moe.NumExperts], up = new int[moe.NumExperts], down = new int[moe.NumExperts];
                for (int e = 0; e < moe.NumExperts; e++)
                {
                    gate[e] = Add(MoeTensorNames.Expert(l, e, "gate_proj"), ParameterKind.Matrix, fe, _d);
                    up[e] = Add(MoeTensorNames.Expert(l, e, "up_proj"), ParameterKind.Matrix, fe, _d);
                    down[e] = Add(MoeTensorNames.Expert(l, e, "down_proj"), ParameterKind.ResidualMatrix, _d, fe);
                }
                _blocks[l] = new Block(attnNorm, q, k, v, o, ffNorm, -1, -1, -1, qNorm, kNorm, new MoeLayer(moe, _d, n, router, gate, up, down));
            }
            _lnF = Add(MoeTensorNames.FinalNorm, ParameterKind.Norm, _d);
            _head = shape.WeightTying ? _wte : Add(MoeTensorNames.LmHead, ParameterKind.LmHead, _vocab, _d);
        }
        else
        {
        _wte = Add(P + "wte.weight", ParameterKind.Embedding, _vocab, _d);
        for (int l = 0; l < shape.NLayers; l++)
        {
            string b = $"{P}blocks.{l}.";
            _blocks[l] = new Block(
                Add(b + "attn_norm.weight", ParameterKind.Norm, _d),
                Add(b + "q_proj.weight", ParameterKind.Matrix, _d, _d),
                Add(b + "k_proj.weight", ParameterKind.Matrix, _kvd, _d),
                Add(b + "v_proj.weight", ParameterKind.Matrix, _kvd, _d),
                Add(b + "attn_out.weight", ParameterKind.ResidualMatrix, _d, _d),
                Add(b + "ff_norm.weight", ParameterKind.Norm, _d),
                Add(b + "ff_proj.weight", ParameterKind.Matrix, _ff, _d),
                Add(b + "up_proj.weight", ParameterKind.Matrix, _ff, _d),
                Add(b + "ff_out.weight", ParameterKind.ResidualMatrix, _d, _ff));
        }
        _lnF = Add(P + "ln_f.weight", ParameterKind.Norm, _d);
        _head = shape.WeightTying ? _wte : Add(P + "ff_out.weight", ParameterKind.LmHead, _vocab, _d);
        }
        Parameters = new float[offset];
        Gradients = new float[offset];

        float[][] PerLayer(int size, int count) { var a = new float[count][]; for (int i = 0; i < count; i++) a[i] = new float[size]; return a; }
        _h = PerLayer(n * _d, layers + 1);
        _ln1 = PerLayer(n * _d, layers); _rstd1 = PerLayer(n, layers);
        _q = PerLayer(n * _d, layers); _k = PerLayer(n * _kvd, layers); _v = PerLayer(n * _kvd, layers);
        _att = PerLayer(maxBatch * _heads * maxSeqLen * maxSeqLen, layers);
        _attOut = PerLayer(n * _d, layers); _hMid = PerLayer(n * _d, layers);
        _ln2 = PerLayer(n * _d, layers); _rstd2 = PerLayer(n, layers);
        _gate = PerLayer(n * _ff, layers); _up = PerLayer(n * _ff, layers); _act = PerLayer(n * _ff, layers);
        bool qkNorm = shape.Moe?.QkNorm == true;
        _qRaw = PerLayer(qkNorm ? n * _d : 0, layers); _kRaw = PerLayer(qkNorm ? n * _kvd : 0, layers);
        _rstdQ = PerLayer(qkNorm ? n * _heads : 0, layers); _rstdK = PerLayer(qkNorm ? n * _kvHeads : 0, layers);
        _dqRaw = new float[qkNorm ? n * _d : 0]; _dkRaw = new float[qkNorm ? n * _kvd : 0];
        _lnF_out = new float[n * _d]; _rstdF = new float[n]; _xs = new float[n * _d];
        _logits = new float[(long)n * _vocab]; _lse = new float[n]; _rowLoss = new float[n];
        _cos = new float[maxSeqLen * _headDim / 2]; _sin = new float[maxSeqLen * _headDim / 2];
        Layers.RopeTables(_cos, _sin, maxSeqLen, _headDim, shape.RopeTheta);
        _dres = new float[n * _d]; _dln = new float[n * _d]; _dq = new float[n * _d]; _dk = new float[n * _kvd]; _dv = new float[n * _kvd];
        _dattOut = new float[n * _d]; _dact = new float[n * _ff]; _dgate = new float[n * _ff]; _dup = new float[n * _ff];
        _dxs = new float[n * _d]; _dlnF = new float[n * _d];
        _attScratch = new float[maxBatch * _kvHeads * maxSeqLen * maxSeqLen]; _normScratch = new float[_d];
        _tokens = new int[n]; _positions = new int[n]; _targets = new int[n]; _weights = new float[n]; _keyMask = new bool[n];
        InitializeWeights(seed);
    }

    /// <summary>The architecture.</summary>
    public ModelShape Shape { get; }
    /// <summary>Largest batch the buffers hold.</summary>
    public int MaxBatch { get; }
    /// <summary>Longest sequence the buffers hold.</summary>
    public int MaxSeqLen { get; }
    /// <summary>All parameters, tensors back to back in <see cref="Tensors"/> order.</summary>
    public float[] Parameters { get; }
    /// <summary>Gradients, same layout as <see cref="Parameters"/>; <see cref="Backward"/> accumulates into it.</summary>
    public float[] Gradients { get; }
    /// <summary>The named tensors, in storage order (with weight tying there is no separate LM head).</summary>
    public IReadOnlyList<ParameterTensor> Tensors => _tensors;
    /// <summary>
    /// Multiplies the MoE router losses (load balancing, z-loss) of the training forward; the trainer sets it to
    /// 1 / micro-batches so an accumulated step counts them once, like the cross-entropy.
    /// </summary>
    public double RouterLossScale { get; set; } = 1;

    /// <summary>The router losses (already weighted) included in the last training forward's return value; 0 for a dense model.</summary>
    public double LastRouterLoss { get; private set; }

    /// <summary>Attention mode of the <see cref="IMaskPredictor"/> path: false (default) for the bidirectional mask
    /// predictor, true for an autoregressive baseline.</summary>
    public bool Causal { get; set; }

    /// <inheritdoc/>
    public int VocabSize => _vocab;
    /// <inheritdoc/>
    public int MaskTokenId => Shape.MaskTokenId;
    /// <inheritdoc/>
    public int MaxSequenceLength => MaxSeqLen;

    /// <summary>The tensor called <paramref name="name"/> (Hugging Face naming).</summary>
    public ParameterTensor Tensor(string name) =>
        _byName.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"the model has no tensor '{name}'");

    /// <summary>Values of the tensor called <paramref name="name"/>.</summary>
    public Span<float> Parameter(string name) { var t = Tensor(name); return Parameters.AsSpan(t.Offset, t.Length); }

    /// <summary>Gradient of the tensor called <paramref name="name"/>.</summary>
    public Span<float> Gradient(string name) { var t = Tensor(name); return Gradients.AsSpan(t.Offset, t.Length); }

    /// <summary>
    /// Normal(0, 0.02) for embedding, projections and LM head; residual-stream projections (attn_out, block ff_out)
    /// use 0.02 / sqrt(2 n_layers) so the residual variance does not grow with depth; norms are 1.
    /// Deterministic: tensors are filled in storage order from one SplitMix64 stream.
    /// </summary>
    public void InitializeWeights(ulong seed)
    {
        ulong state = seed;
        double residualStd = 0.02 / Math.Sqrt(2.0 * Shape.NLayers);
        foreach (var t in _tensors)
        {
            Span<float> w = Parameters.AsSpan(t.Offset, t.Length);
            if (t.Kind == ParameterKind.Norm) { w.Fill(1f); continue; }
            double std = t.Kind == ParameterKind.ResidualMatrix ? residualStd : 0.02;
            for (int i = 0; i < w.Length; i += 2)
            {
                // Box-Muller: two normals per pair of uniforms in (0, 1].
                double u1 = ((SplitMix64(ref state) >> 11) + 1) * (1.0 / (1UL << 53));
                double u2 = (SplitMix64(ref state) >> 11) * (1.0 / (1UL << 53));
                double r = Math.Sqrt(-2 * Math.Log(u1)) * std;
                w[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
                if (i + 1 < w.Length) w[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
            }
        }
        _ready = false;
    }

    private static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Sets every gradient to zero.</summary>
    public void ZeroGradients() => Array.Clear(Gradients);

    /// <summary>
    /// Runs the model on <paramref name="tokens"/> and returns the weighted cross-entropy
    /// sum_j weights[j] * -log p(targets[j] | row positions[j]), caching what <see cref="Backward"/> needs.
    /// </summary>
    /// <param name="tokens">[batch, seqLen] input ids.</param>
    /// <param name="batch">Rows.</param>
    /// <param name="seqLen">Tokens per row.</param>
    /// <param name="causal">Causal attention (autoregressive) instead of bidirectional (mask predictor).</param>
    /// <param name="keyMask">Empty, or [batch, seqLen] with false for pad keys no query may attend to.</param>
    /// <param name="positions">Flat scored positions, row * seqLen + t (repeats allowed).</param>
    /// <param name="targets">Target id for each scored position.</param>
    /// <param name="weights">Weight of each scored position (1/p_mask normalisations, 1/count, ...).</param>
    public double Forward(ReadOnlySpan<int> tokens, int batch, int seqLen, bool causal, ReadOnlySpan<bool> keyMask,
        ReadOnlySpan<int> positions, ReadOnlySpan<int> targets, ReadOnlySpan<float> weights)
    {
        SetBatch(tokens, batch, seqLen, causal, keyMask);
        int m = positions.Length;
        if (targets.Length != m || weights.Length != m)
            throw new ArgumentException($"positions ({m}), targets ({targets.Length}) and weights ({weights.Length}) must have the same length");
        for (int j = 0; j < m; j++)
        {
            if ((uint)positions[j] >= (uint)(batch * seqLen)) throw new ArgumentOutOfRangeException(nameof(positions), $"position {positions[j]} is outside [0, {batch * seqLen})");
            if ((uint)targets[j] >= (uint)_vocab) throw new ArgumentOutOfRangeException(nameof(targets), $"target {targets[j]} is outside the vocabulary of {_vocab}");
        }
        positions.CopyTo(_positions); targets.CopyTo(_targets); weights.CopyTo(_weights);
        _count = m;
        Trunk(default);
        Head(_logits);
        _ready = true;
        return Layers.CrossEntropyForward(_rowLoss, _lse, _logits, _targets, _weights, m, _vocab) + LastRouterLoss;
    }

    /// <summary>The weighted cross-entropy of each scored position of the last training Forward (weights[j] * -log p).</summary>
    public ReadOnlySpan<float> ScoredLosses => _ready ? _rowLoss.AsSpan(0, _count)
        : throw new InvalidOperationException("ScoredLosses needs a preceding training Forward with the current weights");

    /// <summary>
    /// Accumulates the gradient of sum_j <paramref name="weights"/>[j] * -log p(targets[j]) over the positions of the
    /// last training Forward, i.e. the same cross-entropies re-weighted after the fact. Losses built on top of
    /// per-position log-likelihoods (DPO on ELBO estimates) pass their chain-rule weights here.
    /// </summary>
    public void BackwardReweighted(ReadOnlySpan<float> weights)
    {
        if (!_ready) throw new InvalidOperationException("Backward needs a preceding training Forward with the current weights");
        if (weights.Length != _count) throw new ArgumentException($"expected one weight per scored position ({_count}), got {weights.Length}", nameof(weights));
        weights.CopyTo(_weights);
        Backward();
    }

    /// <summary>Accumulates the gradient of the last <see cref="Forward(ReadOnlySpan{int}, int, int, bool, ReadOnlySpan{bool}, ReadOnlySpan{int}, ReadOnlySpan{int}, ReadOnlySpan{float})"/> loss into <see cref="Gradients"/>.</summary>
    public void Backward()
    {
        if (!_ready) throw new InvalidOperationException("Backward needs a preceding training Forward with the current weights");
        _ready = false;
        int n = _batch * _seqLen, m = _count, d = _d;
        float[] w = Parameters, g = Gradients;
        Span<float> G(int offset, int length) => g.AsSpan(offset, length);
        ReadOnlySpan<float> W(int offset, int length) => w.AsSpan(offset, length);

        // LM head, gather and final norm.
        Layers.CrossEntropyBackward(_logits, _targets, _weights, m, _vocab);
        Layers.MatmulBackward(_dxs, G(_head, _vocab * d), _logits.AsSpan(0, m * _vocab), _xs, W(_head, _vocab * d), m, d, _vocab, false);
        Array.Clear(_dlnF, 0, n * d);
        for (int j = 0; j < m; j++)
        {
            Span<float> row = _dlnF.AsSpan(_positions[j] * d, d);
            System.Numerics.Tensors.TensorPrimitives.Add(row, _dxs.AsSpan(j * d, d), row);
        }
        Array.Clear(_dres, 0, n * d);
        Layers.RmsNormBackward(_dres, G(_lnF, d), _dlnF, _h[^1], W(_lnF, d), _rstdF, n, d, _normScratch);

        for (int l = _blocks.Length - 1; l >= 0; l--)
        {
            Block b = _blocks[l];
            if (b.Moe is not null)
                b.Moe.Backward(w, g, _ln2[l].AsSpan(0, n * d), _dres, _dln, RouterLossScale);
            else
            {
            // MLP: h_out = h_mid + ff_out(silu(ff_proj x) * up_proj x), x = ff_norm(h_mid).
            Layers.MatmulBackward(_dact, G(b.FfOut, d * _ff), _dres, _act[l], W(b.FfOut, d * _ff), n, _ff, d, false);
            Layers.SwiGluBackward(_dgate.AsSpan(0, n * _ff), _dup.AsSpan(0, n * _ff), _dact.AsSpan(0, n * _ff), _gate[l].AsSpan(0, n * _ff), _up[l].AsSpan(0, n * _ff));
            Layers.MatmulBackward(_dln, G(b.FfProj, _ff * d), _dgate, _ln2[l], W(b.FfProj, _ff * d), n, d, _ff, false);
            Layers.MatmulBackward(_dln, G(b.UpProj, _ff * d), _dup, _ln2[l], W(b.UpProj, _ff * d), n, d, _ff, true);
            }
            Layers.RmsNormBackward(_dres, G(b.FfNorm, d), _dln, _hMid[l], W(b.FfNorm, d), _rstd2[l], n, d, _normScratch);
            // Attention: h_mid = h + attn_out(Attention(rope(q), rope(k), v)), q/k/v projected from attn_norm(h).
            Layers.MatmulBackward(_dattOut, G(b.AttnOut, d * d), _dres, _attOut[l], W(b.AttnOut, d * d), n, d, d, false);
            Layers.AttentionBackward(_dq, _dk, _dv, _dattOut, _att[l], _q[l], _k[l], _v[l], _attScratch, _batch, _seqLen, _heads, _kvHeads, _headDim);
            Layers.RopeBackward(_dq, n, _seqLen, _heads, _headDim, _cos, _sin);
            Layers.RopeBackward(_dk, n, _seqLen, _kvHeads, _headDim, _cos, _sin);
            float[] dq = _dq, dk = _dk;
            if (b.QNorm >= 0)
            {
                // QK-norm: RMSNorm over each head's head_dim values before RoPE.
                Array.Clear(_dqRaw, 0, n * d);
                Array.Clear(_dkRaw, 0, n * _kvd);
                Layers.RmsNormBackward(_dqRaw, G(b.QNorm, _headDim), _dq, _qRaw[l], W(b.QNorm, _headDim), _rstdQ[l], n * _heads, _headDim, _normScratch);
                Layers.RmsNormBackward(_dkRaw, G(b.KNorm, _headDim), _dk, _kRaw[l], W(b.KNorm, _headDim), _rstdK[l], n * _kvHeads, _headDim, _normScratch);
                dq = _dqRaw;
                dk = _dkRaw;
            }
            Layers.MatmulBackward(_dln, G(b.Q, d * d), dq, _ln1[l], W(b.Q, d * d), n, d, d, false);
            Layers.MatmulBackward(_dln, G(b.K, _kvd * d), dk, _ln1[l], W(b.K, _kvd * d), n, d, _kvd, true);
            Layers.MatmulBackward(_dln, G(b.V, _kvd * d), _dv, _ln1[l], W(b.V, _kvd * d), n, d, _kvd, true);
            Layers.RmsNormBackward(_dres, G(b.AttnNorm, d), _dln, _h[l], W(b.AttnNorm, d), _rstd1[l], n, d, _normScratch);
        }
        Layers.EmbeddingBackward(G(_wte, _vocab * d), _dres, _tokens.AsSpan(0, n), d);
    }

    /// <inheritdoc/>
    public void Forward(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask,
        ReadOnlySpan<int> logitPositions, Span<float> logits, CancellationToken cancellationToken = default)
    {
        SetBatch(tokens, batch, seqLen, Causal, keyMask);
        int p = logitPositions.Length, m = batch * p;
        if (logits.Length < (long)m * _vocab) throw new ArgumentException($"logits holds {logits.Length} floats, expected {batch}x{p}x{_vocab}", nameof(logits));
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < p; j++)
            {
                if ((uint)logitPositions[j] >= (uint)seqLen) throw new ArgumentOutOfRangeException(nameof(logitPositions), $"position {logitPositions[j]} is outside [0, {seqLen})");
                _positions[b * p + j] = b * seqLen + logitPositions[j];
            }
        _count = m;
        _ready = false;
        Trunk(cancellationToken);
        Head(logits);
    }

    private void SetBatch(ReadOnlySpan<int> tokens, int batch, int seqLen, bool causal, ReadOnlySpan<bool> keyMask)
    {
        if (batch < 1 || batch > MaxBatch) throw new ArgumentOutOfRangeException(nameof(batch), $"batch {batch} is outside [1, {MaxBatch}] (the model's buffers were sized for {MaxBatch})");
        if (seqLen < 1 || seqLen > MaxSeqLen) throw new ArgumentOutOfRangeException(nameof(seqLen), $"seqLen {seqLen} is outside [1, {MaxSeqLen}]");
        int n = batch * seqLen;
        if (tokens.Length != n) throw new ArgumentException($"tokens holds {tokens.Length} ids, expected {batch}x{seqLen}", nameof(tokens));
        if (!keyMask.IsEmpty && keyMask.Length != n) throw new ArgumentException($"keyMask holds {keyMask.Length} flags, expected {batch}x{seqLen} or none", nameof(keyMask));
        for (int i = 0; i < n; i++)
            if ((uint)tokens[i] >= (uint)_vocab) throw new ArgumentOutOfRangeException(nameof(tokens), $"token {tokens[i]} at {i} is outside the vocabulary of {_vocab}");
        tokens.CopyTo(_tokens);
        _useKeyMask = !keyMask.IsEmpty;
        if (_useKeyMask) keyMask.CopyTo(_keyMask);
        _batch = batch; _seqLen = seqLen; _causal = causal;
    }

    /// <summary>Embedding, all blocks and the final norm over the current batch into _lnF_out.</summary>
    private void Trunk(CancellationToken cancellationToken)
    {
        int n = _batch * _seqLen, d = _d;
        float[] w = Parameters;
        ReadOnlySpan<float> W(int offset, int length) => w.AsSpan(offset, length);
        Layers.EmbeddingForward(_h[0], _tokens.AsSpan(0, n), W(_wte, _vocab * d), d);
        LastRouterLoss = 0;
        for (int l = 0; l < _blocks.Length; l++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Block b = _blocks[l];
            Layers.RmsNormForward(_ln1[l], _rstd1[l], _h[l], W(b.AttnNorm, d), n, d, _eps);
            if (b.QNorm >= 0)
            {
                Layers.MatmulForward(_qRaw[l], _ln1[l], W(b.Q, d * d), n, d, d);
                Layers.MatmulForward(_kRaw[l], _ln1[l], W(b.K, _kvd * d), n, d, _kvd);
                Layers.RmsNormForward(_q[l], _rstdQ[l], _qRaw[l], W(b.QNorm, _headDim), n * _heads, _headDim, _eps);
                Layers.RmsNormForward(_k[l], _rstdK[l], _kRaw[l], W(b.KNorm, _headDim), n * _kvHeads, _headDim, _eps);
            }
            else
            {
                Layers.MatmulForward(_q[l], _ln1[l], W(b.Q, d * d), n, d, d);
                Layers.MatmulForward(_k[l], _ln1[l], W(b.K, _kvd * d), n, d, _kvd);
            }
            Layers.MatmulForward(_v[l], _ln1[l], W(b.V, _kvd * d), n, d, _kvd);
            Layers.RopeForward(_q[l], n, _seqLen, _heads, _headDim, _cos, _sin);
            Layers.RopeForward(_k[l], n, _seqLen, _kvHeads, _headDim, _cos, _sin);
            Layers.AttentionForward(_attOut[l], _att[l], _q[l], _k[l], _v[l], _keyMask, _useKeyMask, _batch, _seqLen, _heads, _kvHeads, _headDim, _causal);
            Layers.MatmulForward(_hMid[l], _attOut[l], W(b.AttnOut, d * d), n, d, d);
            System.Numerics.Tensors.TensorPrimitives.Add(_hMid[l].AsSpan(0, n * d), _h[l].AsSpan(0, n * d), _hMid[l].AsSpan(0, n * d));
            Layers.RmsNormForward(_ln2[l], _rstd2[l], _hMid[l], W(b.FfNorm, d), n, d, _eps);
            if (b.Moe is not null)
            {
                _hMid[l].AsSpan(0, n * d).CopyTo(_h[l + 1]);
                LastRouterLoss += b.Moe.Forward(w, _ln2[l].AsSpan(0, n * d), n, _h[l + 1], RouterLossScale);
                continue;
            }
            Layers.MatmulForward(_gate[l], _ln2[l], W(b.FfProj, _ff * d), n, d, _ff);
            Layers.MatmulForward(_up[l], _ln2[l], W(b.UpProj, _ff * d), n, d, _ff);
            Layers.SwiGluForward(_act[l].AsSpan(0, n * _ff), _gate[l].AsSpan(0, n * _ff), _up[l].AsSpan(0, n * _ff));
            Layers.MatmulForward(_h[l + 1], _act[l], W(b.FfOut, d * _ff), n, _ff, d);
            System.Numerics.Tensors.TensorPrimitives.Add(_h[l + 1].AsSpan(0, n * d), _hMid[l].AsSpan(0, n * d), _h[l + 1].AsSpan(0, n * d));
        }
        Layers.RmsNormForward(_lnF_out, _rstdF, _h[^1], W(_lnF, d), n, d, _eps);
    }

    /// <summary>Gathers the scored rows of the final norm and projects them to logits [count, vocab].</summary>
    private void Head(Span<float> logits)
    {
        int d = _d;
        for (int j = 0; j < _count; j++)
            _lnF_out.AsSpan(_positions[j] * d, d).CopyTo(_xs.AsSpan(j * d, d));
        Layers.MatmulForward(logits, _xs, Parameters.AsSpan(_head, _vocab * d), _count, d, _vocab);
    }
}
