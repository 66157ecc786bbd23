using System.CommandLine;
using System.Text.Json;
using Llada.Diffusion;
using Llada.Reporting;

namespace Llada.Cli.Commands;

/// <summary>`llada score`: the Eq. 6 lower bound on log p(answer | prompt), or a multiple-choice ranking.</summary>
internal static class ScoreCommand
{
    public static Command Create()
    {
        var model = ModelSource.ModelOption();
        var prompt = new Option<string?>("--prompt", "-p") { Description = "Prompt text (chat template applied unless --no-chat-template)." };
        var answer = new Option<string?>("--answer", "-a") { Description = "Answer text to score." };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt as comma-separated token ids." };
        var answerIds = new Option<string?>("--answer-ids") { Description = "Answer as comma-separated token ids." };
        var choices = new Option<string[]>("--choices")
        {
            Description = "Several candidate answers (text) to rank, e.g. --choices Paris London Rome.",
            AllowMultipleArgumentsPerToken = true,
        };
        var noTemplate = new Option<bool>("--no-chat-template") { Description = "Encode --prompt as plain text (for base models)." };
        var mcNum = new Option<int>("--mc-num") { Description = "Monte Carlo samples (reference default 128).", DefaultValueFactory = _ => 128 };
        var batchSize = new Option<int>("--batch-size") { Description = "Samples per forward pass.", DefaultValueFactory = _ => 16 };
        var cfg = new Option<double>("--cfg-scale") { Description = "Classifier-free guidance for the likelihood (0 = off).", DefaultValueFactory = _ => 0.0 };
        var seed = new Option<int>("--seed") { Description = "Random seed of the masks.", DefaultValueFactory = _ => 0 };
        var threads = ModelSource.ThreadsOption();
        var compute = ModelSource.ComputeOption();
        var json = ModelSource.JsonOption();
        var command = new Command("score",
            "Estimate log p(answer | prompt) with LLaDA's likelihood bound (Eq. 6): mask l of the L answer tokens (l uniform), " +
            "weight by L/l, average over --mc-num samples; prints the estimate and its standard error.\n" +
            "Examples:\n  llada score --prompt \"What is the sum of 3 and 4?\" --answer 7\n" +
            "  llada score --prompt \"Spell 'dog'.\" --choices \"d o g\" \"c a t\"\n" +
            "  llada score --model DIR --prompt-ids 1,2 --answer-ids 3,4 --json")
        {
            model, prompt, answer, promptIds, answerIds, choices, noTemplate, mcNum, batchSize, cfg, seed, threads, compute, json,
        };
        CliAction.Set(command, (parse, ctx, token) =>
        {
            ModelSource.ApplyThreads(parse.GetValue(threads));
            var arithmetic = ModelSource.ParseCompute(parse.GetValue(compute));
            int mc = parse.GetValue(mcNum), bs = parse.GetValue(batchSize);
            if (mc < 1) throw new ArgumentException($"--mc-num must be at least 1 (got {mc})");
            if (bs < 1) throw new ArgumentException($"--batch-size must be at least 1 (got {bs})");
            string? pText = parse.GetValue(prompt), pIds = parse.GetValue(promptIds);
            if ((pText is null) == (pIds is null)) throw new ArgumentException("give exactly one of --prompt TEXT or --prompt-ids 1,2,3");
            string[] choiceTexts = parse.GetValue(choices) ?? [];
            string? aText = parse.GetValue(answer), aIds = parse.GetValue(answerIds);
            int given = (aText is null ? 0 : 1) + (aIds is null ? 0 : 1) + (choiceTexts.Length > 0 ? 1 : 0);
            if (given != 1) throw new ArgumentException("give exactly one of --answer TEXT, --answer-ids 1,2,3 or --choices A B ...");

            string dir = ModelSource.Resolve(parse.GetValue(model));
            if (ModelSource.IsAutoregressive(dir))
                return Task.FromResult(ScoreAutoregressive(dir, pText, pIds, aText, aIds, choiceTexts, parse.GetValue(noTemplate),
                    arithmetic, parse.GetValue(json), ctx, token));
            using var loaded = ModelSource.Load(dir, arithmetic, ctx.Error);
            int[] promptTokens = pIds is not null
                ? ModelSource.ParseIds(pIds, "--prompt-ids")
                : GenerateCommand.EncodePrompt(loaded.RequireTokenizer("use --prompt-ids"), pText!, parse.GetValue(noTemplate));
            var options = new LikelihoodOptions { Samples = mc, BatchSize = bs, CfgScale = parse.GetValue(cfg), Seed = parse.GetValue(seed) };
            var likelihood = new ElboLikelihood(loaded.Predictor);

            if (choiceTexts.Length > 0)
            {
                var tokenizer = loaded.RequireTokenizer("use --answer-ids");
                var encoded = choiceTexts.Select(c => EncodeAnswer(tokenizer, c, "--choices")).ToArray();
                var ranked = likelihood.RankChoices(promptTokens, encoded, options, token);
                if (parse.GetValue(json))
                    ctx.Output.WriteLine(JsonSerializer.Serialize(new
                    {
                        ranking = ranked.Select(r => new
                        {
                            index = r.Index, choice = choiceTexts[r.Index], log_likelihood = r.Estimate.LogLikelihood,
                            std_error = r.Estimate.StandardError,
                        }),
                        mc_num = mc,
                    }));
                else
                    foreach (var r in ranked)
                        ctx.Output.WriteLine($"{r.Estimate.LogLikelihood,10:0.000} ± {r.Estimate.StandardError:0.000}  {choiceTexts[r.Index]}");
                return Task.FromResult(0);
            }

            int[] answerTokens = aIds is not null
                ? ModelSource.ParseIds(aIds, "--answer-ids")
                : EncodeAnswer(loaded.RequireTokenizer("use --answer-ids"), aText!, "--answer");
            var estimate = likelihood.Estimate(promptTokens, answerTokens, options, token);
            if (parse.GetValue(json))
                ctx.Output.WriteLine(JsonSerializer.Serialize(new
                {
                    log_likelihood = estimate.LogLikelihood, std_error = estimate.StandardError, mc_num = estimate.Samples,
                }));
            else
                ctx.Output.WriteLine($"log p(answer | prompt) >= {estimate.LogLikelihood:0.000} ± {estimate.StandardError:0.000} " +
                                     $"(standard error; {Quantity.Of(estimate.Samples, "sample")}, {Quantity.Of(answerTokens.Length, "answer token")})");
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>The AR baseline's likelihood is exact (one causal forward pass), so there is no sampling and no error bar.</summary>
    private static int ScoreAutoregressive(string dir, string? pText, string? pIds, string? aText, string? aIds, string[] choiceTexts,
        bool noTemplate, Numerics.Bf16Arithmetic arithmetic, bool json, CommandContext ctx, CancellationToken token)
    {
        using var model = Llada.Evaluation.EvaluatedModel.Load(dir, Llada.Evaluation.ModelKind.Autoregressive);
        ModelSource.ApplyCompute(model.Predictor, arithmetic, ctx.Error);
        int[] promptTokens = pIds is not null
            ? ModelSource.ParseIds(pIds, "--prompt-ids")
            : GenerateCommand.EncodePrompt(model.Tokenizer, pText!, noTemplate);
        var likelihood = new Llada.Evaluation.AutoregressiveLikelihood(model.Predictor);
        if (choiceTexts.Length > 0)
        {
            var ranked = choiceTexts
                .Select((c, i) => (Index: i, LogLikelihood: likelihood.LogLikelihood(promptTokens, EncodeAnswer(model.Tokenizer, c, "--choices"), token)))
                .OrderByDescending(r => r.LogLikelihood).ToArray();
            if (json)
                ctx.Output.WriteLine(JsonSerializer.Serialize(new
                {
                    ranking = ranked.Select(r => new { index = r.Index, choice = choiceTexts[r.Index], log_likelihood = r.LogLikelihood, std_error = 0.0 }),
                    model_kind = "autoregressive",
                }));
            else
                foreach (var r in ranked)
                    ctx.Output.WriteLine($"{r.LogLikelihood,10:0.000} (exact)  {choiceTexts[r.Index]}");
            return 0;
        }
        int[] answerTokens = aIds is not null ? ModelSource.ParseIds(aIds, "--answer-ids") : EncodeAnswer(model.Tokenizer, aText!, "--answer");
        double ll = likelihood.LogLikelihood(promptTokens, answerTokens, token);
        if (json)
            ctx.Output.WriteLine(JsonSerializer.Serialize(new { log_likelihood = ll, std_error = 0.0, model_kind = "autoregressive" }));
        else
            ctx.Output.WriteLine($"log p(answer | prompt) = {ll:0.000} (exact: autoregressive baseline, {Quantity.Of(answerTokens.Length, "answer token")})");
        return 0;
    }

    private static int[] EncodeAnswer(Tokenization.Tokenizer tokenizer, string text, string option)
    {
        int[] ids = tokenizer.Encode(text);
        if (ids.Length == 0) throw new ArgumentException($"{option}: the answer is empty after tokenisation");
        return ids;
    }
}
