using System.Numerics.Tensors;
using Llada.Numerics;

namespace Llada.Model;

/// <summary>
/// Token-choice routing of a LLaDA-MoE layer (spec section 7): p = softmax(router(x)) in float32, the k most probable
/// experts (ties to the lower expert index), weights p_e — renormalised over the k only when norm_topk_prob — times
/// routed_scaling_factor.
/// </summary>
public static class ExpertRouting
{
    /// <summary>
    /// Selects the top-k experts of one token from its router probabilities <paramref name="probs"/>; writes their
    /// indices in descending probability order to <paramref name="experts"/> and their routing weights to <paramref name="weights"/>.
    /// </summary>
    public static void SelectTopK(ReadOnlySpan<float> probs, MoeConfig config, Span<int> experts, Span<float> weights)
    {
        int k = config.ExpertsPerToken;
        float sum = 0;
        for (int j = 0; j < k; j++)
        {
            int best = -1;
            for (int e = 0; e < probs.Length; e++)
            {
                if (experts[..j].Contains(e)) continue;
                if (best < 0 || probs[e] > probs[best]) best = e;
            }
            experts[j] = best;
            weights[j] = probs[best];
            sum += probs[best];
        }
        float scale = (float)config.RoutedScalingFactor / (config.NormTopKProb ? sum : 1f);
        for (int j = 0; j < k; j++) weights[j] *= scale;
    }

    /// <summary>
    /// Routes <paramref name="m"/> tokens (<paramref name="probs"/> [m, experts]) with <see cref="SelectTopK"/> into
    /// <paramref name="choice"/> / <paramref name="choiceWeight"/> [m * k], then counting-sorts the m * k (token, slot)
    /// pairs by expert: expert e's rows are [offset[e], offset[e + 1]), tokens ascending within an expert, each row
    /// giving its token, routing weight and (when <paramref name="rowSlot"/> is not empty) slot t * k + j.
    /// <paramref name="fill"/> is scratch of one int per expert.
    /// </summary>
    internal static void RouteAndGroup(ReadOnlySpan<float> probs, int m, MoeConfig config, Span<int> choice, Span<float> choiceWeight,
        Span<int> offset, Span<int> fill, Span<int> rowToken, Span<float> rowWeight, Span<int> rowSlot)
    {
        int nE = config.NumExperts, k = config.ExpertsPerToken;
        offset[..(nE + 1)].Clear();
        for (int t = 0; t < m; t++)
        {
            SelectTopK(probs.Slice(t * nE, nE), config, choice.Slice(t * k, k), choiceWeight.Slice(t * k, k));
            for (int j = 0; j < k; j++) offset[choice[t * k + j] + 1]++;
        }
        for (int e = 0; e < nE; e++) offset[e + 1] += offset[e];
        offset[..nE].CopyTo(fill);
        for (int s = 0; s < m * k; s++)
        {
            int at = fill[choice[s]]++;
            rowToken[at] = s / k;
            rowWeight[at] = choiceWeight[s];
            if (!rowSlot.IsEmpty) rowSlot[at] = s;
        }
    }
}

/// <summary>
/// The sparse MLP of one LLaDA-MoE layer: y += sum over the token's top-k experts e of w_e * down_e(silu(gate_e(x)) * up_e(x)),
/// plus the shared expert when present. Tokens are grouped by expert, so each active expert's matrices are multiplied
/// once per call over its token group and experts that receive no token are never read.
/// </summary>
internal sealed class MixtureOfExperts(MoeLayerWeights weights, MoeConfig config, int dModel)
{
    /// <summary>
    /// Adds the layer's output for the <paramref name="m"/> rows of <paramref name="x"/> (the post-attention-normed
    /// states) to <paramref name="residual"/>. Returns how many experts were evaluated. With <paramref name="allExperts"/>
    /// every expert runs on every row (unselected ones weighted 0): the same result at dense cost, for benchmarks.
    /// <paramref name="arithmetic"/> applies to the router's and experts' bf16 matrices (see <see cref="Gemm.MultiplyTransposed"/>).
    /// </summary>
    public int Forward(ReadOnlySpan<float> x, int m, Span<float> residual, MoeScratch s, bool allExperts,
        Bf16Arithmetic arithmetic)
    {
        int d = dModel, nE = config.NumExperts, k = config.ExpertsPerToken, ff = config.ExpertIntermediateSize;
        s.Ensure(m, d, nE, k, Math.Max(ff, config.SharedExpertIntermediateSize));
        Span<float> probs = s.Probs.AsSpan(0, m * nE);
        Gemm.MultiplyTransposed(x, m, weights.Router, probs, bf16Arithmetic: arithmetic);
        Activations.SoftmaxRows(probs, m, nE, probs);

        Span<int> choice = s.Choice.AsSpan(0, m * k);
        Span<float> choiceWeight = s.ChoiceWeight.AsSpan(0, m * k);
        Span<int> offset = s.Offset.AsSpan(0, nE + 1);
        Span<int> rowToken = s.RowToken.AsSpan(0, m * k);
        Span<float> rowWeight = s.RowWeight.AsSpan(0, m * k);
        ExpertRouting.RouteAndGroup(probs, m, config, choice, choiceWeight, offset, s.Fill.AsSpan(0, nE), rowToken, rowWeight, default);

        int evaluated = 0;
        for (int e = 0; e < nE; e++)
        {
            int start = offset[e], count = offset[e + 1] - start;
            if (allExperts)
            {
                // Dense reference execution: every row through expert e, weight 0 where e was not selected.
                Span<float> yAll = s.Ys.AsSpan(0, m * d);
                RunExpert(weights.Experts[e], x, m, ff, yAll, s, arithmetic);
                for (int t = 0; t < m; t++)
                {
                    float w = 0;
                    for (int j = 0; j < k; j++) if (choice[t * k + j] == e) w = choiceWeight[t * k + j];
                    TensorPrimitives.MultiplyAdd(yAll.Slice(t * d, d), w, residual.Slice(t * d, d), residual.Slice(t * d, d));
                }
                evaluated++;
                continue;
            }
            if (count == 0) continue;
            Span<float> xs = s.Xs.AsSpan(0, count * d), ys = s.Ys.AsSpan(0, count * d);
            for (int r = 0; r < count; r++) x.Slice(rowToken[start + r] * d, d).CopyTo(xs.Slice(r * d, d));
            RunExpert(weights.Experts[e], xs, count, ff, ys, s, arithmetic);
            for (int r = 0; r < count; r++)
            {
                Span<float> dst = residual.Slice(rowToken[start + r] * d, d);
                TensorPrimitives.MultiplyAdd(ys.Slice(r * d, d), rowWeight[start + r], dst, dst);
            }
            evaluated++;
        }
        if (weights.Shared is { } shared)
        {
            Span<float> ys = s.Ys.AsSpan(0, m * d);
            RunExpert(shared, x, m, config.SharedExpertIntermediateSize, ys, s, arithmetic);
            TensorPrimitives.Add(residual[..(m * d)], ys, residual[..(m * d)]);
        }
        return evaluated;
    }

    private static void RunExpert(in SwiGluWeights w, ReadOnlySpan<float> x, int rows, int ff, Span<float> y, MoeScratch s,
        Bf16Arithmetic arithmetic)
    {
        Span<float> gate = s.Gate.AsSpan(0, rows * ff), up = s.Up.AsSpan(0, rows * ff);
        Gemm.MultiplyTransposed(x, rows, w.Gate, gate, bf16Arithmetic: arithmetic);
        Gemm.MultiplyTransposed(x, rows, w.Up, up, bf16Arithmetic: arithmetic);
        Activations.SwiGlu(gate, up, gate);
        Gemm.MultiplyTransposed(gate, rows, w.Down, y, bf16Arithmetic: arithmetic);
    }
}

/// <summary>Buffers of <see cref="MixtureOfExperts"/>, shared by all layers of a predictor and grown on demand.</summary>
internal sealed class MoeScratch
{
    public float[] Probs = [], ChoiceWeight = [], RowWeight = [], Xs = [], Ys = [], Gate = [], Up = [];
    public int[] Choice = [], RowToken = [], Offset = [], Fill = [];

    public void Ensure(int m, int d, int experts, int k, int ff)
    {
        static void Grow<T>(ref T[] a, long n)
        {
            if (a.Length < n) a = new T[checked((int)n)];
        }
        Grow(ref Probs, (long)m * experts);
        Grow(ref Choice, (long)m * k);
        Grow(ref ChoiceWeight, (long)m * k);
        Grow(ref RowToken, (long)m * k);
        Grow(ref RowWeight, (long)m * k);
        Grow(ref Offset, experts + 1);
        Grow(ref Fill, experts);
        Grow(ref Xs, (long)m * d);
        Grow(ref Ys, (long)m * d);
        Grow(ref Gate, (long)m * ff);
        Grow(ref Up, (long)m * ff);
    }
}
