using Llada.Model;
using Llada.Training;

namespace Llada.Tests.Training;

/// <summary>
/// The training MoE layer's backward (experts, routing weights, router, load-balancing and z-losses) against central
/// differences of an independent float64 forward written here from the definitions. The scalar checked is
/// L = sum(g * moe(x)) + scale * (aux_coef * aux + z_coef * z). Inputs are drawn so that no token's k-th and (k+1)-th
/// router probabilities are close, so the finite differences never flip a routing decision (asserted).
/// </summary>
public class MoeLayerGradientTests
{
    private const int N = 6, D = 8, E = 5, K = 2, Ff = 4;
    private const double Tol = 1e-5, Scale = 0.7;

    private static int Router => 0;
    private static int Gate(int e) => E * D + e * 3 * Ff * D;
    private static int Up(int e) => Gate(e) + Ff * D;
    private static int Down(int e) => Gate(e) + 2 * Ff * D;
    private static int Total => E * D + E * 3 * Ff * D;

    [Theory]
    [InlineData(false, 1.0, 0.3, 0.0)]
    [InlineData(false, 1.0, 0.0, 0.2)]
    [InlineData(true, 1.5, 0.3, 0.2)]
    public void Backward_matches_finite_differences_including_the_router_losses(bool normTopK, double scaling, double aux, double z)
    {
        var config = new MoeConfig
        {
            NumExperts = E, ExpertsPerToken = K, ExpertIntermediateSize = Ff, NormTopKProb = normTopK,
            RoutedScalingFactor = scaling, RouterAuxLossCoef = aux, RouterZLossCoef = z, MoeLayers = [true],
        };
        var rng = new Random(normTopK ? 11 : aux > 0 ? 12 : 13);
        float[] w = Reference.RandomFloats(rng, Total, 0.5), x = Reference.RandomFloats(rng, N * D, 1), g = Reference.RandomFloats(rng, N * D, 1);
        Assert.True(MinRoutingGap(Reference.ToDouble(w), Reference.ToDouble(x)) > 1e-3, "test inputs route too close to a tie");

        var layer = new MoeLayer(config, D, N, Router, Enumerable.Range(0, E).Select(Gate).ToArray(),
            Enumerable.Range(0, E).Select(Up).ToArray(), Enumerable.Range(0, E).Select(Down).ToArray());
        var output = new float[N * D];
        double routerLoss = layer.Forward(w, x, N, output, Scale);
        var grad = new float[Total];
        var dx = new float[N * D];
        layer.Backward(w, grad, x, g, dx, Scale);

        double[] wd = Reference.ToDouble(w), xd = Reference.ToDouble(x);
        var (refOut, refAux, refZ) = Forward(config, wd, xd);
        Assert.Equal(refOut, Reference.ToDouble(output), (a, b) => Math.Abs(a - b) < 1e-5);
        Assert.Equal(Scale * (aux * refAux + z * refZ), routerLoss, 1e-5);

        double Loss(double[] wv, double[] xv)
        {
            var (o, a, zz) = Forward(config, wv, xv);
            return Reference.Dot(o, g) + Scale * (aux * a + z * zz);
        }
        Reference.AssertGradientsClose("dx", dx, Reference.NumericGradient(xd, v => Loss(wd, v)), Tol);
        int[] routerIdx = Enumerable.Range(0, E * D).ToArray();
        Reference.AssertGradientsClose("d router", grad, Reference.NumericGradient(wd, v => Loss(v, xd), routerIdx), Tol, routerIdx);
        int[] expertIdx = Enumerable.Range(E * D, Total - E * D).ToArray();
        Reference.AssertGradientsClose("d experts", grad, Reference.NumericGradient(wd, v => Loss(v, xd), expertIdx), Tol, expertIdx);
    }

    [Fact]
    public void Uniform_routing_has_a_balance_loss_of_k()
    {
        // Zero router weights: every p_e = 1/E and ties go to the lowest experts, so f = (1, 1, 0, 0, 0) and
        // aux = E * sum f_e / E = k.
        var config = new MoeConfig { NumExperts = E, ExpertsPerToken = K, ExpertIntermediateSize = Ff, MoeLayers = [true] };
        var layer = new MoeLayer(config, D, N, Router, Enumerable.Range(0, E).Select(Gate).ToArray(),
            Enumerable.Range(0, E).Select(Up).ToArray(), Enumerable.Range(0, E).Select(Down).ToArray());
        layer.Forward(new float[Total], Reference.RandomFloats(new Random(4), N * D, 1), N, new float[N * D], 1);
        Assert.Equal(K, layer.LastBalanceLoss, 6);
        Assert.Equal(Math.Log(E) * Math.Log(E), layer.LastZLoss, 5);
    }

    // Float64 forward from the definitions: softmax router, top-k, optional renormalisation, scaling, SwiGLU experts;
    // aux = E * sum_e (count_e / n) * mean_t p_te; z = mean_t logsumexp_t^2.
    private static (double[] Out, double Aux, double Z) Forward(MoeConfig c, double[] w, double[] x)
    {
        var output = new double[N * D];
        var counts = new double[E];
        var meanP = new double[E];
        double z = 0;
        for (int t = 0; t < N; t++)
        {
            var (p, lse) = RouterProbs(w, x, t);
            z += lse * lse;
            for (int e = 0; e < E; e++) meanP[e] += p[e] / N;
            int[] top = Enumerable.Range(0, E).OrderByDescending(e => p[e]).ThenBy(e => e).Take(K).ToArray();
            double norm = c.NormTopKProb ? top.Sum(e => p[e]) : 1;
            foreach (int e in top)
            {
                counts[e]++;
                double weight = p[e] / norm * c.RoutedScalingFactor;
                var h = new double[Ff];
                for (int i = 0; i < Ff; i++)
                {
                    double gsum = 0, usum = 0;
                    for (int j = 0; j < D; j++)
                    {
                        gsum += w[Gate(e) + i * D + j] * x[t * D + j];
                        usum += w[Up(e) + i * D + j] * x[t * D + j];
                    }
                    h[i] = gsum / (1 + Math.Exp(-gsum)) * usum;
                }
                for (int o = 0; o < D; o++)
                {
                    double s = 0;
                    for (int i = 0; i < Ff; i++) s += w[Down(e) + o * Ff + i] * h[i];
                    output[t * D + o] += weight * s;
                }
            }
        }
        double aux = E * Enumerable.Range(0, E).Sum(e => counts[e] / N * meanP[e]);
        return (output, aux, z / N);
    }

    private static (double[] P, double Lse) RouterProbs(double[] w, double[] x, int t)
    {
        var logits = new double[E];
        for (int e = 0; e < E; e++)
            for (int j = 0; j < D; j++) logits[e] += w[Router + e * D + j] * x[t * D + j];
        double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
        return (logits.Select(l => Math.Exp(l - max) / sum).ToArray(), max + Math.Log(sum));
    }

    private static double MinRoutingGap(double[] w, double[] x)
    {
        double gap = double.MaxValue;
        for (int t = 0; t < N; t++)
        {
            var sorted = RouterProbs(w, x, t).P.OrderDescending().ToArray();
            gap = Math.Min(gap, sorted[K - 1] - sorted[K]);
        }
        return gap;
    }
}
