using Llada.Diffusion;
using Llada.Numerics;

namespace Llada.Tests.Diffusion;

public class TransferScheduleTests
{
    [Fact]
    public void Matches_the_reference_formula_and_commits_every_mask()
    {
        for (int n = 0; n <= 70; n++)
            for (int steps = 1; steps <= 24; steps++)
            {
                int total = 0;
                for (int s = 0; s < steps; s++)
                {
                    int k = TransferSchedule.TokensAtStep(n, steps, s);
                    int expected = (int)Math.Floor((double)n / steps) + (s < n - steps * (n / steps) ? 1 : 0);
                    Assert.Equal(expected, k);
                    if (s > 0) Assert.True(k <= TransferSchedule.TokensAtStep(n, steps, s - 1));
                    total += k;
                }
                Assert.Equal(n, total);
            }
    }
}

public class ReverseProcessTests
{
    private const int Vocab = 16, Mask = 15, Eos = 13, Eot = 14;

    private static GenerationOptions Options(int gen, int steps, int block) =>
        new() { GenLength = gen, Steps = steps, BlockLength = block, EosTokenId = Eos };

    public static TheoryData<int, int, int, double, double, Remasking, bool, bool> Configurations => new()
    {
        { 12, 12, 12, 0, 0, Remasking.LowConfidence, false, false },
        { 12, 6, 4, 0, 0, Remasking.LowConfidence, false, false },
        { 12, 3, 4, 0, 0, Remasking.LowConfidence, false, false },   // several tokens per step
        { 12, 24, 12, 0, 0, Remasking.LowConfidence, false, false }, // more steps than tokens: empty steps
        { 12, 12, 4, 0, 1.5, Remasking.LowConfidence, false, false },
        { 12, 6, 6, 0, 0, Remasking.LowConfidence, true, true },
        { 12, 8, 3, 0.7, 0, Remasking.LowConfidence, false, true },
        { 12, 12, 6, 1.3, 0.5, Remasking.LowConfidence, true, false },
        { 12, 6, 4, 0, 0, Remasking.Random, false, false },
        { 12, 6, 12, 0.9, 0, Remasking.Random, false, true },
    };

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Matches_a_naive_whole_canvas_reference(int gen, int steps, int block, double temperature, double cfg,
        Remasking remasking, bool logitsEosInf, bool confidenceEosEotInf)
    {
        int[] prompt = [3, 1, 4, 1, 5];
        var options = Options(gen, steps, block) with
        {
            Temperature = temperature, CfgScale = cfg, Remasking = remasking, LogitsEosInf = logitsEosInf,
            ConfidenceEosEotInf = confidenceEosEotInf, EndOfTurnTokenId = Eot, Seed = 7,
        };
        var model = Fakes.Hash();
        int[] expected = NaiveSampler.Generate(model, Vocab, Mask, prompt, options);
        var result = new ReverseProcess(new FunctionPredictor(Vocab, Mask, model)).Run(prompt, options);
        Assert.Equal(expected, result.Sequences[0]);
        Assert.DoesNotContain(Mask, result.Sequences[0]);
    }

    [Fact]
    public void Commits_the_k_most_confident_masked_positions_with_lowest_position_on_ties()
    {
        // Position i proposes token 3 with logit strength[i] against zeros: equal strengths give bitwise-equal
        // logit rows, hence exactly tied confidences.
        double[] strength = [1, 3, 3, 0.5, 3, 1, 2, 1, 3, 0.5, 2, 1];
        var predictor = new FunctionPredictor(Vocab, Mask, (row, pos, logits) =>
        {
            logits.Clear();
            int i = pos - 2;
            if (i >= 0) logits[3] = (float)strength[i];
        });
        var steps = new List<ReverseProcessStep>();
        var options = Options(12, 5, 12);
        new ReverseProcess(predictor).Run([0, 1], options, new SyncProgress<ReverseProcessStep>(steps.Add));

        int[] order = Enumerable.Range(0, 12).OrderByDescending(i => strength[i]).ThenBy(i => i).ToArray();
        Assert.Equal(5, steps.Count);
        int taken = 0;
        for (int s = 0; s < 5; s++)
        {
            int k = TransferSchedule.TokensAtStep(12, 5, s);
            Assert.Equal(order.Skip(taken).Take(k).Order(), steps[s].Committed.Select(c => c.Position).Order());
            Assert.All(steps[s].Committed, c => Assert.Equal(3, c.TokenId));
            taken += k;
        }
    }

    [Fact]
    public void Committed_tokens_and_the_prompt_never_change()
    {
        var predictor = Fakes.HashPredictor();
        var steps = new List<ReverseProcessStep>();
        int[] prompt = [2, 7, 1, 8];
        var result = new ReverseProcess(predictor).Run(prompt, Options(16, 16, 16) with { Temperature = 1 },
            new SyncProgress<ReverseProcessStep>(steps.Add));
        int[] previous = Enumerable.Repeat(Mask, 16).ToArray();
        foreach (var step in steps)
        {
            for (int i = 0; i < 16; i++)
                if (previous[i] != Mask) Assert.Equal(previous[i], step.Canvas[i]);
            Assert.Equal(step.Committed.Count, step.Canvas.Count(t => t != Mask) - previous.Count(t => t != Mask));
            previous = step.Canvas;
        }
        Assert.Equal(result.Sequences[0], previous);
        Assert.All(predictor.Calls, call => Assert.Equal(prompt, call.Tokens[..4]));
    }

    [Fact]
    public void Semi_autoregressive_blocks_finish_in_order_and_pure_diffusion_spans_the_canvas()
    {
        var steps = new List<ReverseProcessStep>();
        new ReverseProcess(Fakes.HashPredictor()).Run([1, 2], Options(12, 6, 4), new SyncProgress<ReverseProcessStep>(steps.Add));
        Assert.Equal(6, steps.Count);
        foreach (var step in steps)
        {
            int start = step.Block * 4;
            Assert.All(step.Committed, c => Assert.InRange(c.Position, start, start + 3));
            for (int i = 0; i < 12; i++)
            {
                if (i >= start + 4) Assert.Equal(Mask, step.Canvas[i]);           // later blocks untouched
                if (i < start) Assert.NotEqual(Mask, step.Canvas[i]);              // earlier blocks done
            }
            if (step.StepInBlock == 1) Assert.DoesNotContain(Mask, step.Canvas[start..(start + 4)]);
        }

        steps.Clear();
        new ReverseProcess(Fakes.HashPredictor()).Run([1, 2], Options(12, 3, 12), new SyncProgress<ReverseProcessStep>(steps.Add));
        Assert.Equal(3, steps.Count);
        Assert.All(steps, s => Assert.Equal(4, s.Committed.Count));
        Assert.Contains(steps[0].Committed, c => c.Position >= 4); // not confined to the left
    }

    [Fact]
    public void Autoregressive_schedule_commits_left_to_right_one_token_per_step()
    {
        var steps = new List<ReverseProcessStep>();
        var result = new ReverseProcess(Fakes.HashPredictor()).Run([1, 2, 3],
            Options(9, 3, 9).AsAutoregressive() with { Remasking = Remasking.Random, Temperature = 0.5 },
            new SyncProgress<ReverseProcessStep>(steps.Add));
        Assert.Equal(9, result.ForwardPasses);
        Assert.Equal(Enumerable.Range(0, 9), steps.Select(s => s.Committed.Single().Position));
    }

    [Fact]
    public void Cfg_runs_both_branches_in_one_call_with_the_prompt_masked_in_the_unconditional_row()
    {
        // Conditional rows favour token 2 (0.9 vs 1.0 is close); unconditional rows favour token 1 strongly.
        // u + 3 (c - u) for cfg 2: token 1 -> 1 + 3 (1 - 1) = 1; token 2 -> 0 + 3 (0.9 - 0) = 2.7.
        var predictor = new FunctionPredictor(Vocab, Mask, (row, pos, logits) =>
        {
            logits.Clear();
            bool unconditional = row[0] == Mask;
            logits[1] = 1f;
            logits[2] = unconditional ? 0f : 0.9f;
        });
        int[] prompt = [4, 5, 6];
        var plain = new ReverseProcess(predictor).Run(prompt, Options(4, 2, 4));
        Assert.All(plain.Sequences[0], t => Assert.Equal(1, t));
        Assert.All(predictor.Calls, c => Assert.Equal(1, c.Batch));

        predictor.Calls.Clear();
        var guided = new ReverseProcess(predictor).Run(prompt, Options(4, 2, 4) with { CfgScale = 2 });
        Assert.All(guided.Sequences[0], t => Assert.Equal(2, t));
        Assert.Equal(2, guided.ForwardPasses);
        foreach (var call in predictor.Calls)
        {
            Assert.Equal(2, call.Batch);
            int[] conditional = call.Row(0), unconditional = call.Row(1);
            Assert.Equal(prompt, conditional[..3]);
            Assert.Equal([Mask, Mask, Mask], unconditional[..3]);
            Assert.Equal(conditional[3..], unconditional[3..]);
        }
    }

    [Fact]
    public void Logits_eos_inf_keeps_eos_out_of_the_canvas()
    {
        var predictor = new FunctionPredictor(Vocab, Mask, (row, pos, logits) =>
        {
            logits.Clear();
            logits[Eos] = 10;
            logits[pos % 5] = 1;
        });
        var options = Options(8, 4, 4) with { Temperature = 0.8 };
        Assert.All(new ReverseProcess(predictor).Run([9], options).Sequences[0], t => Assert.Equal(Eos, t));
        var result = new ReverseProcess(predictor).Run([9], options with { LogitsEosInf = true });
        Assert.DoesNotContain(Eos, result.Sequences[0]);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.5)]
    public void Confidence_eos_eot_inf_commits_eos_and_eot_candidates_last(double temperature)
    {
        // Positions 0 and 1 propose EOS and end-of-turn with near certainty, the others token 3 less surely.
        var predictor = new FunctionPredictor(Vocab, Mask, (row, pos, logits) =>
        {
            logits.Clear();
            int i = pos - 1;
            if (i == 0) logits[Eos] = 40;
            else if (i == 1) logits[Eot] = 40;
            else logits[3] = 30;
        });
        var options = Options(6, 6, 6) with { Temperature = temperature, EndOfTurnTokenId = Eot };
        var steps = new List<ReverseProcessStep>();
        new ReverseProcess(predictor).Run([0], options, new SyncProgress<ReverseProcessStep>(steps.Add));
        Assert.Equal([0, 1], steps.Take(2).Select(s => s.Committed.Single().Position).Order());

        steps.Clear();
        var result = new ReverseProcess(predictor).Run([0], options with { ConfidenceEosEotInf = true },
            new SyncProgress<ReverseProcessStep>(steps.Add));
        Assert.Equal([2, 3, 4, 5, 0, 1], steps.Select(s => s.Committed.Single().Position));
        Assert.Equal([Eos, Eot, 3, 3, 3, 3], result.Sequences[0]);
        Assert.Equal(Array.Empty<int>(), result.Answer().ToArray());
    }

    [Fact]
    public void Gumbel_max_samples_softmax_of_logits_over_temperature()
    {
        // Index 6 (the mask token, say) is excluded from the candidates.
        float[] logits = [1.0f, 0.2f, -0.5f, 2.0f, float.NegativeInfinity, 0.0f, 3.0f];
        const double temperature = 0.7;
        const int draws = 40000;
        var counts = new int[logits.Length];
        var random = CounterRandom.For(123, 0);
        for (int d = 0; d < draws; d++) counts[CandidateSampling.GumbelMax(logits, 6, temperature, ref random)]++;
        logits[6] = float.NegativeInfinity;
        AssertMatchesSoftmax(logits, temperature, counts, draws);
    }

    [Fact]
    public void Sampling_through_the_reverse_process_follows_softmax_over_temperature_across_seeds()
    {
        float[] fixedLogits = [0.5f, 1.5f, -1f, 1f, 0f, 0.3f, -2f, 0.8f];
        var predictor = new FunctionPredictor(8, 7, (row, pos, logits) => fixedLogits.CopyTo(logits)) { Record = false };
        const double temperature = 1.5;
        const int draws = 3000;
        var counts = new int[8];
        var sampler = new ReverseProcess(predictor);
        for (int seed = 0; seed < draws; seed++)
            counts[sampler.Run([0], new GenerationOptions
            {
                GenLength = 1, Steps = 1, BlockLength = 1, EosTokenId = 6, Temperature = temperature, Seed = seed,
            }).Sequences[0][0]]++;
        float[] candidateLogits = [.. fixedLogits];
        candidateLogits[7] = float.NegativeInfinity; // the mask token is never a candidate
        AssertMatchesSoftmax(candidateLogits, temperature, counts, draws);
    }

    private static void AssertMatchesSoftmax(float[] logits, double temperature, int[] counts, int draws)
    {
        double max = logits.Max();
        double[] weights = logits.Select(l => Math.Exp((l - max) / temperature)).ToArray();
        double total = weights.Sum();
        double chiSquare = 0;
        for (int v = 0; v < logits.Length; v++)
        {
            double p = weights[v] / total, expected = draws * p;
            Assert.InRange(counts[v], expected - 4.5 * Math.Sqrt(expected * (1 - p)) - 0.5, expected + 4.5 * Math.Sqrt(expected * (1 - p)) + 0.5);
            if (p > 0) chiSquare += (counts[v] - expected) * (counts[v] - expected) / expected;
        }
        Assert.True(chiSquare < 25, $"chi-square {chiSquare:F1} too large for {logits.Length} categories");
    }

    [Fact]
    public void Same_seed_gives_the_same_output_on_any_thread_count()
    {
        var options = Options(16, 8, 8) with { Temperature = 0.9, Remasking = Remasking.Random, CfgScale = 0.5, Seed = 42 };
        int saved = Parallelism.ThreadCount;
        try
        {
            Parallelism.ThreadCount = 1;
            var one = new ReverseProcess(Fakes.HashPredictor(record: false)).Run([[1, 2, 3], [4, 5]], options);
            Parallelism.ThreadCount = 3;
            var three = new ReverseProcess(Fakes.HashPredictor(record: false)).Run([[1, 2, 3], [4, 5]], options);
            var again = new ReverseProcess(Fakes.HashPredictor(record: false)).Run([[1, 2, 3], [4, 5]], options);
            var otherSeed = new ReverseProcess(Fakes.HashPredictor(record: false)).Run([[1, 2, 3], [4, 5]], options with { Seed = 43 });
            Assert.Equal(one.Sequences, three.Sequences);
            Assert.Equal(one.Sequences, again.Sequences);
            Assert.NotEqual(one.Sequences[0], otherSeed.Sequences[0]);
        }
        finally { Parallelism.ThreadCount = saved; }
    }

    [Fact]
    public void Forward_is_asked_only_for_the_active_blocks_masked_positions()
    {
        var predictor = Fakes.HashPredictor();
        int[] prompt = [1, 2, 3];
        var steps = new List<ReverseProcessStep>();
        new ReverseProcess(predictor).Run(prompt, Options(12, 6, 4), new SyncProgress<ReverseProcessStep>(steps.Add));
        Assert.Equal(6, predictor.Calls.Count);
        for (int c = 0; c < predictor.Calls.Count; c++)
        {
            var call = predictor.Calls[c];
            int[] expected = Enumerable.Range(steps[c].Block * 4, 4)
                .Where(i => call.Tokens[prompt.Length + i] == Mask).Select(i => prompt.Length + i).ToArray();
            Assert.Equal(expected, call.LogitPositions);
            Assert.Equal(call.Tokens.Length, call.SeqLen);
        }
    }

    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(0.8, 1.0)]
    public void Batched_generation_equals_per_prompt_generation_when_the_predictor_ignores_pads(double temperature, double cfg)
    {
        int[][] prompts = [[1, 2, 3], [4, 5, 6, 7, 8], [9]];
        var options = Options(8, 4, 4) with { Temperature = temperature, CfgScale = cfg, Seed = 5 };
        var predictor = Fakes.HashPredictor();
        var batched = new ReverseProcess(predictor).Run(prompts, options);
        Assert.All(predictor.Calls, call =>
        {
            Assert.Equal(3 * (cfg > 0 ? 2 : 1), call.Batch);
            Assert.Equal(13, call.SeqLen);
            Assert.Equal([false, false, true], call.KeyMask[..3]);       // row 0 has two pads
            Assert.Equal(Enumerable.Repeat(false, 4), call.KeyMask[26..30]); // row 2 has four pads
        });
        for (int r = 0; r < prompts.Length; r++)
        {
            // Random streams are keyed by row, so at temperature > 0 only row 0 is comparable with a lone call.
            if (temperature > 0 && r > 0) continue;
            var single = new ReverseProcess(Fakes.HashPredictor()).Run(prompts[r], options);
            Assert.Equal(single.Sequences[0], batched.Sequences[r]);
        }
    }

    [Fact]
    public void Cancellation_stops_between_steps()
    {
        using var cts = new CancellationTokenSource();
        var predictor = Fakes.HashPredictor();
        var progress = new SyncProgress<ReverseProcessStep>(s => { if (s.Step == 2) cts.Cancel(); });
        Assert.Throws<OperationCanceledException>(() =>
            new ReverseProcess(predictor).Generate([1], Options(8, 8, 8), progress, cts.Token));
        Assert.Equal(3, predictor.Calls.Count);
    }

    [Fact]
    public void Threshold_rule_commits_every_confident_candidate_and_at_least_one()
    {
        // Strengths give softmax probabilities e^a / (e^a + 15): a = 6 -> 0.964, a = 1 -> 0.153.
        double[] strength = [6, 1, 6, 1, 1, 6, 1, 1];
        var predictor = new FunctionPredictor(Vocab, Mask, (row, pos, logits) =>
        {
            logits.Clear();
            logits[3] = (float)strength[pos - 1];
        });
        var steps = new List<ReverseProcessStep>();
        var result = new ReverseProcess(predictor).Run([0], Options(8, 1, 4) with { Threshold = 0.9 },
            new SyncProgress<ReverseProcessStep>(steps.Add));
        // Block 0: {0, 2} then one at a time {1}, {3}; block 1: {5}, then {4}, {6}, {7}.
        Assert.Equal([[0, 2], [1], [3], [5], [4], [6], [7]], steps.Select(s => s.Committed.Select(c => c.Position).ToArray()));
        Assert.Equal(7, result.ForwardPasses);
    }

    [Fact]
    public void Threshold_and_factor_rules_pick_the_documented_prefix()
    {
        var threshold = new ThresholdCommit(0.8);
        Assert.Equal(3, threshold.CountToCommit([0.99, 0.9, 0.8, 0.7], 1));
        Assert.Equal(1, threshold.CountToCommit([0.5, 0.4], 2));
        Assert.Equal(0, threshold.CountToCommit([], 2));
        var factor = new FactorCommit(1.0);
        // bounds 1 - 1/(n+1): n=1: 0.5, n=2: 0.667, n=3: 0.75, n=4: 0.8
        Assert.Equal(3, factor.CountToCommit([0.9, 0.7, 0.75, 0.79], 1));
        Assert.Equal(4, factor.CountToCommit([0.9, 0.9, 0.9, 0.8], 1));
        Assert.Equal(1, factor.CountToCommit([0.3, 0.2], 1));
        Assert.Equal(2, ScheduledCommit.Instance.CountToCommit([0.1, 0.2, 0.3], 2));
    }

    [Fact]
    public void Factor_rule_decodes_in_fewer_steps_than_tokens()
    {
        var predictor = Fakes.HashPredictor();
        var result = new ReverseProcess(predictor).Run([1, 2], Options(16, 1, 8) with { Factor = 3 });
        Assert.DoesNotContain(Mask, result.Sequences[0]);
        Assert.InRange(result.ForwardPasses, 2, 15);
    }

    [Fact]
    public void Early_exit_stops_once_an_end_token_has_no_mask_before_it()
    {
        // Position 1 proposes EOS, every other position token 4; positions 0 and 1 are the surest, so step 0
        // commits them (two tokens per step) and the answer [4] is then fixed.
        var predictor = new FunctionPredictor(Vocab, Mask, (row, pos, logits) =>
        {
            logits.Clear();
            int genPos = pos - 1;
            logits[genPos == 1 ? Eos : 4] = genPos switch { 0 => 9, 1 => 8, _ => 5 };
        });
        var options = Options(12, 6, 4);
        var full = new ReverseProcess(predictor).Run([0], options);
        Assert.Equal(6, full.ForwardPasses);
        Assert.Equal([4, Eos, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4], full.Sequences[0]);
        var early = new ReverseProcess(predictor).Run([0], options with { EarlyExit = true });
        Assert.Equal(1, early.ForwardPasses);
        Assert.Equal([4, Eos, Eos, Eos, Eos, Eos, Eos, Eos, Eos, Eos, Eos, Eos], early.Sequences[0]);
        Assert.Equal([4], early.Answer().ToArray());
    }

    [Fact]
    public void Early_exit_waits_for_the_masks_before_the_end_token()
    {
        // The end-of-turn at position 2 is the surest proposal, so it is committed first while positions 0 and 1 are
        // still masked: the answer is not fixed until both are committed, one per step (they are the next surest).
        var predictor = new FunctionPredictor(Vocab, Mask, (row, pos, logits) =>
        {
            logits.Clear();
            int genPos = pos - 1;
            if (genPos == 2) logits[Eot] = 9;
            else logits[4 + pos % 3] = genPos switch { 0 => 8, 1 => 7, _ => 5 };
        });
        var options = Options(8, 8, 8) with { EndOfTurnTokenId = Eot };
        var full = new ReverseProcess(predictor).Run([0], options);
        var early = new ReverseProcess(predictor).Run([0], options with { EarlyExit = true });
        Assert.Equal(8, full.ForwardPasses);
        Assert.Equal(3, early.ForwardPasses);
        Assert.Equal([5, 6, Eot, Eos, Eos, Eos, Eos, Eos], early.Sequences[0]);
        Assert.Equal(full.Answer().ToArray(), early.Answer().ToArray());
    }

    public static TheoryData<int, int, int, double?, double?, int> EarlyExitCases => new()
    {
        { 16, 16, 16, null, null, 1 },
        { 16, 8, 4, null, null, 2 },
        { 24, 24, 8, null, null, 3 },
        { 16, 1, 8, 0.3, null, 4 },
        { 24, 1, 8, null, 2.0, 5 },
        { 16, 16, 4, null, null, 6 },
    };

    [Theory]
    [MemberData(nameof(EarlyExitCases))]
    public void Early_exit_keeps_every_text_answer_and_never_adds_passes(int gen, int steps, int block, double? threshold,
        double? factor, int salt)
    {
        // Hashed logits propose EOS and end-of-turn here and there; a batch of prompts covers rows settling early,
        // late and never.
        var predictor = Fakes.HashPredictor(salt: salt, record: false);
        var options = Options(gen, steps, block) with { Threshold = threshold, Factor = factor, EndOfTurnTokenId = Eot };
        int[][] prompts = [[1, 2], [3], [4, 5, 6], [7, 8], [9, 10, 11], [12]];
        var full = new ReverseProcess(predictor).Run(prompts, options);
        var early = new ReverseProcess(predictor).Run(prompts, options with { EarlyExit = true });
        for (int r = 0; r < prompts.Length; r++)
            Assert.Equal(full.Answer(r).ToArray(), early.Answer(r).ToArray());
        Assert.True(early.ForwardPasses <= full.ForwardPasses);
        Assert.DoesNotContain(Mask, early.Sequences.SelectMany(s => s));
    }

    [Fact]
    public void Early_exit_ends_rows_separately_in_a_batch()
    {
        // Only rows whose prompt starts with 0 propose EOS at position 1; the other row keeps generating.
        var predictor = new FunctionPredictor(Vocab, Mask, (row, pos, logits) =>
        {
            logits.Clear();
            logits[row[0] == 0 && pos - 1 == 1 ? Eos : 4 + pos % 3] = 5;
        });
        var options = Options(12, 6, 4) with { EarlyExit = true };
        var batched = new ReverseProcess(predictor).Run([[0], [1]], options);
        Assert.Equal(6, batched.ForwardPasses);
        Assert.All(predictor.Calls.Skip(2), call => Assert.Equal(1, call.Tokens[call.SeqLen])); // row 1 still sampled
        Assert.Equal(new ReverseProcess(predictor).Run([0], options).Sequences[0], batched.Sequences[0]);
        Assert.Equal(new ReverseProcess(predictor).Run([1], options).Sequences[0], batched.Sequences[1]);
        Assert.Equal([Eos, Eos, Eos, Eos], batched.Sequences[0][8..]);
        Assert.DoesNotContain(Eos, batched.Sequences[1]);
    }

    [Fact]
    public void Answer_is_cut_at_the_first_eos_or_end_of_turn()
    {
        Assert.Equal([5, 6], GenerationResult.CutAtEnd([5, 6, Eot, 7, Eos], Eos, Eot).ToArray());
        Assert.Equal([5, 6, Eot, 7], GenerationResult.CutAtEnd([5, 6, Eot, 7, Eos], Eos, null).ToArray());
        Assert.Equal([5, 6], GenerationResult.CutAtEnd([5, 6], Eos, Eot).ToArray());
    }

    public static TheoryData<GenerationOptions, int[], string> Invalid => new()
    {
        { Options(10, 10, 4), [1], "gen_length 10 is not a multiple of block_length 4 (the answer is split into blocks of equal length): use gen_length 8 or 12, or block_length 2 or 5" },
        { Options(6, 6, 8), [1], "gen_length 6 is not a multiple of block_length 8 (the answer is split into blocks of equal length): use gen_length 8, or block_length 6" },
        { Options(12, 5, 4), [1], "steps 5 is not a multiple of the number of blocks, 3 (gen_length 12 / block_length 4; each block gets the same steps): use steps 3 or 6" },
        { Options(12, 2, 4), [1], "use steps 3" },
        { Options(12, 0, 4), [1], "steps must be at least 1" },
        { Options(0, 1, 1), [1], "gen_length must be at least 1" },
        { Options(500, 500, 500), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], "exceeds the model's max_sequence_length 512" },
        { Options(4, 4, 4), [1, 16], "prompt 0 token 1 is 16, outside the vocabulary [0, 16)" },
        { Options(4, 4, 4), [1, Mask], "prompt 0 token 1 is the mask token" },
        { Options(4, 4, 4) with { EosTokenId = 20 }, [1], "eos_token_id 20 is outside the vocabulary" },
        { Options(4, 4, 4) with { EndOfTurnTokenId = -1 }, [1], "end-of-turn token id -1 is outside the vocabulary" },
        { Options(4, 4, 4) with { Temperature = -1 }, [1], "temperature must be finite and >= 0" },
        { Options(4, 4, 4) with { CfgScale = double.NaN }, [1], "cfg_scale must be finite" },
        { Options(4, 4, 4) with { Threshold = 1.5 }, [1], "threshold must be in (0, 1]" },
        { Options(4, 4, 4) with { Threshold = 0.9, Factor = 1 }, [1], "at most one of threshold and factor" },
        { Options(4, 4, 4) with { Factor = 1, Remasking = Remasking.Random }, [1], "they need remasking low_confidence" },
        { Options(4, 4, 4) with { Cache = KvCacheMode.Dual }, [1], "cache dual needs a predictor with a KV cache" },
        { Options(4, 4, 4) with { Cache = (KvCacheMode)7 }, [1], "unknown cache mode 7" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Invalid_settings_are_rejected_with_a_clear_message(GenerationOptions options, int[] prompt, string message)
    {
        var error = Assert.ThrowsAny<ArgumentException>(() => new ReverseProcess(Fakes.HashPredictor()).Run(prompt, options));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void Setting_errors_name_the_setting_and_read_without_a_parameter_suffix()
    {
        var error = Assert.Throws<InvalidSettingException>(() => Options(12, 5, 4).ValidateSettings());
        Assert.Equal("steps", error.ParamName);
        Assert.DoesNotContain("Parameter", error.Message);
        Assert.Equal("cfg_scale", Assert.Throws<InvalidSettingException>(() => (Options(4, 4, 4) with { CfgScale = -1 }).ValidateSettings()).ParamName);
    }

    [Fact]
    public void Setting_errors_use_the_callers_spelling_of_the_settings()
    {
        var error = Assert.Throws<InvalidSettingException>(() => Options(10, 10, 4).ValidateSettings(s => "--" + s.Replace('_', '-')));
        Assert.Equal("gen_length", error.ParamName);
        Assert.StartsWith("--gen-length 10 is not a multiple of --block-length 4", error.Message);
        Assert.EndsWith("use --gen-length 8 or 12, or --block-length 2 or 5", error.Message);
    }

    [Fact]
    public void Parallel_rules_do_not_need_steps_to_divide()
    {
        var result = new ReverseProcess(Fakes.HashPredictor()).Run([1], Options(8, 0, 4) with { Threshold = 0.5 });
        Assert.DoesNotContain(Mask, result.Sequences[0]);
    }
}

/// <summary>IProgress that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
