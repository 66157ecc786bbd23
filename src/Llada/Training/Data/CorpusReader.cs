using System.Text;
using System.Text.Json;

namespace Llada.Training.Data;

/// <summary>
/// Streams training records from source files without loading them whole. Supported sources:
/// <list type="bullet">
/// <item>.txt files (or a directory of .txt files): documents, cut according to <see cref="TextLayout"/>;</item>
/// <item>.jsonl files with <c>{"text": ...}</c> (documents), <c>{"messages": [{"role","content"}, ...]}</c> or
/// <c>{"prompt": ..., "response": ...}</c> (dialogues).</item>
/// </list>
/// Every problem is reported as a <see cref="DataFormatException"/> naming the file and line.
/// </summary>
public static class CorpusReader
{
    private const long ProgressStep = 1 << 20;

    /// <summary>
    /// Expands sources into files: a file stays itself; a directory becomes its .txt and .jsonl files, recursively,
    /// in ordinal path order (so the order never depends on the file system).
    /// </summary>
    public static IReadOnlyList<string> ExpandSources(IEnumerable<string> sources)
    {
        var files = new List<string>();
        foreach (var source in sources)
        {
            if (Directory.Exists(source))
            {
                var found = Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories)
                    .Where(f => IsJsonl(f) || f.EndsWith(".txt", StringComparison.OrdinalIgnoreCase))
                    .Order(StringComparer.Ordinal)
                    .ToList();
                if (found.Count == 0) throw new DataFormatException(source, 0, "directory contains no .txt or .jsonl files");
                files.AddRange(found);
            }
            else if (File.Exists(source)) files.Add(source);
            else throw new DataFormatException(source, 0, "file not found");
        }
        if (files.Count == 0) throw new ArgumentException("No training data sources were given.", nameof(sources));
        return files;
    }

    /// <summary>
    /// Reads pre-training documents from .txt files (cut by <paramref name="layout"/>) and .jsonl files with a
    /// "text" field. Each file must contain at least one non-blank document.
    /// </summary>
    public static IEnumerable<TextDocument> ReadDocuments(IEnumerable<string> sources, TextLayout layout = TextLayout.Auto,
        IProgress<DataProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        // Auto is decided per source: files found in a directory are one document each.
        var plan = sources.SelectMany(s => ExpandSources([s]).Select(f => (File: f,
            OnePerFile: layout == TextLayout.OnePerFile || (layout == TextLayout.Auto && Directory.Exists(s))))).ToList();
        if (plan.Count == 0) throw new ArgumentException("No training data sources were given.", nameof(sources));
        var tracker = new ProgressTracker(plan.Select(p => p.File).ToList(), progress);
        foreach (var (file, onePerFile) in plan)
        {
            var docs = IsJsonl(file)
                ? ReadJsonl(file, tracker, cancellationToken, (root, path, line) => ParseText(root, path, line))
                : ReadText(file, onePerFile, tracker, cancellationToken);
            foreach (var doc in docs) yield return doc;
        }
        tracker.Finish();
    }

    /// <summary>
    /// Reads SFT dialogues from .jsonl files with "messages" or "prompt"/"response" records. A dialogue must be
    /// non-empty, every message needs a non-empty "role" and non-blank "content", and the last message must be
    /// the assistant's (otherwise there is nothing to train on).
    /// </summary>
    public static IEnumerable<Dialogue> ReadDialogues(IEnumerable<string> sources,
        IProgress<DataProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var files = ExpandSources(sources);
        var tracker = new ProgressTracker(files, progress);
        foreach (var file in files)
        {
            if (!IsJsonl(file))
                throw new DataFormatException(file, 0, "SFT data must be a .jsonl file with \"messages\" or \"prompt\"/\"response\" records");
            foreach (var d in ReadJsonl(file, tracker, cancellationToken, ParseDialogue)) yield return d;
        }
        tracker.Finish();
    }

    /// <summary>
    /// Reads preference records from .jsonl files: {"prompt": ..., "chosen": ..., "rejected": ...} or
    /// {"messages": [...], "chosen": ..., "rejected": ...} (the messages are the history before the answer and end
    /// with a user turn). Other fields are ignored. Errors name the file and line.
    /// </summary>
    public static IEnumerable<PreferenceRecord> ReadPreferences(IEnumerable<string> sources,
        IProgress<DataProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var files = ExpandSources(sources);
        var tracker = new ProgressTracker(files, progress);
        foreach (var file in files)
        {
            if (!IsJsonl(file))
                throw new DataFormatException(file, 0, "preference data must be a .jsonl file with \"prompt\" (or \"messages\"), \"chosen\" and \"rejected\" fields");
            foreach (var p in ReadJsonl(file, tracker, cancellationToken, ParsePreference)) yield return p;
        }
        tracker.Finish();
    }

    private static PreferenceRecord ParsePreference(JsonElement root, string path, long line)
    {
        IReadOnlyList<ChatTurn> history;
        if (root.TryGetProperty("messages", out var messages))
        {
            var turns = ParseMessages(messages, path, line);
            if (turns[^1].Role == "assistant")
                throw new DataFormatException(path, line, "the last message is from \"assistant\"; in a preference record the messages are the prompt and the answers go in \"chosen\" and \"rejected\"");
            history = turns;
        }
        else if (root.TryGetProperty("prompt", out _))
        {
            string prompt = RequiredString(root, "prompt", path, line, "a preference record");
            if (string.IsNullOrWhiteSpace(prompt)) throw new DataFormatException(path, line, "field \"prompt\" is empty");
            history = [new ChatTurn("user", prompt)];
        }
        else throw new DataFormatException(path, line, "missing field \"prompt\" (or \"messages\"); a preference record needs one of them plus \"chosen\" and \"rejected\"");
        string chosen = RequiredString(root, "chosen", path, line, "a preference record");
        string rejected = RequiredString(root, "rejected", path, line, "a preference record");
        if (string.IsNullOrWhiteSpace(chosen)) throw new DataFormatException(path, line, "field \"chosen\" is empty");
        if (string.IsNullOrWhiteSpace(rejected)) throw new DataFormatException(path, line, "field \"rejected\" is empty");
        if (chosen.Trim() == rejected.Trim()) throw new DataFormatException(path, line, "\"chosen\" and \"rejected\" are the same answer");
        return new PreferenceRecord(history, chosen, rejected, path, line);
    }

    private static bool IsJsonl(string path) => path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase);

    private static IEnumerable<TextDocument> ReadText(string path, bool onePerFile, ProgressTracker tracker,
        CancellationToken ct)
    {
        using var reader = new Utf8LineReader(path);
        if (reader.Length == 0) throw new DataFormatException(path, 0, "file is empty");
        var text = new StringBuilder();
        long docLine = 0;
        int produced = 0;
        while (reader.TryReadLine(out var bytes))
        {
            ct.ThrowIfCancellationRequested();
            string line = reader.Decode(bytes);
            tracker.Advance(path, reader.BytesConsumed);
            bool blank = string.IsNullOrWhiteSpace(line);
            if (blank && !onePerFile)
            {
                if (text.Length > 0)
                {
                    produced++;
                    yield return new TextDocument(text.ToString(), path, docLine);
                    text.Clear();
                }
                continue;
            }
            if (text.Length == 0 && blank) continue; // leading blank lines of a whole-file document
            if (text.Length == 0) docLine = reader.LineNumber;
            else text.Append('\n');
            text.Append(line);
        }
        string last = text.ToString().TrimEnd();
        if (last.Length > 0)
        {
            produced++;
            yield return new TextDocument(last, path, docLine);
        }
        tracker.Advance(path, reader.Length);
        if (produced == 0) throw new DataFormatException(path, 0, "file contains no documents (only blank lines)");
    }

    private static IEnumerable<T> ReadJsonl<T>(string path, ProgressTracker tracker, CancellationToken ct,
        Func<JsonElement, string, long, T> parse)
    {
        using var reader = new Utf8LineReader(path);
        if (reader.Length == 0) throw new DataFormatException(path, 0, "file is empty");
        int produced = 0;
        while (reader.TryReadLine(out var bytes))
        {
            ct.ThrowIfCancellationRequested();
            tracker.Advance(path, reader.BytesConsumed);
            if (bytes.Trim(" \t"u8).IsEmpty) continue;
            reader.Validate(bytes);
            T item;
            try
            {
                var jsonReader = new Utf8JsonReader(bytes);
                using var doc = JsonDocument.ParseValue(ref jsonReader);
                // ParseValue stops after one value; anything but whitespace after it is a malformed line.
                if (jsonReader.BytesConsumed != bytes.Length && !bytes[(int)jsonReader.BytesConsumed..].Trim(" \t"u8).IsEmpty)
                    throw new DataFormatException(path, reader.LineNumber, "malformed JSON: unexpected text after the JSON object");
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new DataFormatException(path, reader.LineNumber, $"expected a JSON object, found {Kind(doc.RootElement)}");
                item = parse(doc.RootElement, path, reader.LineNumber);
            }
            catch (JsonException e)
            {
                throw new DataFormatException(path, reader.LineNumber, $"malformed JSON: {e.Message}", e);
            }
            produced++;
            yield return item;
        }
        tracker.Advance(path, reader.Length);
        if (produced == 0) throw new DataFormatException(path, 0, "file contains no records (only blank lines)");
    }

    private static TextDocument ParseText(JsonElement root, string path, long line)
    {
        string text = RequiredString(root, "text", path, line, "a pre-training record");
        if (string.IsNullOrWhiteSpace(text)) throw new DataFormatException(path, line, "field \"text\" is empty");
        return new TextDocument(text, path, line);
    }

    private static Dialogue ParseDialogue(JsonElement root, string path, long line)
    {
        if (root.TryGetProperty("messages", out var messages))
        {
            var turns = ParseMessages(messages, path, line);
            if (turns[^1].Role != "assistant")
                throw new DataFormatException(path, line,
                    $"the last message is from \"{turns[^1].Role}\", not \"assistant\"; an SFT dialogue must end with the answer to train on");
            return new Dialogue(turns, path, line);
        }
        if (root.TryGetProperty("prompt", out _) || root.TryGetProperty("response", out _))
        {
            string prompt = RequiredString(root, "prompt", path, line, "a prompt/response record");
            string response = RequiredString(root, "response", path, line, "a prompt/response record");
            if (string.IsNullOrWhiteSpace(prompt)) throw new DataFormatException(path, line, "field \"prompt\" is empty");
            if (string.IsNullOrWhiteSpace(response)) throw new DataFormatException(path, line, "field \"response\" is empty");
            return new Dialogue([new ChatTurn("user", prompt), new ChatTurn("assistant", response)], path, line);
        }
        throw new DataFormatException(path, line,
            "missing field \"messages\" (or \"prompt\" and \"response\"); an SFT record needs one of them");
    }

    private static ChatTurn[] ParseMessages(JsonElement messages, string path, long line)
    {
        if (messages.ValueKind != JsonValueKind.Array)
            throw new DataFormatException(path, line, $"field \"messages\" must be an array, found {Kind(messages)}");
        int count = messages.GetArrayLength();
        if (count == 0) throw new DataFormatException(path, line, "field \"messages\" is empty");
        var turns = new ChatTurn[count];
        int i = 0;
        foreach (var m in messages.EnumerateArray())
        {
            string where = $"message {i + 1} of {count}";
            if (m.ValueKind != JsonValueKind.Object)
                throw new DataFormatException(path, line, $"{where} must be an object, found {Kind(m)}");
            string role = RequiredString(m, "role", path, line, where);
            string content = RequiredString(m, "content", path, line, where);
            if (role.Length == 0) throw new DataFormatException(path, line, $"{where} has an empty \"role\"");
            if (string.IsNullOrWhiteSpace(content))
                throw new DataFormatException(path, line, $"{where} ({role}) has empty \"content\"");
            turns[i++] = new ChatTurn(role, content);
        }
        return turns;
    }

    private static string RequiredString(JsonElement obj, string name, string path, long line, string what)
    {
        if (!obj.TryGetProperty(name, out var value))
            throw new DataFormatException(path, line, $"missing field \"{name}\" in {what}");
        if (value.ValueKind != JsonValueKind.String)
            throw new DataFormatException(path, line, $"field \"{name}\" in {what} must be a string, found {Kind(value)}");
        return value.GetString()!;
    }

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    /// <summary>Turns per-file byte positions into throttled cumulative progress reports.</summary>
    private sealed class ProgressTracker(IReadOnlyList<string> files, IProgress<DataProgress>? progress)
    {
        private readonly long _total = progress is null ? 0 : files.Sum(f => new FileInfo(f).Length);
        private string? _file;
        private long _base;      // bytes of the files finished before _file
        private long _inFile;    // bytes consumed of _file
        private long _reported = -1;

        public void Advance(string file, long consumed)
        {
            if (progress is null) return;
            if (file != _file)
            {
                _base += _inFile;
                _inFile = 0;
                _file = file;
            }
            _inFile = consumed;
            long done = _base + _inFile;
            if (done - _reported >= ProgressStep)
            {
                _reported = done;
                progress.Report(new DataProgress(done, _total, file));
            }
        }

        public void Finish()
        {
            if (progress is null) return;
            progress.Report(new DataProgress(_base + _inFile, _total, _file ?? ""));
        }
    }
}
