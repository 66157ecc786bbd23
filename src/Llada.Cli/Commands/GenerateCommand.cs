using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Llada.Diffusion;
using Llada.Reporting;
using Llada.Tokenization;

namespace Llada.Cli.Commands;

/// <summary>`llada generate`: the reverse process on one prompt.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = ModelSource.ModelOption();
        var prompt = new Option<string?>("--prompt", "-p") { Description = "Prompt text (wrapped in the model's chat template unless --no-chat-template)." };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt as comma-separated token ids, used exactly as given." };
        var noTemplate = new Option<bool>("--no-chat-template") { Description = "Encode --prompt as plain text (for base models)." };
        var threads = ModelSource.ThreadsOption();
        var compute = ModelSource.ComputeOption();
        var json = ModelSource.JsonOption();
        var visualize = new Option<bool>("--visualize") { Description = "Redraw the answer canvas as tokens are unmasked, to watch diffusion happen." };
        var sampling = new SamplingOptions();
        var command = new Command("generate",
            "Generate an answer with the LLaDA reverse process: start from a fully masked canvas and unmask it step by step.\n" +
            "Unset sampling options take the model's generation_config.json values, else the built-in ones (`llada info` lists them).\n" +
            "Examples:\n  llada generate --prompt \"Hello, my name is Maria.\"\n" +
            "  llada generate --prompt \"Define the word 'harbor'.\" --gen-length 64 --steps 64 --block-length 16 --visualize\n" +
            "  llada generate --model DIR --prompt-ids 1,2,3 --json")
        {
            model, prompt, promptIds, noTemplate, threads, compute, json, visualize,
        };
        sampling.AddTo(command);
        CliAction.Set(command, (parse, ctx, token) =>
        {
            ModelSource.ApplyThreads(parse.GetValue(threads));
            var arithmetic = ModelSource.ParseCompute(parse.GetValue(compute));
            string? text = parse.GetValue(prompt), ids = parse.GetValue(promptIds);
            if ((text is null) == (ids is null)) throw new ArgumentException("give exactly one of --prompt TEXT or --prompt-ids 1,2,3");
            string dir = ModelSource.Resolve(parse.GetValue(model));
            if (ModelSource.IsAutoregressive(dir))
                return Task.FromResult(GenerateAutoregressive(dir, text, ids, parse.GetValue(noTemplate), sampling, parse,
                    arithmetic, parse.GetValue(json), ctx, token));
            using var loaded = ModelSource.Load(dir, arithmetic, ctx.Error);
            int[] promptTokens = ids is not null
                ? ModelSource.ParseIds(ids, "--prompt-ids")
                : EncodePrompt(loaded.RequireTokenizer("use --prompt-ids"), text!, parse.GetValue(noTemplate));
            var options = sampling.Build(parse, SamplingDefaults.FromDirectory(dir), loaded.EosId, loaded.EndOfTurnId);
            CheckFits(promptTokens.Length, options.GenLength, options.BlockLength, loaded.Predictor.MaxSequenceLength, ids is not null,
                parse.GetValue(noTemplate));
            options.Validate(loaded.Predictor, [promptTokens], SamplingOptions.OptionName);
            var sampler = new ReverseProcess(loaded.Predictor);

            // The live canvas redraws a terminal; into a pipe or file it would only leave escape codes around the answer.
            bool draw = parse.GetValue(visualize) && ReferenceEquals(ctx.Output, Console.Out) && !Console.IsOutputRedirected;
            if (parse.GetValue(visualize) && !draw) ctx.Error.WriteLine("(--visualize draws only on a terminal; output is redirected, so just the answer follows)");
            CanvasView? view = draw ? new CanvasView(loaded.Tokenizer, loaded.Predictor.MaskTokenId) : null;
            var watch = Stopwatch.StartNew();
            var result = view is null
                ? sampler.Generate(promptTokens, options, null, token)
                : view.Run(progress => sampler.Generate(promptTokens, options, progress, token));
            watch.Stop();

            int[] canvas = result.Sequences[0];
            int[] answer = result.Answer().ToArray();
            string? answerText = loaded.Tokenizer?.Decode(answer, skipSpecialTokens: true);
            if (parse.GetValue(json))
            {
                ctx.Output.WriteLine(JsonSerializer.Serialize(new
                {
                    prompt_ids = promptTokens,
                    token_ids = canvas,
                    text = answerText,
                    elapsed_ms = Math.Round(watch.Elapsed.TotalMilliseconds, 1),
                    forward_passes = result.ForwardPasses,
                    window_passes = result.WindowPasses,
                }));
            }
            else
            {
                ctx.Output.WriteLine(answerText ?? string.Join(",", answer));
                ctx.Error.WriteLine($"[{Quantity.Of(answer.Length, "token")}, {Quantity.Of(result.Steps, "step")}, {Quantity.Of(result.ForwardPasses, "forward pass")}{(result.WindowPasses > 0 ? $" ({result.WindowPasses} cached-window)" : "")}, {watch.Elapsed.TotalSeconds:0.00} s]");
            }
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>
    /// The AR baseline decodes left to right, one token per forward pass, until EOS / end-of-turn or --gen-length
    /// tokens; of the sampler options only --gen-length, --temperature and --seed apply.
    /// </summary>
    private static int GenerateAutoregressive(string dir, string? text, string? ids, bool noTemplate, SamplingOptions sampling,
        ParseResult parse, Numerics.Bf16Arithmetic arithmetic, bool json, CommandContext ctx, CancellationToken token)
    {
        var defaults = SamplingDefaults.FromDirectory(dir);
        int gen = parse.GetValue(sampling.GenLength) ?? defaults.GenLength;
        if (gen < 1) throw new ArgumentException($"--gen-length must be at least 1 (got {gen})");
        using var model = Llada.Evaluation.EvaluatedModel.Load(dir, Llada.Evaluation.ModelKind.Autoregressive);
        ModelSource.ApplyCompute(model.Predictor, arithmetic, ctx.Error);
        int[] promptTokens = ids is not null ? ModelSource.ParseIds(ids, "--prompt-ids") : EncodePrompt(model.Tokenizer, text!, noTemplate);
        CheckFits(promptTokens.Length, gen, blockLength: 1, model.Predictor.MaxSequenceLength, ids is not null, noTemplate);
        var watch = Stopwatch.StartNew();
        int[] answer = new Llada.Evaluation.AutoregressiveDecoder(model.Predictor).Generate(promptTokens, gen,
            parse.GetValue(sampling.Temperature) ?? defaults.Temperature, parse.GetValue(sampling.Seed), model.EosTokenId, model.EndOfTurnTokenId,
            cancellationToken: token);
        watch.Stop();
        string answerText = model.Tokenizer.Decode(answer, skipSpecialTokens: true);
        if (json)
            ctx.Output.WriteLine(JsonSerializer.Serialize(new
            {
                prompt_ids = promptTokens,
                token_ids = answer, // like the diffusion path: the tokens after the prompt (here cut at the stop token)
                text = answerText,
                elapsed_ms = Math.Round(watch.Elapsed.TotalMilliseconds, 1),
                forward_passes = answer.Length + (answer.Length < gen ? 1 : 0),
                model_kind = "autoregressive",
            }));
        else
        {
            ctx.Output.WriteLine(answerText);
            ctx.Error.WriteLine($"[autoregressive baseline: {Quantity.Of(answer.Length, "token")} left to right, {watch.Elapsed.TotalSeconds:0.00} s]");
        }
        return 0;
    }

    /// <summary>
    /// The prompt and the answer canvas share the model's context; says which option to change when they do not fit
    /// (a shorter --gen-length is suggested as a multiple of the block length, which must divide it).
    /// </summary>
    internal static void CheckFits(int promptLength, int genLength, int blockLength, int context, bool fromIds, bool noChatTemplate)
    {
        if (promptLength + genLength <= context) return;
        int room = context - promptLength;
        int shorter = room >= blockLength ? room / blockLength * blockLength : room;
        string what = fromIds ? $"--prompt-ids has {promptLength} tokens"
            : $"--prompt is {promptLength} tokens{(noChatTemplate ? "" : " in the chat template")}";
        throw new ArgumentException(promptLength >= context
            ? $"{what}, more than the model's context of {context} tokens (max_sequence_length); shorten the prompt"
            : $"{what}; with --gen-length {genLength} that is {promptLength + genLength} positions, more than the model's context of " +
              $"{context} (max_sequence_length): shorten the prompt to at most {context - genLength} tokens or lower --gen-length to {shorter}");
    }

    /// <summary>A user turn in the chat template (when the tokenizer has or implies one), else plain text with BOS if the tokenizer adds it.</summary>
    internal static int[] EncodePrompt(Tokenizer tokenizer, string text, bool noChatTemplate) =>
        noChatTemplate
            ? tokenizer.Encode(text, addSpecialTokens: true)
            : tokenizer.EncodeChat([new ChatMessage("user", text)], addGenerationPrompt: true);
}
