using System.Globalization;
using System.Security;
using System.Text;

namespace Llada.Reporting;

/// <summary>
/// The parts every chart shares: the document with its title, the plot box and axis labels, the value axis
/// with grid lines, the legend, and text escaping. Charts place their marks inside the box.
/// </summary>
internal sealed class SvgFrame
{
    public const double Left = 64, Right = 16, Top = 36, Bottom = 48;
    private readonly StringBuilder _svg = new();

    public SvgFrame(int width, int height, string title)
    {
        (Width, Height) = (width, height);
        Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        Append($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        if (title.Length > 0) Append($"<text x=\"{width / 2.0:0.#}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{Escape(title)}</text>\n");
    }

    public int Width { get; }
    public int Height { get; }
    public double PlotWidth => Width - Left - Right;
    public double PlotHeight => Height - Top - Bottom;

    public void Append(FormattableString text) => _svg.Append(text.ToString(CultureInfo.InvariantCulture));

    /// <summary>A vertical grid line at <paramref name="x"/> with its label under the box.</summary>
    public void XTick(double x, string label)
    {
        Append($"<line x1=\"{x:0.##}\" y1=\"{Top}\" x2=\"{x:0.##}\" y2=\"{Top + PlotHeight}\" stroke=\"#e5e5e5\"/>\n");
        Append($"<text x=\"{x:0.##}\" y=\"{Top + PlotHeight + 16}\" text-anchor=\"middle\">{Escape(label)}</text>\n");
    }

    /// <summary>A horizontal grid line at <paramref name="y"/> with its label left of the box.</summary>
    public void YTick(double y, string label)
    {
        Append($"<line x1=\"{Left}\" y1=\"{y:0.##}\" x2=\"{Left + PlotWidth}\" y2=\"{y:0.##}\" stroke=\"#e5e5e5\"/>\n");
        Append($"<text x=\"{Left - 6}\" y=\"{y + 4:0.##}\" text-anchor=\"end\">{Escape(label)}</text>\n");
    }

    /// <summary>The plot box outline and the axis labels.</summary>
    public void Box(string xLabel, string yLabel)
    {
        Append($"<rect x=\"{Left}\" y=\"{Top}\" width=\"{PlotWidth}\" height=\"{PlotHeight}\" fill=\"none\" stroke=\"#555\"/>\n");
        if (xLabel.Length > 0)
            Append($"<text x=\"{Left + PlotWidth / 2:0.##}\" y=\"{Height - 10}\" text-anchor=\"middle\">{Escape(xLabel)}</text>\n");
        if (yLabel.Length > 0)
            Append($"<text x=\"16\" y=\"{Top + PlotHeight / 2:0.##}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {Top + PlotHeight / 2:0.##})\">{Escape(yLabel)}</text>\n");
    }

    /// <summary>One legend row per entry, in the top-right corner of the box.</summary>
    public void Legend(IEnumerable<(string Name, string Color, double Width, double Opacity)> entries)
    {
        double ly = Top + 14, lx = Left + PlotWidth - 170;
        foreach (var (name, color, width, opacity) in entries)
        {
            Append($"<line x1=\"{lx:0.##}\" y1=\"{ly - 4:0.##}\" x2=\"{lx + 22:0.##}\" y2=\"{ly - 4:0.##}\" stroke=\"{Escape(color)}\" stroke-width=\"{Math.Max(2, width):0.##}\" stroke-opacity=\"{Math.Max(0.6, opacity):0.##}\"/>\n");
            Append($"<text x=\"{lx + 28:0.##}\" y=\"{ly:0.##}\">{Escape(name)}</text>\n");
            ly += 16;
        }
    }

    public string Close()
    {
        _svg.Append("</svg>\n");
        return _svg.ToString();
    }

    public static string FormatTick(double value) =>
        Math.Abs(value) >= 1e5 || (value != 0 && Math.Abs(value) < 1e-3)
            ? value.ToString("0.##E+0", CultureInfo.InvariantCulture)
            : value.ToString("0.####", CultureInfo.InvariantCulture);

    public static string Escape(string text) => SecurityElement.Escape(text) ?? "";
}
