using System.Globalization;
using System.Security;
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
/// A small self-contained SVG line chart: linear axes with "nice" ticks (1, 2, 5 x 10^k), grid, axis labels,
/// title and legend. No scripts, no external fonts or styles, so the file renders anywhere (browsers, GitHub).
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
    /// <summary>Lines to draw.</summary>
    public List<ChartSeries> Series { get; } = [];

    private const double Left = 64, Right = 16, Top = 36, Bottom = 48;

    /// <summary>Renders the chart as an SVG document.</summary>
    public string Render()
    {
        var points = Series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
        (double xMin, double xMax) = points.Count == 0 ? (0, 1) : (points.Min(p => p.X), points.Max(p => p.X));
        (double yMin, double yMax) = points.Count == 0 ? (0, 1) : (points.Min(p => p.Y), points.Max(p => p.Y));
        double[] xTicks = NiceTicks(ref xMin, ref xMax), yTicks = NiceTicks(ref yMin, ref yMax);
        double plotW = Width - Left - Right, plotH = Height - Top - Bottom;
        double X(double x) => Left + (x - xMin) / (xMax - xMin) * plotW;
        double Y(double y) => Top + plotH - (y - yMin) / (yMax - yMin) * plotH;

        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture,
            $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        svg.Append(CultureInfo.InvariantCulture, $"<rect width=\"{Width}\" height=\"{Height}\" fill=\"white\"/>\n");
        if (Title.Length > 0)
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Width / 2.0:0.#}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{Escape(Title)}</text>\n");

        foreach (double t in xTicks)
        {
            double x = X(t);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{x:0.##}\" y1=\"{Top}\" x2=\"{x:0.##}\" y2=\"{Top + plotH}\" stroke=\"#e5e5e5\"/>\n");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x:0.##}\" y=\"{Top + plotH + 16}\" text-anchor=\"middle\">{FormatTick(t)}</text>\n");
        }
        foreach (double t in yTicks)
        {
            double y = Y(t);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{y:0.##}\" x2=\"{Left + plotW}\" y2=\"{y:0.##}\" stroke=\"#e5e5e5\"/>\n");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{y + 4:0.##}\" text-anchor=\"end\">{FormatTick(t)}</text>\n");
        }
        svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{Left}\" y=\"{Top}\" width=\"{plotW}\" height=\"{plotH}\" fill=\"none\" stroke=\"#555\"/>\n");
        if (XLabel.Length > 0)
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left + plotW / 2:0.##}\" y=\"{Height - 10}\" text-anchor=\"middle\">{Escape(XLabel)}</text>\n");
        if (YLabel.Length > 0)
            svg.Append(CultureInfo.InvariantCulture,
                $"<text x=\"16\" y=\"{Top + plotH / 2:0.##}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {Top + plotH / 2:0.##})\">{Escape(YLabel)}</text>\n");

        foreach (var s in Series)
        {
            var finite = s.Points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
            if (finite.Count == 0) continue;
            svg.Append(CultureInfo.InvariantCulture,
                $"<polyline fill=\"none\" stroke=\"{Escape(s.Color)}\" stroke-width=\"{s.Width:0.##}\" stroke-opacity=\"{s.Opacity:0.##}\" stroke-linejoin=\"round\" points=\"");
            foreach (var (px, py) in finite) svg.Append(CultureInfo.InvariantCulture, $"{X(px):0.##},{Y(py):0.##} ");
            svg.Append("\"/>\n");
            if (s.Markers)
                foreach (var (px, py) in finite)
                    svg.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{X(px):0.##}\" cy=\"{Y(py):0.##}\" r=\"3\" fill=\"{Escape(s.Color)}\"/>\n");
        }

        // Legend in the top-right corner of the plot area.
        double ly = Top + 14;
        foreach (var s in Series)
        {
            double lx = Left + plotW - 170;
            svg.Append(CultureInfo.InvariantCulture,
                $"<line x1=\"{lx:0.##}\" y1=\"{ly - 4:0.##}\" x2=\"{lx + 22:0.##}\" y2=\"{ly - 4:0.##}\" stroke=\"{Escape(s.Color)}\" stroke-width=\"{Math.Max(2, s.Width):0.##}\" stroke-opacity=\"{Math.Max(0.6, s.Opacity):0.##}\"/>\n");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{lx + 28:0.##}\" y=\"{ly:0.##}\">{Escape(s.Name)}</text>\n");
            ly += 16;
        }
        svg.Append("</svg>\n");
        return svg.ToString();
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

    private static string FormatTick(double value) =>
        Math.Abs(value) >= 1e5 || (value != 0 && Math.Abs(value) < 1e-3)
            ? value.ToString("0.##E+0", CultureInfo.InvariantCulture)
            : value.ToString("0.####", CultureInfo.InvariantCulture);

    private static string Escape(string text) => SecurityElement.Escape(text) ?? "";
}
