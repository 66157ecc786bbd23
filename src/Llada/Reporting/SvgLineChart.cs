using System.Globalization;
using System.Text;

namespace Llada.Reporting;

/// <summary>One line of a <see cref="SvgLineChart"/>.</summary>
/// <param name="Name">Legend text.</param>
/// <param name="Points">(x, y) pairs in drawing order; non-finite points are skipped.</param>
/// <param name="Color">CSS colour, e.g. "#1f77b4".</param>
/// <param name="Width">Stroke width in pixels.</param>
/// <param name="Opacity">Stroke opacity in [0, 1].</param>
/// <param name="Markers">Draw a dot at every point (useful for sparse series such as evaluations).</param>
public sealed record ChartSeries(string Name, IReadOnlyList<(double X, double Y)> Points, string Color,
    double Width = 1.5, double Opacity = 1.0, bool Markers = false);

/// <summary>
/// A small self-contained SVG line chart: linear axes with "nice" ticks (1, 2, 5 x 10^k) or logarithmic axes
/// (ticks at powers of ten, plus 2 and 5 times them over short ranges), grid, axis labels, title and legend.
/// No scripts, no external fonts or styles, so the file renders anywhere (browsers, GitHub).
/// </summary>
public sealed class SvgLineChart
{
    /// <summary>Chart title.</summary>
    public string Title { get; init; } = "";
    /// <summary>Label under the x axis.</summary>
    public string XLabel { get; init; } = "";
    /// <summary>Label beside the y axis.</summary>
    public string YLabel { get; init; } = "";
    /// <summary>Total width in pixels.</summary>
    public int Width { get; init; } = 720;
    /// <summary>Total height in pixels.</summary>
    public int Height { get; init; } = 420;
    /// <summary>Logarithmic x axis; points with x &lt;= 0 are skipped.</summary>
    public bool LogX { get; init; }
    /// <summary>Logarithmic y axis; points with y &lt;= 0 are skipped.</summary>
    public bool LogY { get; init; }
    /// <summary>Lines to draw.</summary>
    public List<ChartSeries> Series { get; } = [];

    /// <summary>Renders the chart as an SVG document.</summary>
    public string Render()
    {
        // Everything below works in axis space: log10 of the value on a logarithmic axis.
        List<(double X, double Y)> Drawable(ChartSeries s) => s.Points
            .Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y) && (!LogX || p.X > 0) && (!LogY || p.Y > 0))
            .Select(p => (LogX ? Math.Log10(p.X) : p.X, LogY ? Math.Log10(p.Y) : p.Y)).ToList();
        var lines = Series.Select(s => (Series: s, Points: Drawable(s))).ToList();
        var points = lines.SelectMany(l => l.Points).ToList();
        (double xMin, double xMax) = points.Count == 0 ? (0, 1) : (points.Min(p => p.X), points.Max(p => p.X));
        (double yMin, double yMax) = points.Count == 0 ? (0, 1) : (points.Min(p => p.Y), points.Max(p => p.Y));
        double[] xTicks = LogX ? LogTicks(ref xMin, ref xMax) : NiceTicks(ref xMin, ref xMax);
        double[] yTicks = LogY ? LogTicks(ref yMin, ref yMax) : NiceTicks(ref yMin, ref yMax);

        var frame = new SvgFrame(Width, Height, Title);
        double plotW = frame.PlotWidth, plotH = frame.PlotHeight;
        double X(double x) => SvgFrame.Left + (x - xMin) / (xMax - xMin) * plotW;
        double Y(double y) => SvgFrame.Top + plotH - (y - yMin) / (yMax - yMin) * plotH;
        string Label(double tick, bool log) => SvgFrame.FormatTick(log ? Math.Pow(10, tick) : tick);

        foreach (double t in xTicks) frame.XTick(X(t), Label(t, LogX));
        foreach (double t in yTicks) frame.YTick(Y(t), Label(t, LogY));
        frame.Box(XLabel, YLabel);

        foreach (var (s, finite) in lines)
        {
            if (finite.Count == 0) continue;
            var polyline = new StringBuilder();
            foreach (var (px, py) in finite) polyline.Append(CultureInfo.InvariantCulture, $"{X(px):0.##},{Y(py):0.##} ");
            frame.Append($"<polyline fill=\"none\" stroke=\"{SvgFrame.Escape(s.Color)}\" stroke-width=\"{s.Width:0.##}\" stroke-opacity=\"{s.Opacity:0.##}\" stroke-linejoin=\"round\" points=\"{polyline}\"/>\n");
            if (s.Markers)
                foreach (var (px, py) in finite)
                    frame.Append($"<circle cx=\"{X(px):0.##}\" cy=\"{Y(py):0.##}\" r=\"3\" fill=\"{SvgFrame.Escape(s.Color)}\"/>\n");
        }
        frame.Legend(Series.Select(s => (s.Name, s.Color, s.Width, s.Opacity)));
        return frame.Close();
    }

    /// <summary>
    /// Ticks at 1, 2 or 5 x 10^k covering [min, max] with about five intervals; widens the range to whole ticks.
    /// A degenerate range is widened around its value.
    /// </summary>
    public static double[] NiceTicks(ref double min, ref double max)
    {
        if (max <= min)
        {
            double pad = min == 0 ? 1 : Math.Abs(min) * 0.1;
            min -= pad; max += pad;
        }
        double raw = (max - min) / 5, magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = (raw / magnitude) switch { <= 1 => 1, <= 2 => 2, <= 5 => 5, _ => 10 } * magnitude;
        min = Math.Floor(min / step + 1e-9) * step;
        max = Math.Ceiling(max / step - 1e-9) * step;
        int count = (int)Math.Round((max - min) / step) + 1;
        var ticks = new double[count];
        for (int i = 0; i < count; i++) ticks[i] = Math.Round(min + i * step, 12);
        (min, max) = (ticks[0], ticks[^1]);
        return ticks;
    }

    /// <summary>
    /// Ticks of a logarithmic axis, in axis space (log10 of the value): [min, max] is widened to whole decades and
    /// gets a tick at every power of ten, plus 2 and 5 times each power when it spans at most two decades.
    /// </summary>
    public static double[] LogTicks(ref double min, ref double max)
    {
        double low = Math.Floor(min + 1e-9), high = Math.Ceiling(max - 1e-9);
        if (high <= low) high = low + 1;
        var ticks = new List<double>();
        for (double decade = low; decade <= high + 1e-9; decade++)
        {
            ticks.Add(decade);
            if (high - low <= 2 && decade < high)
            {
                ticks.Add(decade + Math.Log10(2));
                ticks.Add(decade + Math.Log10(5));
            }
        }
        (min, max) = (low, high);
        return [.. ticks];
    }
}
