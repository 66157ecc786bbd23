namespace Llada.Diffusion;

/// <summary>Which training loss an <see cref="Objective"/> builds.</summary>
public enum ObjectiveKind
{
    /// <summary>Masked-diffusion pre-training loss (Eq. 3), bidirectional attention.</summary>
    Pretraining,
    /// <summary>Masked-diffusion supervised fine-tuning loss (Eq. 5): the prompt is never masked.</summary>
    Sft,
    /// <summary>Next-token cross-entropy with causal attention (the autoregressive baseline).</summary>
    Autoregressive,
}

/// <summary>
/// A batch turned into model input plus the positions scored by a weighted cross-entropy:
/// loss = sum_j Weights[j] * -log p(Targets[j] | Input, row position Positions[j]). Every objective is expressed
/// through these weights, so one model loss function serves all of them. Buffers are sized once.
/// </summary>
public sealed class LossBatch
{
    /// <summary>Allocates buffers for up to <paramref name="maxBatch"/> rows of <paramref name="maxSeqLen"/> tokens.</summary>
    public LossBatch(int maxBatch, int maxSeqLen)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSeqLen, 1);
        int n = maxBatch * maxSeqLen;
        InputBuffer = new int[n]; PositionBuffer = new int[n]; TargetBuffer = new int[n]; WeightBuffer = new float[n];
    }

    internal readonly int[] InputBuffer, PositionBuffer, TargetBuffer;
    internal readonly float[] WeightBuffer;

    /// <summary>Rows.</summary>
    public int Batch { get; internal set; }
    /// <summary>Tokens per row (smaller than the data's when the batch was cropped).</summary>
    public int SeqLen { get; internal set; }
    /// <summary>True when the model must attend causally.</summary>
    public bool Causal { get; internal set; }
    /// <summary>Number of scored positions.</summary>
    public int Count { get; internal set; }
    /// <summary>Tokens of the model input (x_t for diffusion), [Batch, SeqLen].</summary>
    public ReadOnlySpan<int> Input => InputBuffer.AsSpan(0, Batch * SeqLen);
    /// <summary>Scored positions, flat row * SeqLen + t.</summary>
    public ReadOnlySpan<int> Positions => PositionBuffer.AsSpan(0, Count);
    /// <summary>Target id at each scored position.</summary>
    public ReadOnlySpan<int> Targets => TargetBuffer.AsSpan(0, Count);
    /// <summary>Weight of each scored position.</summary>
    public Span<float> Weights => WeightBuffer.AsSpan(0, Count);

    internal void Add(int position, int target, double weight)
    {
        PositionBuffer[Count] = position; TargetBuffer[Count] = target; WeightBuffer[Count] = (float)weight;
        Count++;
    }
}

/// <summary>
/// The training objectives of LLaDA (and its autoregressive baseline) as weightings of a cross-entropy at
/// selected positions. Deterministic given the <see cref="ForwardProcess"/>'s random state.
/// </summary>
public sealed class Objective
{
    /// <summary>Creates an objective; diffusion objectives draw t, masks and crops from <paramref name="process"/>.</summary>
    public Objective(ObjectiveKind kind, ForwardProcess process)
    {
        ArgumentNullException.ThrowIfNull(process);
        Kind = kind;
        Process = process;
    }

    /// <summary>Which loss this is.</summary>
    public ObjectiveKind Kind { get; }
    /// <summary>Random source (t, masks, crops).</summary>
    public ForwardProcess Process { get; }
    /// <summary>Fraction of pre-training batches cropped to a random length uniform in [1, seq_len] (paper: 1%).</summary>
    public double CropProbability { get; init; } = 0.01;

    /// <summary>
    /// Builds the model input and weighted targets for one batch of clean sequences <paramref name="x0"/> [batch, seqLen].
    /// <paramref name="promptLengths"/> (one per row) is required for <see cref="ObjectiveKind.Sft"/>; for
    /// <see cref="ObjectiveKind.Autoregressive"/> it restricts the loss to response tokens; pre-training ignores it.
    /// </summary>
    public void Prepare(ReadOnlySpan<int> x0, int batch, int seqLen, ReadOnlySpan<int> promptLengths, LossBatch output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (x0.Length != batch * seqLen) throw new ArgumentException($"x0 holds {x0.Length} ids, expected {batch}x{seqLen}", nameof(x0));
        if (x0.Length > output.InputBuffer.Length) throw new ArgumentException($"batch {batch}x{seqLen} exceeds the loss batch's {output.InputBuffer.Length} tokens", nameof(output));
        if (!promptLengths.IsEmpty)
        {
            if (promptLengths.Length != batch) throw new ArgumentException($"promptLengths holds {promptLengths.Length} entries, expected one per row ({batch})", nameof(promptLengths));
            for (int b = 0; b < batch; b++)
                if (promptLengths[b] < 0 || promptLengths[b] >= seqLen)
                    throw new ArgumentOutOfRangeException(nameof(promptLengths), $"row {b}: prompt length {promptLengths[b]} leaves no response in a row of {seqLen} tokens");
        }
        output.Count = 0;
        output.Batch = batch;
        switch (Kind)
        {
            case ObjectiveKind.Pretraining: PretrainingLoss(x0, batch, seqLen, output); break;
            case ObjectiveKind.Sft:
                if (promptLengths.IsEmpty) throw new ArgumentException("the SFT objective needs one prompt length per row", nameof(promptLengths));
                SftLoss(x0, batch, seqLen, promptLengths, output);
                break;
            case ObjectiveKind.Autoregressive: NextTokenLoss(x0, batch, seqLen, promptLengths, output); break;
            default: throw new InvalidOperationException($"unknown objective {Kind}");
        }
    }

    /// <summary>
    /// Eq. 3: L = -E_t [ (1/(B*L)) sum_b sum_{i masked} (1/p_mask) log p(x0_i | x_t) ], one t per row; a
    /// <see cref="CropProbability"/> share of batches is first cropped to a length uniform in [1, L].
    /// </summary>
    private void PretrainingLoss(ReadOnlySpan<int> x0, int batch, int seqLen, LossBatch output)
    {
        int len = Process.NextDouble() < CropProbability ? 1 + Process.NextInt(seqLen) : seqLen;
        output.SeqLen = len;
        output.Causal = false;
        for (int b = 0; b < batch; b++)
        {
            double pMask = ForwardProcess.MaskProbability(Process.SampleTime());
            Span<int> xt = output.InputBuffer.AsSpan(b * len, len);
            Process.Mask(x0.Slice(b * seqLen, len), xt, pMask);
            for (int i = 0; i < len; i++)
                if (xt[i] == Process.MaskTokenId) output.Add(b * len + i, x0[b * seqLen + i], 1.0 / (pMask * batch * len));
        }
    }

    /// <summary>
    /// Eq. 5: L = -(1/B) sum_b (1/L_b) sum_{i masked response} (1/p_mask) log p(r0_i | p0, r_t), with the prompt never
    /// masked and L_b the row's response length (EOS padding included).
    /// </summary>
    private void SftLoss(ReadOnlySpan<int> x0, int batch, int seqLen, ReadOnlySpan<int> promptLengths, LossBatch output)
    {
        output.SeqLen = seqLen;
        output.Causal = false;
        for (int b = 0; b < batch; b++)
        {
            int prompt = promptLengths[b], response = seqLen - prompt;
            double pMask = ForwardProcess.MaskProbability(Process.SampleTime());
            Span<int> row = output.InputBuffer.AsSpan(b * seqLen, seqLen);
            x0.Slice(b * seqLen, prompt).CopyTo(row);
            Process.Mask(x0.Slice(b * seqLen + prompt, response), row[prompt..], pMask);
            for (int i = prompt; i < seqLen; i++)
                if (row[i] == Process.MaskTokenId) output.Add(b * seqLen + i, x0[b * seqLen + i], 1.0 / (pMask * response * batch));
        }
    }

    /// <summary>
    /// Autoregressive baseline: -(1/(B*(L-1))) sum_b sum_t log p(x_{t+1} | x_{&lt;=t}) with causal attention; with prompt
    /// lengths, only response targets count and each row is normalised by its number of targets (as Eq. 5).
    /// </summary>
    private static void NextTokenLoss(ReadOnlySpan<int> x0, int batch, int seqLen, ReadOnlySpan<int> promptLengths, LossBatch output)
    {
        if (seqLen < 2) throw new ArgumentException("next-token prediction needs sequences of at least 2 tokens", nameof(seqLen));
        output.SeqLen = seqLen;
        output.Causal = true;
        x0.CopyTo(output.InputBuffer);
        for (int b = 0; b < batch; b++)
        {
            int first = promptLengths.IsEmpty ? 1 : Math.Max(1, promptLengths[b]);
            double weight = 1.0 / ((seqLen - first) * (double)batch);
            for (int i = first; i < seqLen; i++) output.Add(b * seqLen + i - 1, x0[b * seqLen + i], weight);
        }
    }
}
