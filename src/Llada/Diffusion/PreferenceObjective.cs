using System.Globalization;

namespace Llada.Diffusion;

/// <summary>How VRPO spends its sampling budget n on the ELBO estimate of one response.</summary>
public enum ElboAllocation
{
    /// <summary>n distinct timesteps with one mask each (LLaDA 1.5's optimal allocation).</summary>
    Optimal,
    /// <summary><see cref="VrpoOptions.Timesteps"/> timesteps with n / timesteps masks each (the ablation).</summary>
    Naive,
}

/// <summary>Settings of VRPO (LLaDA 1.5): DPO on ELBO estimates with the paper's variance reductions.</summary>
public sealed record VrpoOptions
{
    /// <summary>DPO temperature beta.</summary>
    public double Beta { get; init; } = 0.1;

    /// <summary>Sampling budget n: masked copies per response and ELBO estimate.</summary>
    public int Samples { get; init; } = 8;

    /// <summary>Optimal (n timesteps x 1 mask) or naive (<see cref="Timesteps"/> timesteps x n / timesteps masks).</summary>
    public ElboAllocation Allocation { get; init; } = ElboAllocation.Optimal;

    /// <summary>Timesteps of the naive allocation (must divide <see cref="Samples"/>); ignored by the optimal one.</summary>
    public int Timesteps { get; init; } = 1;

    /// <summary>Antithetic sampling: the policy and the reference see the same timesteps and masks for a response.</summary>
    public bool Antithetic { get; init; } = true;

    /// <summary>Distinct timesteps per response estimate.</summary>
    public int TimestepCount => Allocation == ElboAllocation.Optimal ? Samples : Timesteps;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first unusable value.</summary>
    public void Validate()
    {
        if (!double.IsFinite(Beta) || Beta <= 0) throw new ArgumentException($"beta must be a positive number (got {Beta})");
        if (Samples < 1) throw new ArgumentException($"the sampling budget (samples) must be at least 1 (got {Samples})");
        if (Allocation == ElboAllocation.Naive && (Timesteps < 1 || Samples % Timesteps != 0))
            throw new ArgumentException($"the naive allocation needs a number of timesteps that divides the sampling budget {Samples} (got {Timesteps})");
    }

    /// <summary>"beta 0.1, n 8 = 8 timesteps x 1 mask, antithetic": also the run's identity on resume.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"beta {Beta:R}, n {Samples} = {TimestepCount} timesteps x {Samples / TimestepCount} masks, {(Antithetic ? "antithetic" : "independent reference draws")}");
}

/// <summary>
/// The VRPO objective (LLaDA 1.5): DPO with log-likelihoods replaced by ELBO estimates,
/// loss = -log sigmoid(beta [(B_theta(y_w) - B_ref(y_w)) - (B_theta(y_l) - B_ref(y_l))]).
/// B(y) is the SFT-style bound on log p(y | x): E_t E_{y_t} [(1/p_mask(t)) sum over masked response tokens of
/// log p(y_i | x, y_t)], the prompt never masked (Eq. 5 without its 1/L normalisation, so B bounds the sequence
/// log-likelihood that DPO compares). Each response is estimated from n masked copies drawn by <see cref="Sample"/>.
/// </summary>
public sealed class PreferenceObjective
{
    /// <summary>Creates the objective; timesteps and masks come from <paramref name="process"/>.</summary>
    public PreferenceObjective(VrpoOptions options, ForwardProcess process)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        Process = process ?? throw new ArgumentNullException(nameof(process));
    }

    /// <summary>The settings.</summary>
    public VrpoOptions Options { get; }
    /// <summary>Random source of timesteps and masks.</summary>
    public ForwardProcess Process { get; }

    /// <summary>
    /// Draws the masked copies of every response in <paramref name="x0"/> ([responses, seqLen], each row a prompt of
    /// <paramref name="promptLengths"/>[r] tokens followed by its response) into <paramref name="output"/>: row
    /// r * n + k is copy k of response r. Scored positions are the masked response tokens with weight
    /// 1 / (p_mask(t) n), so that B(y_r) = -(sum of the weighted cross-entropies of response r's positions).
    /// Timesteps: with the optimal allocation each copy draws its own t; with the naive one a t is shared by
    /// n / timesteps consecutive copies.
    /// </summary>
    public void Sample(ReadOnlySpan<int> x0, int responses, int seqLen, ReadOnlySpan<int> promptLengths, LossBatch output)
    {
        ArgumentNullException.ThrowIfNull(output);
        int n = Options.Samples, perTimestep = n / Options.TimestepCount;
        if (x0.Length != responses * seqLen) throw new ArgumentException($"x0 holds {x0.Length} ids, expected {responses}x{seqLen}", nameof(x0));
        if (promptLengths.Length != responses) throw new ArgumentException($"promptLengths holds {promptLengths.Length} entries, expected one per response ({responses})", nameof(promptLengths));
        if ((long)responses * n * seqLen > output.InputBuffer.Length)
            throw new ArgumentException($"{responses} responses x {n} samples of {seqLen} tokens exceed the loss batch's {output.InputBuffer.Length} tokens", nameof(output));
        output.Count = 0;
        output.Batch = responses * n;
        output.SeqLen = seqLen;
        output.Causal = false;
        for (int r = 0; r < responses; r++)
        {
            int prompt = promptLengths[r];
            if (prompt < 0 || prompt >= seqLen) throw new ArgumentOutOfRangeException(nameof(promptLengths), $"response {r}: prompt length {prompt} leaves no response in a row of {seqLen} tokens");
            ReadOnlySpan<int> source = x0.Slice(r * seqLen, seqLen);
            double pMask = 0;
            for (int k = 0; k < n; k++)
            {
                if (k % perTimestep == 0) pMask = ForwardProcess.MaskProbability(Process.SampleTime());
                int row = r * n + k;
                Span<int> xt = output.InputBuffer.AsSpan(row * seqLen, seqLen);
                source[..prompt].CopyTo(xt);
                Process.Mask(source[prompt..], xt[prompt..], pMask);
                for (int i = prompt; i < seqLen; i++)
                    if (xt[i] == Process.MaskTokenId) output.Add(row * seqLen + i, source[i], 1.0 / (pMask * n));
            }
        }
    }

    /// <summary>
    /// Per-response ELBO estimates from the weighted cross-entropies a model computed on a batch built by
    /// <see cref="Sample"/>: elbo[r] = -sum of the losses of response r's scored positions.
    /// </summary>
    public void Elbos(LossBatch batch, ReadOnlySpan<float> weightedLosses, Span<double> elbo)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (weightedLosses.Length != batch.Count) throw new ArgumentException($"expected {batch.Count} losses, got {weightedLosses.Length}", nameof(weightedLosses));
        int rowsPerResponse = Options.Samples, responses = batch.Batch / rowsPerResponse;
        if (elbo.Length != responses) throw new ArgumentException($"expected room for {responses} estimates, got {elbo.Length}", nameof(elbo));
        elbo.Clear();
        ReadOnlySpan<int> positions = batch.Positions;
        for (int j = 0; j < positions.Length; j++) elbo[positions[j] / batch.SeqLen / rowsPerResponse] -= weightedLosses[j];
    }

    /// <summary>
    /// The DPO term of one pair: score s = beta [(policyChosen - referenceChosen) - (policyRejected - referenceRejected)],
    /// loss -log sigmoid(s), and dLoss/ds = -sigmoid(-s).
    /// </summary>
    public (double Score, double Loss, double DLossDScore) Pair(double policyChosen, double referenceChosen, double policyRejected, double referenceRejected)
    {
        double s = Options.Beta * ((policyChosen - referenceChosen) - (policyRejected - referenceRejected));
        // -log sigmoid(s) = softplus(-s), evaluated without overflow on either side.
        double loss = s > 0 ? Math.Log(1 + Math.Exp(-s)) : -s + Math.Log(1 + Math.Exp(s));
        return (s, loss, -1 / (1 + Math.Exp(s)));
    }
}
