using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Llada.Evaluation;

/// <summary>
/// An evaluation report: the model, the settings, and per task its metrics (with counts and standard errors) and
/// per-item results. Written as JSON (<see cref="WriteJson"/>) and Markdown (<see cref="ToMarkdown"/>); saved JSON
/// reports are read back by <see cref="ReadSummary"/> for <see cref="CompareTable"/>.
/// </summary>
public sealed class EvalReport
{
    /// <summary>Format version written to "format".</summary>
    public const int FormatVersion = 1;

    /// <summary>Creates a report.</summary>
    public EvalReport(string model, ModelKind kind, IReadOnlyDictionary<string, object?> settings, IReadOnlyList<TaskResult> tasks, bool complete)
    {
        Model = model; Kind = kind; Settings = settings; Tasks = tasks; Complete = complete;
    }

    /// <summary>Model directory.</summary>
    public string Model { get; }
    /// <summary>Diffusion or autoregressive.</summary>
    public ModelKind Kind { get; }
    /// <summary>Settings that shape the numbers (seed, mc_num, sampler options, ...), written in this order.</summary>
    public IReadOnlyDictionary<string, object?> Settings { get; }
    /// <summary>Per-task results, in the order run.</summary>
    public IReadOnlyList<TaskResult> Tasks { get; }
    /// <summary>False when the run was cancelled: some tasks are partial or missing.</summary>
    public bool Complete { get; }

    /// <summary>"diffusion" or "autoregressive".</summary>
    public static string KindName(ModelKind kind) => kind == ModelKind.Diffusion ? "diffusion" : "autoregressive";

    /// <summary>Writes the report as indented JSON.</summary>
    public void WriteJson(Stream stream)
    {
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteNumber("format", FormatVersion);
        w.WriteString("model", Model);
        w.WriteString("model_kind", KindName(Kind));
        w.WriteBoolean("complete", Complete);
        w.WriteStartObject("settings");
        foreach (var (key, value) in Settings)
        {
            switch (value)
            {
                case null: w.WriteNull(key); break;
                case bool b: w.WriteBoolean(key, b); break;
                case int i: w.WriteNumber(key, i); break;
                case double d: w.WriteNumber(key, d); break;
                case IEnumerable<string> list:
                    w.WriteStartArray(key);
                    foreach (var s in list) w.WriteStringValue(s);
                    w.WriteEndArray();
                    break;
                default: w.WriteString(key, Convert.ToString(value, CultureInfo.InvariantCulture)); break;
            }
        }
        w.WriteEndObject();
        w.WriteStartArray("tasks");
        foreach (var t in Tasks) WriteTask(w, t);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>The JSON text of <see cref="WriteJson"/>.</summary>
    public string ToJson()
    {
        using var stream = new MemoryStream();
        WriteJson(stream);
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void WriteTask(Utf8JsonWriter w, TaskResult t)
    {
        w.WriteStartObject();
        w.WriteString("name", t.Name);
        w.WriteString("type", EvalTask.TypeName(t.Type));
        w.WriteString("path", t.Path);
        w.WriteBoolean("complete", t.Complete);
        w.WriteNumber("count", t.Count);
        w.WriteNumber("total", t.Total);
        if (t.Type == EvalTaskType.Perplexity)
        {
            w.WriteNumber("tokens", t.TokenCount);
            w.WriteBoolean("bound", t.Bound);
        }
        else w.WriteNumber("correct", t.CorrectCount);
        w.WriteNumber("elapsed_seconds", Math.Round(t.ElapsedSeconds, 3));
        w.WriteStartObject("metrics");
        foreach (var m in t.Metrics())
        {
            w.WriteStartObject(m.Name);
            w.WriteNumber("value", m.Value);
            if (m.StandardError is { } se && double.IsFinite(se)) w.WriteNumber("standard_error", se);
            else w.WriteNull("standard_error");
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteStartArray("items");
        foreach (var i in t.Items)
        {
            w.WriteStartObject();
            w.WriteNumber("index", i.Index);
            w.WriteNumber("line", i.Line);
            if (i.Id is not null) w.WriteString("id", i.Id);
            if (i.Correct is { } c) w.WriteBoolean("correct", c);
            if (i.Tokens is { } n) w.WriteNumber("tokens", n);
            if (i.Nll is { } nll) w.WriteNumber("nll", nll);
            if (i.StandardError is { } se) w.WriteNumber("standard_error", se);
            if (i.Predicted is { } p) w.WriteNumber("predicted", p);
            if (i.Answer is { } a) w.WriteNumber("answer", a);
            if (i.Scores is { } scores) WriteNumbers(w, "scores", scores);
            if (i.ScoreErrors is { } errors) WriteNumbers(w, "score_errors", errors);
            if (i.Output is { } o) w.WriteString("output", o);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteNumbers(Utf8JsonWriter w, string name, IReadOnlyList<double> values)
    {
        w.WriteStartArray(name);
        foreach (double v in values) w.WriteNumberValue(v);
        w.WriteEndArray();
    }

    /// <summary>A Markdown summary: model, settings and one row per task.</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.Append("# Evaluation: ").AppendLine(Model).AppendLine();
        sb.Append("Model kind: ").Append(KindName(Kind)).AppendLine(Kind == ModelKind.Diffusion
            ? " (likelihoods are Monte Carlo ELBO bounds: NLL and perplexity are upper bounds)."
            : " (likelihoods are exact).");
        if (!Complete) sb.AppendLine().AppendLine("**Incomplete: the run was cancelled; partial tasks are marked.**");
        sb.AppendLine().AppendLine("| task | type | items | metric | value | ± s.e. |").AppendLine("| --- | --- | ---: | --- | ---: | ---: |");
        foreach (var t in Tasks)
        {
            string items = t.Complete ? t.Count.ToString(CultureInfo.InvariantCulture) : $"{t.Count}/{t.Total} (partial)";
            var metrics = t.Metrics();
            if (metrics.Count == 0) sb.Append($"| {t.Name} | {EvalTask.TypeName(t.Type)} | {items} | - | - | - |").AppendLine();
            foreach (var m in metrics)
                sb.Append($"| {t.Name} | {EvalTask.TypeName(t.Type)} | {items} | {MetricLabel(m.Name, t.Bound)} | {Format(m.Value)} | {FormatError(m.StandardError)} |").AppendLine();
        }
        sb.AppendLine().AppendLine("Settings:").AppendLine();
        foreach (var (key, value) in Settings)
            sb.Append("- ").Append(key).Append(": ").AppendLine(value switch
            {
                null => "-",
                bool b => b ? "true" : "false",
                IEnumerable<string> list => string.Join(", ", list),
                _ => Convert.ToString(value, CultureInfo.InvariantCulture),
            });
        return sb.ToString();
    }

    private static string MetricLabel(string name, bool bound) => bound && name != "accuracy" ? name + " (bound)" : name;

    /// <summary>A metric value as reports print it (4 decimals, 1 above 100).</summary>
    public static string Format(double value) => value.ToString(Math.Abs(value) >= 100 ? "0.0" : "0.0000", CultureInfo.InvariantCulture);

    internal static string FormatError(double? se) => se is { } s && double.IsFinite(s) ? Format(s) : "-";

    /// <summary>The task-level numbers of a saved JSON report.</summary>
    /// <param name="Label">Name of the report in tables (the file name).</param>
    /// <param name="Model">Model directory.</param>
    /// <param name="Complete">Whether the run finished.</param>
    /// <param name="Tasks">Task name to (complete, metrics).</param>
    public sealed record Summary(string Label, string Model, bool Complete, IReadOnlyDictionary<string, (bool Complete, IReadOnlyList<Metric> Metrics)> Tasks);

    /// <summary>Reads the task metrics of a JSON report written by <see cref="WriteJson"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not such a report (names the file and what is wrong).</exception>
    public static Summary ReadSummary(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"report '{path}' does not exist");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("tasks", out var tasks) || tasks.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{path}: not an evaluation report (no \"tasks\" array)");
            var map = new Dictionary<string, (bool, IReadOnlyList<Metric>)>(StringComparer.Ordinal);
            foreach (var t in tasks.EnumerateArray())
            {
                string name = t.GetProperty("name").GetString() ?? throw new InvalidDataException($"{path}: a task has no name");
                var metrics = new List<Metric>();
                foreach (var m in t.GetProperty("metrics").EnumerateObject())
                {
                    var se = m.Value.GetProperty("standard_error");
                    metrics.Add(new Metric(m.Name, m.Value.GetProperty("value").GetDouble(), se.ValueKind == JsonValueKind.Number ? se.GetDouble() : null));
                }
                map[name] = (t.GetProperty("complete").GetBoolean(), metrics);
            }
            return new Summary(Path.GetFileName(path), root.GetProperty("model").GetString() ?? "", root.GetProperty("complete").GetBoolean(), map);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: not an evaluation report ({e.Message})");
        }
    }

    /// <summary>
    /// A Markdown table of the metrics of every task present in all <paramref name="reports"/>, one column per report
    /// ("value ± s.e."; a partial task is marked with *). Tasks missing from some report are listed below the table.
    /// </summary>
    public static string CompareTable(IReadOnlyList<Summary> reports)
    {
        ArgumentNullException.ThrowIfNull(reports);
        if (reports.Count == 0) throw new ArgumentException("no reports to compare");
        var shared = reports[0].Tasks.Keys.Where(k => reports.All(r => r.Tasks.ContainsKey(k))).ToList();
        var header = new List<string> { "task", "metric" };
        header.AddRange(reports.Select(r => r.Label));
        var rows = new List<string[]>();
        foreach (string task in shared)
        {
            var names = reports[0].Tasks[task].Metrics.Select(m => m.Name).ToList();
            foreach (string metric in names)
            {
                var row = new List<string> { task, metric };
                foreach (var r in reports)
                {
                    var (complete, metrics) = r.Tasks[task];
                    var m = metrics.FirstOrDefault(x => x.Name == metric);
                    row.Add(m is null ? "-" : (m.StandardError is { } se && double.IsFinite(se) ? $"{Format(m.Value)} ± {Format(se)}" : Format(m.Value)) + (complete ? "" : "*"));
                }
                rows.Add(row.ToArray());
            }
        }
        var widths = header.Select((h, c) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[c].Length))).ToArray();
        var sb = new StringBuilder();
        void Row(IReadOnlyList<string> cells) =>
            sb.Append("| ").Append(string.Join(" | ", cells.Select((cell, c) => c < 2 ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c])))).AppendLine(" |");
        Row(header);
        sb.Append("| ").Append(string.Join(" | ", widths.Select((w, c) => c < 2 ? new string('-', w) : new string('-', w - 1) + ":"))).AppendLine(" |");
        foreach (var r in rows) Row(r);
        var unshared = reports.SelectMany(r => r.Tasks.Keys).Distinct().Where(k => !shared.Contains(k)).ToList();
        if (reports.Any(r => !r.Tasks.Values.All(t => t.Complete))) sb.AppendLine().AppendLine("* partial: the run was cancelled before the task finished.");
        if (unshared.Count > 0) sb.AppendLine().Append("Not in every report (left out): ").AppendLine(string.Join(", ", unshared));
        return sb.ToString();
    }
}
