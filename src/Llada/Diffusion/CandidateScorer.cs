using Llada.Numerics;

namespace Llada.Diffusion;

/// <summary>
/// One step's per-position work: combine the CFG branches, apply the EOS rule, draw the candidate and score its
/// confidence, for every masked (row, position) whose logits were computed. Positions are spread over
/// <see cref="Parallelism.ThreadCount"/> workers; every random draw comes from a stream keyed by
/// (seed, row, block, step, position), so the split does not change the result.
/// The mask token is never a candidate: committing it would leave the position masked and break the schedule's
/// count (the reference allows it; trained models give it negligible probability). It still counts in the softmax
/// of the low_confidence rule, as in the reference.
/// </summary>
internal sealed class CandidateScorer
{
    private readonly GenerationOptions _options;
    private readonly IRemaskingRule _remasking;
    private readonly int _vocab, _batch, _maxPositions;
    private readonly float[][] _scratch;
    private readonly int[] _work;
    private readonly Action<int> _worker;
    private CanvasBatch? _canvas;
    private int[] _positions = [];
    private int _count, _workCount, _workers, _block, _step;

    public CandidateScorer(GenerationOptions options, int vocab, int batch, int branches, int maxPositions)
    {
        _options = options;
        _remasking = options.RemaskingRule();
        _vocab = vocab;
        _batch = batch;
        _maxPositions = maxPositions;
        Logits = new float[(long)branches * batch * maxPositions * vocab];
        Candidates = new int[batch * maxPositions];
        Confidences = new double[batch * maxPositions];
        _work = new int[batch * maxPositions];
        _scratch = new float[Math.Max(1, Parallelism.ThreadCount)][];
        _worker = w => ScoreItems(w);
    }

    /// <summary>[Branches * Batch, positions, Vocab] logits buffer handed to the predictor.</summary>
    public float[] Logits { get; }

    /// <summary>[Batch, maxPositions]: candidate of (row, j) at index row * maxPositions + j.</summary>
    public int[] Candidates { get; }

    /// <summary>[Batch, maxPositions]: confidence of the candidate.</summary>
    public double[] Confidences { get; }

    /// <summary>Scores every masked (row, positions[j]) for step <paramref name="step"/> of <paramref name="block"/>.</summary>
    public void Score(CanvasBatch canvas, int[] positions, int count, int block, int step)
    {
        (_canvas, _positions, _count, _block, _step) = (canvas, positions, count, block, step);
        _workCount = 0;
        for (int r = 0; r < _batch; r++)
            for (int j = 0; j < count; j++)
                if (canvas.IsMasked(r, positions[j])) _work[_workCount++] = r * _maxPositions + j;
        _workers = Math.Min(Math.Min(Parallelism.ThreadCount, _scratch.Length), _workCount);
        if (_workers <= 1) ScoreItems(0);
        else Parallel.For(0, _workers, _worker);
    }

    private void ScoreItems(int worker)
    {
        float[] scratch = _scratch[worker] ??= new float[_vocab];
        int stride = Math.Max(_workers, 1);
        for (int i = worker; i < _workCount; i += stride) ScoreItem(_work[i], scratch);
    }

    private void ScoreItem(int item, float[] scratch)
    {
        int row = item / _maxPositions, j = item % _maxPositions;
        ReadOnlySpan<float> conditional = Logits.AsSpan((int)(((long)row * _count + j) * _vocab), _vocab);
        // The model's logits are read in place unless CFG or the EOS rule changes them (then a per-worker copy).
        ReadOnlySpan<float> logits = conditional;
        if (_canvas!.Branches == 2)
        {
            // Classifier-free guidance: u + (cfg + 1)(c - u), the unconditional row having its prompt masked.
            ReadOnlySpan<float> unconditional = Logits.AsSpan((int)(((long)(_batch + row) * _count + j) * _vocab), _vocab);
            float w = (float)(_options.CfgScale + 1);
            for (int v = 0; v < _vocab; v++) scratch[v] = unconditional[v] + w * (conditional[v] - unconditional[v]);
            logits = scratch;
        }
        if (_options.LogitsEosInf)
        {
            if (_canvas.Branches != 2) conditional.CopyTo(scratch);
            scratch[_options.EosTokenId] = float.NegativeInfinity;
            logits = scratch;
        }

        var random = CounterRandom.For(_options.Seed, row, _block, _step, _positions[j]);
        int candidate = _options.Temperature == 0
            ? CandidateSampling.Argmax(logits, _canvas.MaskId)
            : CandidateSampling.GumbelMax(logits, _canvas.MaskId, _options.Temperature, ref random);
        double confidence = _remasking.Confidence(logits, candidate, random.NextOpenUnit());
        if (_options.ConfidenceEosEotInf && (candidate == _options.EosTokenId || candidate == _options.EndOfTurnTokenId))
            confidence = double.NegativeInfinity;
        Candidates[item] = candidate;
        Confidences[item] = confidence;
    }
}
