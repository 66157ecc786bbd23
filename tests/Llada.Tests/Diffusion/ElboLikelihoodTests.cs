using Llada.Diffusion;

namespace Llada.Tests.Diffusion;

public class ElboLikelihoodTests
{
    private const int Vocab = 12, Mask = 11;
    private static readonly int[] Prompt = [3, 1, 4];
    private static readonly int[] Response = [1, 5, 9, 2];

    /// <summary>
    /// Eq. 6 computed exactly: average over l = 1..L and over every subset of exactly l response positions of
    /// (L / l) * sum over the subset of log softmax(logits)[r_i], with the CFG combination when asked.
    /// </summary>
    private static double ExactBound(RowLogits model, int[] prompt, int[] response, double cfg)
    {
        int p = prompt.Length, len = response.Length;
        var c = new float[Vocab];
        var u = new float[Vocab];
        double total = 0;
        for (int l = 1; l <= len; l++)
        {
            double sum = 0;
            int subsets = 0;
            for (int bits = 0; bits < 1 << len; bits++)
            {
                if (int.PopCount(bits) != l) continue;
                subsets++;
                int[] row = [.. prompt, .. response];
                for (int i = 0; i < len; i++) if ((bits >> i & 1) != 0) row[p + i] = Mask;
                int[] unconditional = [.. row];
                for (int i = 0; i < p; i++) unconditional[i] = Mask;
                double term = 0;
                for (int i = 0; i < len; i++)
                {
                    if ((bits >> i & 1) == 0) continue;
                    model(row, p + i, c);
                    model(unconditional, p + i, u);
                    double[] logits = Enumerable.Range(0, Vocab)
                        .Select(v => cfg > 0 ? u[v] + (cfg + 1) * ((double)c[v] - u[v]) : c[v]).ToArray();
                    double max = logits.Max();
                    term += logits[response[i]] - max - Math.Log(logits.Sum(x => Math.Exp(x - max)));
                }
                sum += (double)len / l * term;
            }
            total += sum / subsets;
        }
        return total / len;
    }

    /// <summary>
    /// The independent-masking (Eq. 3/5) form computed exactly: E over t ~ U(0, 1) and independent masks with
    /// probability t of (1/t) * sum over masked i of log p(r_i | ...), i.e. the sum over every subset S of
    /// integral_0^1 t^(|S| - 1) (1 - t)^(L - |S|) dt times the subset's log-likelihood sum; the integral is done by
    /// expanding (1 - t)^(L - k) binomially.
    /// </summary>
    private static double ExactMaskRateBound(RowLogits model, int[] prompt, int[] response)
    {
        int p = prompt.Length, len = response.Length;
        var logits = new float[Vocab];
        double total = 0;
        for (int bits = 1; bits < 1 << len; bits++)
        {
            int k = int.PopCount(bits);
            double integral = 0, binomial = 1;
            for (int j = 0; j <= len - k; j++)
            {
                integral += (j % 2 == 0 ? 1 : -1) * binomial / (k + j);
                binomial = binomial * (len - k - j) / (j + 1);
            }
            int[] row = [.. prompt, .. response];
            for (int i = 0; i < len; i++) if ((bits >> i & 1) != 0) row[p + i] = Mask;
            double term = 0;
            for (int i = 0; i < len; i++)
            {
                if ((bits >> i & 1) == 0) continue;
                model(row, p + i, logits);
                double max = logits.Max();
                term += logits[response[i]] - max - Math.Log(logits.Sum(x => Math.Exp(x - max)));
            }
            total += integral * term;
        }
        return total;
    }

    private static LikelihoodEstimate Estimate(FunctionPredictor predictor, int[] prompt, int[] response, LikelihoodOptions options) =>
        new ElboLikelihood(predictor).Estimate(prompt, response, options, TestContext.Current.CancellationToken);

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    public void Monte_carlo_estimate_agrees_with_exact_enumeration(double cfg)
    {
        var model = Fakes.Hash(3);
        double exact = ExactBound(model, Prompt, Response, cfg);
        var estimate = Estimate(new FunctionPredictor(Vocab, Mask, model) { Record = false }, Prompt, Response,
            new LikelihoodOptions { Samples = 4000, BatchSize = 32, CfgScale = cfg, Seed = 11 });
        Assert.Equal(4000, estimate.Samples);
        Assert.True(estimate.StandardError > 0);
        Assert.True(Math.Abs(estimate.LogLikelihood - exact) < 4 * estimate.StandardError,
            $"estimate {estimate.LogLikelihood:F4} +- {estimate.StandardError:F4}, exact {exact:F4}");
        Assert.True(estimate.StandardError < 0.05 * Math.Abs(exact), $"standard error {estimate.StandardError} is implausibly large");
    }

    [Fact]
    public void Eq6_and_the_independent_masking_form_have_the_same_exact_expectation()
    {
        var model = Fakes.Hash(3);
        Assert.Equal(ExactBound(model, Prompt, Response, 0), ExactMaskRateBound(model, Prompt, Response), 10);
    }

    [Theory]
    [InlineData(LikelihoodEstimator.MaskCount, false, 8000)]
    [InlineData(LikelihoodEstimator.MaskRate, true, 100000)]
    public void Other_estimators_agree_with_exact_enumeration(LikelihoodEstimator estimator, bool stratified, int samples)
    {
        var model = Fakes.Hash(3);
        double exact = estimator == LikelihoodEstimator.MaskRate ? ExactMaskRateBound(model, Prompt, Response) : ExactBound(model, Prompt, Response, 0);
        var estimate = Estimate(new FunctionPredictor(Vocab, Mask, model) { Record = false }, Prompt, Response,
            new LikelihoodOptions { Samples = samples, BatchSize = 50, Seed = 12, Estimator = estimator, Stratified = stratified });
        Assert.True(Math.Abs(estimate.LogLikelihood - exact) < 4 * estimate.StandardError,
            $"estimate {estimate.LogLikelihood:F4} +- {estimate.StandardError:F4}, exact {exact:F4}");
        Assert.True(estimate.StandardError < 0.05 * Math.Abs(exact), $"standard error {estimate.StandardError} is implausibly large");
    }

    [Fact]
    public void Independent_masking_draws_one_rate_per_row_and_never_masks_the_prompt()
    {
        var predictor = new FunctionPredictor(Vocab, Mask, Fakes.Hash());
        Estimate(predictor, Prompt, Response, new LikelihoodOptions { Samples = 400, BatchSize = 400, Seed = 5, Estimator = LikelihoodEstimator.MaskRate });
        var call = Assert.Single(predictor.Calls);
        var counts = new int[Response.Length + 1];
        for (int r = 0; r < call.Batch; r++)
        {
            int[] row = call.Row(r);
            Assert.Equal(Prompt, row[..3]);
            for (int i = 0; i < 4; i++) Assert.True(row[3 + i] == Mask || row[3 + i] == Response[i]);
            counts[row[3..].Count(t => t == Mask)]++;
        }
        // With t ~ U(0, 1) the number of masked tokens is uniform on 0..L (Beta-binomial(1, 1)): 80 rows each expected.
        Assert.All(counts, c => Assert.InRange(c, 50, 110));
    }

    [Fact]
    public void Standard_error_shrinks_as_one_over_root_n()
    {
        var predictor = new FunctionPredictor(Vocab, Mask, Fakes.Hash(5)) { Record = false };
        var small = Estimate(predictor, Prompt, Response, new LikelihoodOptions { Samples = 500, BatchSize = 20, Seed = 1 });
        var large = Estimate(predictor, Prompt, Response, new LikelihoodOptions { Samples = 4500, BatchSize = 20, Seed = 2 });
        double ratio = small.StandardError / large.StandardError; // sqrt(4500 / 500) = 3
        Assert.InRange(ratio, 2.6, 3.4);
    }

    [Fact]
    public void Each_batch_stratifies_l_masks_exactly_l_response_tokens_and_never_the_prompt()
    {
        var predictor = new FunctionPredictor(Vocab, Mask, Fakes.Hash());
        Estimate(predictor, Prompt, Response, new LikelihoodOptions { Samples = 12, BatchSize = 4, Seed = 3 });
        Assert.Equal(3, predictor.Calls.Count);
        foreach (var call in predictor.Calls)
        {
            Assert.Equal(4, call.Batch);
            Assert.Empty(call.KeyMask);
            Assert.Equal([3, 4, 5, 6], call.LogitPositions); // logits only for the response
            var levels = new List<int>();
            for (int r = 0; r < call.Batch; r++)
            {
                int[] row = call.Row(r);
                Assert.Equal(Prompt, row[..3]);
                for (int i = 0; i < 4; i++) Assert.True(row[3 + i] == Mask || row[3 + i] == Response[i]);
                levels.Add(row[3..].Count(t => t == Mask));
            }
            Assert.Equal([1, 2, 3, 4], levels.Order()); // L = batch = 4: evenly spaced l's cover 1..L once
        }
    }

    [Fact]
    public void Cfg_branch_masks_the_prompt_and_shares_the_response_mask()
    {
        var predictor = new FunctionPredictor(Vocab, Mask, Fakes.Hash());
        Estimate(predictor, Prompt, Response, new LikelihoodOptions { Samples = 6, BatchSize = 3, CfgScale = 2, Seed = 4 });
        Assert.Equal(2, predictor.Calls.Count);
        foreach (var call in predictor.Calls)
        {
            Assert.Equal(6, call.Batch);
            for (int r = 0; r < 3; r++)
            {
                int[] conditional = call.Row(r), unconditional = call.Row(3 + r);
                Assert.Equal(Prompt, conditional[..3]);
                Assert.Equal([Mask, Mask, Mask], unconditional[..3]);
                Assert.Equal(conditional[3..], unconditional[3..]);
            }
        }
    }

    [Fact]
    public void Same_seed_gives_the_same_estimate()
    {
        var predictor = new FunctionPredictor(Vocab, Mask, Fakes.Hash()) { Record = false };
        var options = new LikelihoodOptions { Samples = 64, BatchSize = 16, Seed = 9 };
        Assert.Equal(Estimate(predictor, Prompt, Response, options), Estimate(predictor, Prompt, Response, options));
        Assert.NotEqual(Estimate(predictor, Prompt, Response, options).LogLikelihood,
            Estimate(predictor, Prompt, Response, options with { Seed = 10 }).LogLikelihood);
    }

    [Fact]
    public void Multiple_choice_ranks_candidates_by_their_bound()
    {
        var model = Fakes.Hash(7);
        int[][] choices = [[1, 2, 3], [4, 4], [8, 0, 6, 2], [5]];
        var options = new LikelihoodOptions { Samples = 256, BatchSize = 32, Seed = 1 };
        var likelihood = new ElboLikelihood(new FunctionPredictor(Vocab, Mask, model) { Record = false });
        var ranked = likelihood.RankChoices(Prompt, choices, options, TestContext.Current.CancellationToken);
        int[] exactOrder = Enumerable.Range(0, choices.Length)
            .OrderByDescending(i => ExactBound(model, Prompt, choices[i], 0)).ToArray();
        Assert.Equal(exactOrder, ranked.Select(c => c.Index));
        for (int i = 0; i < ranked.Count; i++)
            Assert.Equal(likelihood.Estimate(Prompt, choices[ranked[i].Index], options, TestContext.Current.CancellationToken),
                ranked[i].Estimate);
    }

    [Fact]
    public void A_one_token_response_is_scored_exactly()
    {
        // L = 1: l = 1 and the single position is always masked, so every sample is the exact log-probability.
        var model = Fakes.Hash(2);
        var estimate = Estimate(new FunctionPredictor(Vocab, Mask, model), Prompt, [6], new LikelihoodOptions { Samples = 5 });
        Assert.Equal(ExactBound(model, Prompt, [6], 0), estimate.LogLikelihood, 12);
        Assert.Equal(0, estimate.StandardError, 12);
    }

    [Theory]
    [InlineData(new int[0], "the response is empty")]
    [InlineData(new[] { 1, Mask }, "response token 1 is the mask token")]
    [InlineData(new[] { 1, 12 }, "response token 1 is 12, outside the vocabulary [0, 12)")]
    public void Invalid_inputs_are_rejected_with_a_clear_message(int[] response, string message)
    {
        var predictor = new FunctionPredictor(Vocab, Mask, Fakes.Hash());
        var error = Assert.Throws<ArgumentException>(() => Estimate(predictor, Prompt, response, new LikelihoodOptions()));
        Assert.Contains(message, error.Message);
        var tooLong = new FunctionPredictor(Vocab, Mask, Fakes.Hash(), maxSequenceLength: 5);
        Assert.Contains("exceed the model's max_sequence_length 5",
            Assert.Throws<ArgumentException>(() => Estimate(tooLong, Prompt, Response, new LikelihoodOptions())).Message);
    }
}
