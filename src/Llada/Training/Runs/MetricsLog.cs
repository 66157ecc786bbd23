using System.Text;
using System.Text.Json;
using Llada.Model;
using Llada.Reporting;

namespace Llada.Training.Runs;

/// <summary>One logged optimiser step.</summary>
/// <param name="Step">Steps completed (1 after the first step).</param>
/// <param name="Loss">Training loss of the step.</param>
/// <param name="LearningRate">Rate used.</param>
/// <param name="GradientNorm">Gradient norm before clipping.</param>
/// <param name="TokensPerSecond">Throughput of the step.</param>
/// <param name="ElapsedSeconds">Training wall-clock time of the whole run so far (all invocations).</param>
public sealed record TrainRecord(long Step, double Loss, double LearningRate, double GradientNorm, double TokensPerSecond, double ElapsedSeconds);

/// <summary>
/// The run's metrics: metrics.jsonl (one JSON object per line, "type" "train" or "eval") and the loss curve loss.svg.
/// Lines are appended as they happen, so a crashed run keeps its log; a resumed run first drops the lines after
/// the checkpoint it resumes from.
/// </summary>
public sealed class MetricsLog
{
    /// <summary>File name of the log.</summary>
    public const string FileName = "metrics.jsonl";
    /// <summary>File name of the loss curve.</summary>
    public const string ChartFileName = "loss.svg";

    private readonly List<TrainRecord> _train = [];
    private readonly List<HeldOutResult> _eval = [];

    private MetricsLog(string path) => Path = path;

    /// <summary>The log file.</summary>
    public string Path { get; }
    /// <summary>Logged steps.</summary>
    public IReadOnlyList<TrainRecord> Train => _train;
    /// <summary>Logged evaluations.</summary>
    public IReadOnlyList<HeldOutResult> Eval => _eval;

    /// <summary>
    /// Opens the log in <paramref name="directory"/>, keeping existing records up to step <paramref name="keepUpToStep"/>
    /// (0 for a fresh run: the file is emptied) and rewriting the file without the rest.
    /// </summary>
    public static MetricsLog Open(string directory, long keepUpToStep)
    {
        var log = new MetricsLog(System.IO.Path.Combine(directory, FileName));
        if (keepUpToStep > 0 && File.Exists(log.Path))
        {
            long lineNumber = 0;
            foreach (string line in File.ReadLines(log.Path))
            {
                lineNumber++;
                if (line.Length == 0) continue;
                try
                {
                    using var doc = JsonDocument.Parse(line);
                    var e = doc.RootElement;
                    long step = e.GetProperty("step").GetInt64();
                    if (step > keepUpToStep) continue;
                    if (e.GetProperty("type").GetString() == "eval")
                        log._eval.Add(new HeldOutResult(step, e.GetProperty("loss").GetDouble(), e.GetProperty("tokens").GetInt64(), e.GetProperty("bound").GetBoolean())
                        {
                            Accuracy = e.TryGetProperty("accuracy", out var accuracy) ? accuracy.GetDouble() : null,
                        });
                    else
                        log._train.Add(new TrainRecord(step, e.GetProperty("loss").GetDouble(), e.GetProperty("lr").GetDouble(),
                            e.GetProperty("grad_norm").GetDouble(), e.GetProperty("tokens_per_second").GetDouble(), e.GetProperty("elapsed_seconds").GetDouble()));
                }
                catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
                {
                    // A line cut by a crash is the only expected defect; anything earlier is a corrupt log.
                    throw new InvalidDataException($"{log.Path}:{lineNumber}: not a metrics record ({ex.Message})", ex);
                }
            }
        }
        var text = new StringBuilder();
        foreach (var r in log._train) text.Append(Format(r)).Append('\n');
        foreach (var r in log._eval) text.Append(Format(r)).Append('\n');
        SafetensorsWriter.WriteAtomically(log.Path, s => s.Write(Encoding.UTF8.GetBytes(text.ToString())));
        return log;
    }

    /// <summary>Appends a step.</summary>
    public void Append(TrainRecord record)
    {
        _train.Add(record);
        File.AppendAllText(Path, Format(record) + "\n");
    }

    /// <summary>Appends an evaluation.</summary>
    public void Append(HeldOutResult record)
    {
        _eval.Add(record);
        File.AppendAllText(Path, Format(record) + "\n");
    }

    /// <summary>Writes the loss curve (training loss, its moving average, held-out loss vs step) atomically.</summary>
    public void WriteChart(string path, string title)
    {
        var chart = new SvgLineChart { Title = title, XLabel = "step", YLabel = "loss (nats / token)" };
        chart.Series.Add(new ChartSeries("train", _train.Select(r => ((double)r.Step, r.Loss)).ToList(), "#1f77b4", 1, 0.35));
        // Diffusion losses are noisy (one random t per row), so the trend needs smoothing to be readable.
        var smooth = new List<(double, double)>(_train.Count);
        double ema = double.NaN;
        foreach (var r in _train)
        {
            ema = double.IsNaN(ema) ? r.Loss : 0.95 * ema + 0.05 * r.Loss;
            smooth.Add((r.Step, ema));
        }
        chart.Series.Add(new ChartSeries("train (moving average)", smooth, "#1f77b4", 2));
        if (_eval.Count > 0)
        {
            string name = _eval[0].Accuracy is not null ? "held-out DPO loss" : _eval[0].IsBound ? "held-out (ELBO bound)" : "held-out NLL";
            chart.Series.Add(new ChartSeries(name, _eval.Select(r => ((double)r.Step, r.Loss)).ToList(), "#d62728", 2, 1, Markers: true));
        }
        string svg = chart.Render();
        SafetensorsWriter.WriteAtomically(path, s => s.Write(Encoding.UTF8.GetBytes(svg)));
    }

    private static string Format(TrainRecord r) => Json(w =>
    {
        w.WriteString("type", "train");
        w.WriteNumber("step", r.Step);
        w.WriteNumber("loss", r.Loss);
        w.WriteNumber("lr", r.LearningRate);
        w.WriteNumber("grad_norm", r.GradientNorm);
        w.WriteNumber("tokens_per_second", Math.Round(r.TokensPerSecond, 1));
        w.WriteNumber("elapsed_seconds", Math.Round(r.ElapsedSeconds, 3));
    });

    private static string Format(HeldOutResult r) => Json(w =>
    {
        w.WriteString("type", "eval");
        w.WriteNumber("step", r.Step);
        w.WriteNumber("loss", r.Loss);
        w.WriteNumber("bits_per_token", r.BitsPerToken);
        if (double.IsFinite(r.Perplexity)) w.WriteNumber("perplexity", r.Perplexity); else w.WriteNull("perplexity");
        w.WriteBoolean("bound", r.IsBound);
        w.WriteNumber("tokens", r.Tokens);
        if (r.Accuracy is { } accuracy) w.WriteNumber("accuracy", accuracy);
    });

    private static string Json(Action<Utf8JsonWriter> body)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
