using System.Numerics.Tensors;
using Llada.Model;

namespace Llada.Training;

/// <summary>
/// Forward and backward of one LLaDA-MoE sparse MLP for training (float32, rows = tokens):
/// out += sum over the token's top-k experts e of w_e * down_e(silu(gate_e(x)) * up_e(x)), with p = softmax(router x)
/// and w from <see cref="ExpertRouting.SelectTopK"/>. Tokens are grouped by expert, so each expert runs once over its
/// group. Two auxiliary router losses are added (each already multiplied by its coefficient and a caller's scale):
/// <list type="bullet">
/// <item>load balancing (Switch Transformer, top-k form): aux = E * sum_e f_e * P_e, f_e = (tokens routed to e) / n,
/// P_e = mean over tokens of p_e; f is a count, so only P carries gradient;</item>
/// <item>router z-loss (ST-MoE): z = mean over tokens of logsumexp(router logits)^2.</item>
/// </list>
/// The top-k choice itself is piecewise constant: gradients flow through the selected probabilities only.
/// </summary>
internal sealed class MoeLayer
{
    private readonly MoeConfig _c;
    private readonly int _d, _ff, _experts, _k;
    private readonly int _router;
    private readonly int[] _gate, _up, _down;
    // Cache of the last forward.
    private readonly float[] _probs, _lse, _choiceWeight, _rowWeight, _xs, _gateAct, _upAct, _act, _y;
    private readonly int[] _choice, _offset, _rowToken, _rowSlot, _fill;
    // Backward scratch.
    private readonly float[] _dy, _dact, _dgate, _dup, _dxs, _dprobs, _dChoice;
    private int _n;

    /// <param name="config">Router and expert settings.</param>
    /// <param name="dModel">Model width.</param>
    /// <param name="maxRows">Largest number of tokens a call will see.</param>
    /// <param name="router">Offset of mlp.gate [E, d] in the parameter array.</param>
    /// <param name="gate">Offsets of the experts' gate_proj [ff, d].</param>
    /// <param name="up">Offsets of the experts' up_proj [ff, d].</param>
    /// <param name="down">Offsets of the experts' down_proj [d, ff].</param>
    public MoeLayer(MoeConfig config, int dModel, int maxRows, int router, int[] gate, int[] up, int[] down)
    {
        _c = config;
        _d = dModel; _ff = config.ExpertIntermediateSize; _experts = config.NumExperts; _k = config.ExpertsPerToken;
        _router = router; _gate = gate; _up = up; _down = down;
        int rows = maxRows * _k;
        _probs = new float[maxRows * _experts]; _lse = new float[maxRows];
        _choice = new int[rows]; _choiceWeight = new float[rows];
        _offset = new int[_experts + 1]; _fill = new int[_experts];
        _rowToken = new int[rows]; _rowSlot = new int[rows]; _rowWeight = new float[rows];
        _xs = new float[rows * _d]; _y = new float[rows * _d];
        _gateAct = new float[rows * _ff]; _upAct = new float[rows * _ff]; _act = new float[rows * _ff];
        _dy = new float[rows * _d]; _dxs = new float[rows * _d];
        _dact = new float[rows * _ff]; _dgate = new float[rows * _ff]; _dup = new float[rows * _ff];
        _dprobs = new float[maxRows * _experts]; _dChoice = new float[rows];
    }

    /// <summary>Load-balancing loss of the last forward, before its coefficient and scale.</summary>
    public double LastBalanceLoss { get; private set; }

    /// <summary>Router z-loss of the last forward, before its coefficient and scale.</summary>
    public double LastZLoss { get; private set; }

    /// <summary>
    /// output[n, d] += the sparse MLP of x[n, d]; returns scale * (router_aux_loss_coef * aux + router_z_loss_coef * z).
    /// </summary>
    public double Forward(ReadOnlySpan<float> w, ReadOnlySpan<float> x, int n, Span<float> output, double scale)
    {
        int d = _d, nE = _experts, ff = _ff;
        _n = n;
        Span<float> probs = _probs.AsSpan(0, n * nE);
        Layers.MatmulForward(probs, x, w.Slice(_router, nE * d), n, d, nE);
        double z = 0;
        for (int t = 0; t < n; t++)
        {
            Span<float> row = probs.Slice(t * nE, nE);
            float max = TensorPrimitives.Max(row);
            TensorPrimitives.Subtract(row, max, row);
            TensorPrimitives.Exp(row, row);
            float sum = TensorPrimitives.Sum(row);
            TensorPrimitives.Multiply(row, 1f / sum, row);
            _lse[t] = max + MathF.Log(sum);
            z += (double)_lse[t] * _lse[t];
        }

        // Route, then group the (token, slot) pairs by expert.
        Span<int> offset = _offset.AsSpan();
        ExpertRouting.RouteAndGroup(probs, n, _c, _choice, _choiceWeight, offset, _fill, _rowToken, _rowWeight, _rowSlot);

        double balance = 0;
        for (int e = 0; e < nE; e++)
        {
            int start = offset[e], count = offset[e + 1] - start;
            double meanP = 0;
            for (int t = 0; t < n; t++) meanP += probs[t * nE + e];
            balance += (double)count / n * (meanP / n);
            if (count == 0) continue;
            Span<float> xs = _xs.AsSpan(start * d, count * d), y = _y.AsSpan(start * d, count * d);
            Span<float> g = _gateAct.AsSpan(start * ff, count * ff), u = _upAct.AsSpan(start * ff, count * ff), a = _act.AsSpan(start * ff, count * ff);
            for (int r = 0; r < count; r++) x.Slice(_rowToken[start + r] * d, d).CopyTo(xs.Slice(r * d, d));
            Layers.MatmulForward(g, xs, w.Slice(_gate[e], ff * d), count, d, ff);
            Layers.MatmulForward(u, xs, w.Slice(_up[e], ff * d), count, d, ff);
            Layers.SwiGluForward(a, g, u);
            Layers.MatmulForward(y, a, w.Slice(_down[e], d * ff), count, ff, d);
            for (int r = 0; r < count; r++)
            {
                Span<float> dst = output.Slice(_rowToken[start + r] * d, d);
                TensorPrimitives.MultiplyAdd(y.Slice(r * d, d), _rowWeight[start + r], dst, dst);
            }
        }
        LastBalanceLoss = nE * balance;
        LastZLoss = z / n;
        return scale * (_c.RouterAuxLossCoef * LastBalanceLoss + _c.RouterZLossCoef * LastZLoss);
    }

    /// <summary>
    /// Backward of the last <see cref="Forward"/> (including its router losses, with the same <paramref name="scale"/>):
    /// overwrites dx[n, d] with dL/dx and accumulates the router and expert gradients into <paramref name="grad"/>.
    /// </summary>
    public void Backward(ReadOnlySpan<float> w, Span<float> grad, ReadOnlySpan<float> x, ReadOnlySpan<float> dout, Span<float> dx, double scale)
    {
        int n = _n, d = _d, nE = _experts, k = _k, ff = _ff;
        Span<float> probs = _probs.AsSpan(0, n * nE), dprobs = _dprobs.AsSpan(0, n * nE);
        dprobs.Clear();
        Span<float> dChoice = _dChoice.AsSpan(0, n * k); // dL/d(routing weight) per (token, slot)

        // Experts: dy = w_r * dout[token], dw_r = dout[token] . y_r.
        dx[..(n * d)].Clear();
        for (int e = 0; e < nE; e++)
        {
            int start = _offset[e], count = _offset[e + 1] - start;
            if (count == 0) continue;
            Span<float> y = _y.AsSpan(start * d, count * d), dy = _dy.AsSpan(0, count * d), dxs = _dxs.AsSpan(0, count * d);
            for (int r = 0; r < count; r++)
            {
                ReadOnlySpan<float> g = dout.Slice(_rowToken[start + r] * d, d);
                dChoice[_rowSlot[start + r]] = TensorPrimitives.Dot(g, y.Slice(r * d, d));
                TensorPrimitives.Multiply(g, _rowWeight[start + r], dy.Slice(r * d, d));
            }
            Span<float> da = _dact.AsSpan(0, count * ff), dg = _dgate.AsSpan(0, count * ff), du = _dup.AsSpan(0, count * ff);
            Layers.MatmulBackward(da, grad.Slice(_down[e], d * ff), dy, _act.AsSpan(start * ff, count * ff), w.Slice(_down[e], d * ff), count, ff, d, false);
            Layers.SwiGluBackward(dg, du, da, _gateAct.AsSpan(start * ff, count * ff), _upAct.AsSpan(start * ff, count * ff));
            ReadOnlySpan<float> xs = _xs.AsSpan(start * d, count * d);
            Layers.MatmulBackward(dxs, grad.Slice(_gate[e], ff * d), dg, xs, w.Slice(_gate[e], ff * d), count, d, ff, false);
            Layers.MatmulBackward(dxs, grad.Slice(_up[e], ff * d), du, xs, w.Slice(_up[e], ff * d), count, d, ff, true);
            for (int r = 0; r < count; r++)
            {
                Span<float> dst = dx.Slice(_rowToken[start + r] * d, d);
                TensorPrimitives.Add(dst, dxs.Slice(r * d, d), dst);
            }
        }

        // Routing weights -> probabilities. w_j = s p_j (/ S with S = sum of the selected p when renormalised).
        float sc = (float)_c.RoutedScalingFactor;
        for (int t = 0; t < n; t++)
        {
            ReadOnlySpan<int> chosen = _choice.AsSpan(t * k, k);
            if (!_c.NormTopKProb)
            {
                for (int j = 0; j < k; j++) dprobs[t * nE + chosen[j]] += sc * dChoice[t * k + j];
                continue;
            }
            float sum = 0, dot = 0;
            for (int j = 0; j < k; j++) sum += probs[t * nE + chosen[j]];
            for (int j = 0; j < k; j++) dot += dChoice[t * k + j] * probs[t * nE + chosen[j]];
            for (int j = 0; j < k; j++) dprobs[t * nE + chosen[j]] += sc / sum * (dChoice[t * k + j] - dot / sum);
        }

        // Router losses: d(aux)/dp_te = E * f_e / n; d(z)/dlogit_te = 2 lse_t p_te / n.
        float balanceScale = (float)(scale * _c.RouterAuxLossCoef * nE / n);
        for (int e = 0; e < nE; e++)
        {
            float f = (float)(_offset[e + 1] - _offset[e]) / n;
            for (int t = 0; t < n; t++) dprobs[t * nE + e] += balanceScale * f;
        }
        // Softmax backward in place: dlogit = p * (dp - p . dp), plus the z-loss term.
        float zScale = (float)(scale * _c.RouterZLossCoef * 2 / n);
        for (int t = 0; t < n; t++)
        {
            Span<float> dp = dprobs.Slice(t * nE, nE);
            ReadOnlySpan<float> p = probs.Slice(t * nE, nE);
            Layers.SoftmaxBackward(dp, p);
            TensorPrimitives.MultiplyAdd(p, zScale * _lse[t], dp, dp);
        }
        Layers.MatmulBackward(dx, grad.Slice(_router, nE * d), dprobs, x, w.Slice(_router, nE * d), n, d, nE, true);
    }
}
