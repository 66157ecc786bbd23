using System.CommandLine;
using System.Text.Json;
using Llada.Reporting;

namespace Llada.Cli.Commands;

/// <summary>`llada tokenize` and `llada detokenize`.</summary>
internal static class TokenizeCommands
{
    public static Command Tokenize()
    {
        var model = ModelSource.ModelOption();
        var text = new Option<string?>("--text", "-t") { Description = "Text to encode." };
        var file = new Option<FileInfo?>("--file", "-f") { Description = "UTF-8 file to encode." };
        var special = new Option<bool>("--add-special-tokens")
        {
            Description = "Let the tokenizer's post-processor add its special tokens (e.g. BOS) as Hugging Face does with add_special_tokens=True.",
        };
        var json = ModelSource.JsonOption();
        json.Description = "Print {\"ids\":[...]}.";
        var command = new Command("tokenize", "Encode text into token ids with a model's tokenizer.json.\n" +
                                              "Example: llada tokenize --text \"Hello world\" --json")
            { model, text, file, special, json };
        CliAction.Set(command, async (parse, ctx, token) =>
        {
            string input = await ReadInput(parse.GetValue(text), parse.GetValue(file), token);
            var tokenizer = ModelSource.LoadTokenizer(ModelSource.Resolve(parse.GetValue(model)));
            int[] ids = tokenizer.Encode(input, parse.GetValue(special));
            if (parse.GetValue(json))
                ctx.Output.WriteLine(JsonSerializer.Serialize(new { ids }));
            else
            {
                foreach (int id in ids)
                    ctx.Output.WriteLine($"{id}\t{JsonSerializer.Serialize(tokenizer.IdToToken(id) ?? "", ReadableStrings)}");
                ctx.Error.WriteLine(Quantity.Of(ids.Length, "token"));
            }
            return 0;
        });
        return command;
    }

    public static Command Detokenize()
    {
        var model = ModelSource.ModelOption();
        var ids = new Option<string>("--ids") { Description = "Comma-separated token ids, e.g. 39,1371,78,892.", Required = true };
        var skip = new Option<bool>("--skip-special-tokens") { Description = "Leave special tokens (EOS, mask, ...) out of the text." };
        var json = ModelSource.JsonOption();
        json.Description = "Print {\"text\":\"...\"}.";
        var command = new Command("detokenize", "Decode token ids back into text.\nExample: llada detokenize --ids 39,1371,78,892  (\"Hello world\" with the default model)")
            { model, ids, skip, json };
        CliAction.Set(command, (parse, ctx, _) =>
        {
            var tokenizer = ModelSource.LoadTokenizer(ModelSource.Resolve(parse.GetValue(model)));
            int[] values = ModelSource.ParseIds(parse.GetValue(ids)!, "--ids");
            foreach (int id in values)
                if (id >= tokenizer.VocabSize)
                    throw new ArgumentException($"--ids: {id} is outside the tokenizer's vocabulary 0..{tokenizer.VocabSize - 1}");
            string result = tokenizer.Decode(values, parse.GetValue(skip));
            ctx.Output.WriteLine(parse.GetValue(json) ? JsonSerializer.Serialize(new { text = result }) : result);
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>
    /// Token strings as Hugging Face shows them ("Ġworld", not "\u0120world"): quoted, with only quotes, backslashes
    /// and control characters escaped. The --json output keeps the default escaping.
    /// </summary>
    private static readonly JsonSerializerOptions ReadableStrings = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    internal static async Task<string> ReadInput(string? text, FileInfo? file, CancellationToken token)
    {
        if (text is not null && file is not null) throw new ArgumentException("give either --text or --file, not both");
        if (text is not null) return text;
        if (file is null) throw new ArgumentException("give the input with --text TEXT or --file PATH");
        if (!file.Exists) throw new FileNotFoundException($"input file '{file.FullName}' does not exist");
        var bytes = await File.ReadAllBytesAsync(file.FullName, token);
        try
        {
            return new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw new InvalidDataException($"'{file.FullName}' is not valid UTF-8");
        }
    }
}
