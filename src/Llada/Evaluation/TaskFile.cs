using System.Text;
using System.Text.Json;
using Llada.Reporting;

namespace Llada.Evaluation;

/// <summary>
/// Reads evaluation task files (JSONL). The task type comes from, in this order: a header line (the first non-blank
/// line, an object with an "eval_task" key), a sidecar <c>NAME.task.json</c> next to <c>NAME.jsonl</c> holding the
/// same object, a "type" key on each line, or the fields of each line ("text": perplexity, "choices": choice,
/// "prompt" with "answer"/"accept"/"regex": generate). A header may name a "source" file (relative to the task file)
/// that holds the items instead: another JSONL file, or for perplexity a .txt file cut into documents at blank lines
/// ("unit": "document", the default) or into lines ("unit": "paragraph"). Every problem is a
/// <see cref="TaskFormatException"/> naming the file and line.
/// </summary>
public static class TaskFile
{
    /// <summary>Key that marks a header object.</summary>
    public const string HeaderKey = "eval_task";

    /// <summary>Sidecar file name of a task file: NAME.jsonl -> NAME.task.json.</summary>
    public static string SidecarPath(string path) => System.IO.Path.ChangeExtension(path, null) + ".task.json";

    /// <summary>Loads and validates the task file at <paramref name="path"/>.</summary>
    public static EvalTask Load(string path)
    {
        if (!File.Exists(path)) throw new TaskFormatException(path, 0, "task file not found");
        var lines = ReadLines(path);
        Header? header = null;
        int firstItem = 0;
        while (firstItem < lines.Count && string.IsNullOrWhiteSpace(lines[firstItem])) firstItem++;
        if (firstItem < lines.Count)
        {
            using var doc = ParseObject(path, firstItem + 1, lines[firstItem]);
            if (doc.RootElement.TryGetProperty(HeaderKey, out _))
            {
                header = ParseHeader(path, firstItem + 1, doc.RootElement);
                firstItem++;
            }
        }
        string sidecar = SidecarPath(path);
        if (File.Exists(sidecar))
        {
            if (header is not null) throw new TaskFormatException(sidecar, 0, $"{path} already has a header line; use one or the other");
            using var doc = ParseObject(sidecar, 1, File.ReadAllText(sidecar));
            header = ParseHeader(sidecar, 1, doc.RootElement);
        }

        string name = header?.Name ?? System.IO.Path.GetFileNameWithoutExtension(path);
        List<EvalItem> items;
        if (header?.Source is { } source)
        {
            for (int i = firstItem; i < lines.Count; i++)
                if (!string.IsNullOrWhiteSpace(lines[i]))
                    throw new TaskFormatException(path, i + 1, "the header names a \"source\", so the file holds no items of its own");
            string itemsPath = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(header.Where) ?? ".", source);
            if (!File.Exists(itemsPath)) throw new TaskFormatException(header.Where, header.Line, $"source '{source}' not found (looked for {itemsPath})");
            items = itemsPath.EndsWith(".txt", StringComparison.OrdinalIgnoreCase)
                ? ReadText(itemsPath, header, header.Where)
                : ReadItems(itemsPath, ReadLines(itemsPath), 0, header);
        }
        else items = ReadItems(path, lines, firstItem, header);

        if (items.Count == 0) throw new TaskFormatException(path, 0, "the task has no items");
        EvalTaskType type = header?.Type ?? TypeOf(items[0]);
        return new EvalTask(name, type, path, items, header?.GenLength, header?.Description);
    }

    private sealed record Header(string Where, int Line, string Name, EvalTaskType? Type, string? Source, string Unit,
        MatchRule? Match, int? GenLength, string? Description);

    private static EvalTaskType TypeOf(EvalItem item) => item switch
    {
        PerplexityItem => EvalTaskType.Perplexity,
        ChoiceItem => EvalTaskType.Choice,
        _ => EvalTaskType.Generate,
    };

    private static List<string> ReadLines(string path)
    {
        var lines = new List<string>();
        using var reader = new StreamReader(path, new UTF8Encoding(false, throwOnInvalidBytes: true));
        try
        {
            while (reader.ReadLine() is { } line) lines.Add(line);
        }
        catch (DecoderFallbackException)
        {
            throw new TaskFormatException(path, lines.Count + 1, "not valid UTF-8");
        }
        return lines;
    }

    private static JsonDocument ParseObject(string path, int line, string text)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text);
        }
        catch (JsonException e)
        {
            throw new TaskFormatException(path, line, $"not valid JSON ({e.Message.Split(" Path:")[0].TrimEnd('.')})");
        }
        var kind = doc.RootElement.ValueKind;
        if (kind != JsonValueKind.Object)
        {
            doc.Dispose();
            throw new TaskFormatException(path, line, $"expected a JSON object, found {kind.ToString().ToLowerInvariant()}");
        }
        return doc;
    }

    private static Header ParseHeader(string path, int line, JsonElement root)
    {
        string name = RequiredString(path, line, root, HeaderKey);
        EvalTaskType? type = OptionalString(path, line, root, "type") is { } t ? ParseType(path, line, t) : null;
        string? source = OptionalString(path, line, root, "source");
        string unit = OptionalString(path, line, root, "unit") ?? "document";
        if (unit is not ("document" or "paragraph"))
            throw new TaskFormatException(path, line, $"\"unit\" must be \"document\" or \"paragraph\", found \"{unit}\"");
        MatchRule? match = OptionalString(path, line, root, "match") is { } m ? ParseMatch(path, line, m) : null;
        int? genLength = null;
        if (root.TryGetProperty("gen_length", out var g))
        {
            if (g.ValueKind != JsonValueKind.Number || !g.TryGetInt32(out int n) || n < 1)
                throw new TaskFormatException(path, line, $"\"gen_length\" must be a positive integer, found {g.GetRawText()}");
            genLength = n;
        }
        if (source is not null && type is null)
            throw new TaskFormatException(path, line, "a header with a \"source\" must also give the \"type\"");
        return new Header(path, line, name, type, source, unit, match, genLength, OptionalString(path, line, root, "description"));
    }

    private static List<EvalItem> ReadText(string path, Header header, string headerPath)
    {
        if (header.Type != EvalTaskType.Perplexity)
            throw new TaskFormatException(headerPath, header.Line, $"a .txt source only makes sense for perplexity tasks, not {EvalTask.TypeName(header.Type!.Value)}");
        var items = new List<EvalItem>();
        var lines = ReadLines(path);
        var document = new StringBuilder();
        int start = 0;
        void Flush()
        {
            if (document.Length > 0) items.Add(new PerplexityItem(start, path, null, document.ToString()));
            document.Clear();
        }
        for (int i = 0; i < lines.Count; i++)
        {
            string line = lines[i];
            if (string.IsNullOrWhiteSpace(line) || header.Unit == "paragraph") Flush();
            if (string.IsNullOrWhiteSpace(line)) continue;
            if (document.Length == 0) start = i + 1;
            else document.Append('\n');
            document.Append(line);
        }
        Flush();
        return items;
    }

    private static List<EvalItem> ReadItems(string path, List<string> lines, int first, Header? header)
    {
        var items = new List<EvalItem>();
        EvalTaskType? seen = header?.Type;
        int seenLine = header?.Line ?? 0;
        for (int i = first; i < lines.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i])) continue;
            int line = i + 1;
            using var doc = ParseObject(path, line, lines[i]);
            var root = doc.RootElement;
            if (root.TryGetProperty(HeaderKey, out _))
                throw new TaskFormatException(path, line, "a header line may only be the first line of the file");
            EvalTaskType type = OptionalString(path, line, root, "type") is { } t ? ParseType(path, line, t)
                : header?.Type ?? Infer(path, line, root);
            if (seen is { } s && s != type)
                throw new TaskFormatException(path, line,
                    $"this is a {EvalTask.TypeName(type)} item but the task is {EvalTask.TypeName(s)} (from line {seenLine}); a file holds one task type");
            if (seen is null) { seen = type; seenLine = line; }
            items.Add(ParseItem(path, line, root, type, header?.Match));
        }
        return items;
    }

    private static EvalTaskType Infer(string path, int line, JsonElement root)
    {
        if (root.TryGetProperty("text", out _)) return EvalTaskType.Perplexity;
        if (root.TryGetProperty("choices", out _)) return EvalTaskType.Choice;
        if (root.TryGetProperty("prompt", out _)) return EvalTaskType.Generate;
        throw new TaskFormatException(path, line,
            "cannot tell the task type: give a header line {\"eval_task\": NAME, \"type\": ...}, a \"type\" on each line, or the fields of one type (\"text\"; \"prompt\" + \"choices\"; \"prompt\" + \"answer\"/\"accept\"/\"regex\")");
    }

    private static EvalItem ParseItem(string path, int line, JsonElement root, EvalTaskType type, MatchRule? defaultMatch)
    {
        string? id = root.TryGetProperty("id", out var idElement)
            ? idElement.ValueKind == JsonValueKind.String ? idElement.GetString() : idElement.GetRawText()
            : null;
        switch (type)
        {
            case EvalTaskType.Perplexity:
            {
                string text = RequiredString(path, line, root, "text");
                if (string.IsNullOrWhiteSpace(text)) throw new TaskFormatException(path, line, "\"text\" is empty");
                return new PerplexityItem(line, path, id, text);
            }
            case EvalTaskType.Choice:
            {
                string prompt = RequiredString(path, line, root, "prompt");
                if (!root.TryGetProperty("choices", out var c) || c.ValueKind != JsonValueKind.Array)
                    throw new TaskFormatException(path, line, "a choice item needs \"choices\": an array of strings");
                var choices = new List<string>();
                foreach (var e in c.EnumerateArray())
                {
                    if (e.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(e.GetString()))
                        throw new TaskFormatException(path, line, $"choice {choices.Count} must be a non-empty string, found {e.GetRawText()}");
                    choices.Add(e.GetString()!);
                }
                if (choices.Count < 2) throw new TaskFormatException(path, line, $"a choice item needs at least 2 choices, found {choices.Count}");
                if (!root.TryGetProperty("answer", out var a) || a.ValueKind != JsonValueKind.Number || !a.TryGetInt32(out int answer))
                    throw new TaskFormatException(path, line, "a choice item needs \"answer\": the 0-based index of the correct choice");
                if (answer < 0 || answer >= choices.Count)
                    throw new TaskFormatException(path, line, $"\"answer\" {answer} is outside the {Quantity.Of(choices.Count, "choice")} (0-based index)");
                return new ChoiceItem(line, path, id, prompt, choices, answer);
            }
            default:
            {
                string prompt = RequiredString(path, line, root, "prompt");
                var accept = new List<string>();
                if (OptionalString(path, line, root, "answer") is { } answerText) accept.Add(answerText);
                if (root.TryGetProperty("accept", out var acc))
                {
                    if (acc.ValueKind != JsonValueKind.Array) throw new TaskFormatException(path, line, "\"accept\" must be an array of strings");
                    foreach (var e in acc.EnumerateArray())
                    {
                        if (e.ValueKind != JsonValueKind.String) throw new TaskFormatException(path, line, $"\"accept\" entries must be strings, found {e.GetRawText()}");
                        if (!accept.Contains(e.GetString()!)) accept.Add(e.GetString()!);
                    }
                }
                string? pattern = OptionalString(path, line, root, "regex");
                MatchRule match = OptionalString(path, line, root, "match") is { } m ? ParseMatch(path, line, m)
                    : pattern is not null ? MatchRule.Regex : defaultMatch ?? MatchRule.Exact;
                if (match == MatchRule.Regex)
                {
                    if (pattern is null) throw new TaskFormatException(path, line, "\"match\": \"regex\" needs a \"regex\" pattern");
                    try
                    {
                        _ = new System.Text.RegularExpressions.Regex(pattern);
                    }
                    catch (ArgumentException e)
                    {
                        throw new TaskFormatException(path, line, $"\"regex\" is not a valid .NET regular expression: {e.Message}");
                    }
                }
                else if (accept.Count == 0)
                    throw new TaskFormatException(path, line, "a generate item needs \"answer\", \"accept\": [...] or \"regex\"");
                return new GenerateItem(line, path, id, prompt, accept, pattern, match);
            }
        }
    }

    private static EvalTaskType ParseType(string path, int line, string text) => text switch
    {
        "perplexity" => EvalTaskType.Perplexity,
        "choice" => EvalTaskType.Choice,
        "generate" => EvalTaskType.Generate,
        _ => throw new TaskFormatException(path, line, $"unknown task type \"{text}\"; use perplexity, choice or generate"),
    };

    private static MatchRule ParseMatch(string path, int line, string text) => text switch
    {
        "exact" => MatchRule.Exact,
        "contains" => MatchRule.Contains,
        "regex" => MatchRule.Regex,
        _ => throw new TaskFormatException(path, line, $"unknown match rule \"{text}\"; use exact, contains or regex"),
    };

    private static string RequiredString(string path, int line, JsonElement root, string key) =>
        OptionalString(path, line, root, key) ?? throw new TaskFormatException(path, line, $"missing \"{key}\" (a string)");

    private static string? OptionalString(string path, int line, JsonElement root, string key)
    {
        if (!root.TryGetProperty(key, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind != JsonValueKind.String) throw new TaskFormatException(path, line, $"\"{key}\" must be a string, found {e.GetRawText()}");
        return e.GetString();
    }
}
