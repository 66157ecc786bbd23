using Llada.Diffusion;
using Llada.Evaluation;
using Llada.Model;
using Llada.Training;

namespace Llada.Tests.Evaluation;

public sealed class EvaluatorTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static EvalTask Task(EvalTaskType type, params EvalItem[] items) => new("t", type, "t.jsonl", items);

    private static EvaluatedModel Model(IMaskPredictor p, ModelKind kind = ModelKind.Diffusion) =>
        new(p, kind, EvalFakes.Tokenizer, EvalFakes.Eos, "fake");

    private static GenerationOptions Greedy(int genLength) =>
        new() { GenLength = genLength, Steps = genLength, BlockLength = genLength, EosTokenId = EvalFakes.Eos, EndOfTurnTokenId = EvalFakes.Eot };

    [Theory]
    [InlineData(10, 16, true)]
    [InlineData(40, 16, true)]
    [InlineData(40, 16, false)]
    [InlineData(7, 5, false)]
    public void Windows_score_every_token_once_with_all_preceding_context_that_fits(int n, int maxLen, bool withBos)
    {
        int[] text = Enumerable.Range(100, n).ToArray();
        var scored = new List<int>();
        foreach (var (context, target) in Evaluator.Windows(text, withBos ? 1 : null, maxLen))
        {
            Assert.True(context.Length + target.Length <= maxLen);
            int first = target.Span[0];
            scored.AddRange(target.ToArray());
            if (context.Span[0] == 1) Assert.Equal(100, first); // BOS only before the first token
            else
            {
                // Context is the tokens right before the target, as many as fit.
                Assert.Equal(Enumerable.Range(first - context.Length, context.Length), context.ToArray());
                Assert.Equal(scored.Count == target.Length ? 1 : maxLen - target.Length, context.Length);
            }
        }
        Assert.Equal(text.Skip(withBos ? 0 : 1), scored);
    }

    [Fact]
    public void Diffusion_perplexity_of_a_uniform_predictor_is_the_vocabulary_size()
    {
        // Every Eq. 6 term is (L/l) * l * log(1/V): the bound is exactly log V per token with zero variance.
        var evaluator = new Evaluator(Model(new ContextFreePredictor(new float[EvalFakes.Vocab])), new EvaluationOptions { McNum = 8, BatchSize = 4 });
        var result = evaluator.Run(Task(EvalTaskType.Perplexity, new PerplexityItem(1, "t", null, "In the beginning God created the heaven and the earth.")), null, Ct);
        var m = result.Metrics().ToDictionary(x => x.Name);
        Assert.True(result.Bound);
        Assert.Equal(Math.Log(EvalFakes.Vocab), m["nats_per_token"].Value, 1e-9);
        Assert.Equal(EvalFakes.Vocab, m["perplexity"].Value, 1e-6);
        Assert.Equal(Math.Log2(EvalFakes.Vocab), m["bits_per_token"].Value, 1e-9);
        Assert.Equal(0, m["nats_per_token"].StandardError!.Value, 1e-9);
        Assert.Equal(EvalFakes.Tokenizer.Encode("In the beginning God created the heaven and the earth.").Length, result.TokenCount);
    }

    [Fact]
    public void Diffusion_bound_is_unbiased_for_a_context_free_predictor()
    {
        // For a predictor that ignores its input, E[(L/l) sum over l masked log q(x_i)] = sum_i log q(x_i) exactly.
        var random = new Random(5);
        var logits = Enumerable.Range(0, EvalFakes.Vocab).Select(_ => (float)(random.NextDouble() * 6)).ToArray();
        var predictor = new ContextFreePredictor(logits, maxSeq: 24);
        const string text = "And God said, Let there be light: and there was light. And God saw the light, that it was good.";
        var evaluator = new Evaluator(Model(predictor), new EvaluationOptions { McNum = 64, BatchSize = 16, Seed = 3 });
        var item = evaluator.Run(Task(EvalTaskType.Perplexity, new PerplexityItem(1, "t", null, text)), null, Ct).Items.Single();
        int[] ids = EvalFakes.Tokenizer.Encode(text);
        Assert.True(ids.Length > 23, "the text must need several windows");
        double exact = -ids.Sum(predictor.LogProbability);
        Assert.Equal(ids.Length, item.Tokens);
        Assert.True(item.StandardError > 0);
        Assert.True(Math.Abs(item.Nll!.Value - exact) < 4 * item.StandardError, $"bound {item.Nll} ± {item.StandardError} vs exact {exact}");
    }

    [Fact]
    public void Autoregressive_perplexity_equals_a_prefix_by_prefix_computation()
    {
        var shape = ModelShape.FromConfig(SyntheticCheckpoint.Config(dModel: 16, nLayers: 2, nHeads: 2, mlp: 24, vocab: EvalFakes.Vocab, maxSeq: 32)
            with { MaskTokenId = EvalFakes.Mask, EosTokenId = EvalFakes.Eos, PadTokenId = EvalFakes.Eos });
        var model = new TrainableModel(shape, maxBatch: 1, maxSeqLen: 32, seed: 11) { Causal = true };
        // Scale weights up so the distribution is far from uniform.
        foreach (ref float w in model.Parameters.AsSpan()) w *= 8;
        const string text = "The LORD is my shepherd; I shall not want.";
        var result = new Evaluator(Model(model, ModelKind.Autoregressive), new EvaluationOptions())
            .Run(Task(EvalTaskType.Perplexity, new PerplexityItem(1, "t", null, text)), null, Ct);

        int[] ids = [EvalFakes.Tokenizer.BosTokenId!.Value, .. EvalFakes.Tokenizer.Encode(text)];
        double nll = 0;
        var logits = new float[EvalFakes.Vocab];
        for (int t = 1; t < ids.Length; t++)
        {
            // Reference: a forward pass over the prefix alone, reading its last position.
            model.Forward(ids.AsSpan(0, t), 1, t, [], [t - 1], logits, Ct);
            double max = logits.Max(), lse = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
            nll -= logits[ids[t]] - lse;
        }
        var m = result.Metrics().ToDictionary(x => x.Name);
        Assert.False(result.Bound);
        Assert.Equal(ids.Length - 1, result.TokenCount);
        Assert.Equal(nll / (ids.Length - 1), m["nats_per_token"].Value, 1e-4);
        Assert.Null(m["perplexity"].StandardError);
    }

    private static ChoiceItem Mc(string[] choices, int answer) => new(1, "t", null, "Pick one.", choices, answer);

    [Theory]
    [InlineData(ModelKind.Diffusion)]
    [InlineData(ModelKind.Autoregressive)]
    public void Choice_accuracy_against_a_rigged_predictor(ModelKind kind)
    {
        var tok = EvalFakes.Tokenizer;
        foreach (string digit in new[] { "1", "2", "3", "4", "5", "6", "7", "8" }) Assert.Single(tok.Encode(digit));
        var predictor = ContextFreePredictor.Favouring([tok.Encode("3")[0]]);
        var task = Task(EvalTaskType.Choice,
            Mc(["1", "2", "3", "4"], 2),  // the favoured "3" is right
            Mc(["3", "5", "6", "7"], 1),  // the favoured "3" is wrong
            Mc(["5", "6", "7", "8"], 0),  // a four-way tie: the first choice wins, which is right
            Mc(["5", "6", "7", "8"], 3)); // a tie again, now wrong
        var evaluator = new Evaluator(Model(predictor, kind), new EvaluationOptions { McNum = 4, BatchSize = 2, ChatTemplate = false });
        var result = evaluator.Run(task, null, Ct);
        Assert.Equal([2, 0, 0, 0], result.Items.Select(i => i.Predicted!.Value));
        Assert.Equal([true, false, true, false], result.Items.Select(i => i.Correct!.Value));
        var accuracy = result.Metrics().Single();
        Assert.Equal(("accuracy", 0.5, 0.25), (accuracy.Name, accuracy.Value, accuracy.StandardError!.Value)); // sqrt(.5 .5 / 4)
        // Single-token answers: the Eq. 6 bound has l = L = 1 and is exact, as the AR score is.
        Assert.Equal(predictor.LogProbability(tok.Encode("3")[0]), result.Items[0].Scores![2], 1e-9);
        Assert.Equal(predictor.LogProbability(tok.Encode("1")[0]), result.Items[0].Scores![0], 1e-9);
    }

    [Fact]
    public void Generate_scores_known_outputs_by_exact_contains_and_regex()
    {
        var tok = EvalFakes.Tokenizer;
        int[] script = tok.Encode("42");
        var predictor = new ScriptedDiffusionPredictor(script, genLength: 8);
        GenerateItem G(string prompt, string[] accept, MatchRule match = MatchRule.Exact, string? regex = null) =>
            new(1, "t", null, prompt, accept, regex, match);
        var task = Task(EvalTaskType.Generate,
            G("What is 40 + 2?", ["42"]),
            G("What is 40 + 3?", ["43"]),
            G("Name a number.", ["41", " 42 "]),
            G("Digit?", ["4"], MatchRule.Contains),
            G("Two digits?", [], MatchRule.Regex, @"^4\d$"),
            G("Five?", [], MatchRule.Regex, "^5"));
        var evaluator = new Evaluator(Model(predictor), new EvaluationOptions { BatchSize = 4, Generation = _ => Greedy(8) });
        var result = evaluator.Run(task, null, Ct);
        Assert.All(result.Items, i => Assert.Equal("42", i.Output));
        Assert.Equal([true, false, true, true, true, false], result.Items.Select(i => i.Correct!.Value));
        Assert.Equal(4, predictor.LargestBatch); // prompts are generated four at a time
        Assert.Equal(2 * 8, predictor.Batches);   // two batches of 8 steps
    }

    [Fact]
    public void Generate_on_an_autoregressive_model_decodes_left_to_right()
    {
        var tok = EvalFakes.Tokenizer;
        int[] prompt = tok.EncodeChat([new Llada.Tokenization.ChatMessage("user", "What is 40 + 2?")]);
        int[] answer = tok.Encode("42 apples");
        var chain = new Dictionary<int, int> { [prompt[^1]] = answer[0] };
        for (int i = 0; i + 1 < answer.Length; i++) chain[answer[i]] = answer[i + 1];
        var evaluator = new Evaluator(Model(new ChainPredictor(chain), ModelKind.Autoregressive),
            new EvaluationOptions { Generation = _ => Greedy(16) });
        var result = evaluator.Run(Task(EvalTaskType.Generate,
            new GenerateItem(1, "t", null, "What is 40 + 2?", ["42 apples"], null, MatchRule.Exact)), null, Ct);
        Assert.Equal("42 apples", result.Items.Single().Output);
        Assert.True(result.Items.Single().Correct);
    }

    [Fact]
    public void Cancellation_returns_the_finished_items_marked_incomplete()
    {
        using var cts = new CancellationTokenSource();
        var predictor = new ContextFreePredictor(new float[EvalFakes.Vocab]) { OnCall = n => { if (n == 3) cts.Cancel(); } };
        var items = Enumerable.Range(0, 5).Select(i => (EvalItem)Mc(["1", "2"], 0)).ToArray();
        var result = new Evaluator(Model(predictor), new EvaluationOptions { McNum = 1, ChatTemplate = false })
            .Run(Task(EvalTaskType.Choice, items), null, cts.Token);
        Assert.False(result.Complete);
        Assert.Equal(1, result.Count); // item 0 used calls 1-2; item 1 was cancelled at call 3
        Assert.Equal(5, result.Total);
    }

    [Fact]
    public void Cfg_is_refused_for_an_autoregressive_model()
    {
        var e = Assert.Throws<ArgumentException>(() =>
            new Evaluator(Model(new ContextFreePredictor(new float[EvalFakes.Vocab]), ModelKind.Autoregressive), new EvaluationOptions { CfgScale = 1 }));
        Assert.Contains("cfg_scale applies to diffusion models", e.Message);
    }
}
