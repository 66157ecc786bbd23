namespace Llada.Reporting;

/// <summary>One group member of a <see cref="SvgBarChart"/>: a value per category.</summary>
/// <param name="Name">Legend text.</param>
/// <param name="Values">One value per category (NaN: no bar).</param>
/// <param name="Color">CSS colour.</param>
/// <param name="Errors">Optional half-length of an error bar per category (e.g. a standard error); NaN or null: none.</param>
public sealed record BarSeries(string Name, IReadOnlyList<double> Values, string Color, IReadOnlyList<double>? Errors = null);

/// <summary>
/// A small self-contained SVG grouped bar chart: one group of bars per category, one bar per series, optional
/// error bars, a linear value axis that always includes zero, category labels, title and legend.
/// </summary>
public sealed class SvgBarChart
{
    /// <summary>Chart title.</summary>
    public string Title { get; init; } = "";
    /// <summary>Label under the category axis.</summary>
    public string XLabel { get; init; } = "";
    /// <summary>Label beside the value axis.</summary>
    public string YLabel { get; init; } = "";
    /// <summary>Total width in pixels.</summary>
    public int Width { get; init; } = 720;
    /// <summary>Total height in pixels.</summary>
    public int Height { get; init; } = 420;
    /// <summary>Category labels, in drawing order.</summary>
    public List<string> Categories { get; } = [];
    /// <summary>Bars of each series; every series has one value per category.</summary>
    public List<BarSeries> Series { get; } = [];

    /// <summary>Renders the chart as an SVG document.</summary>
    public string Render()
    {
        foreach (var s in Series)
        {
            if (s.Values.Count != Categories.Count)
                throw new ArgumentException($"bar series '{s.Name}' has {s.Values.Count} values for {Categories.Count} categories");
            if (s.Errors is { } e && e.Count != Categories.Count)
                throw new ArgumentException($"bar series '{s.Name}' has {e.Count} error bars for {Categories.Count} categories");
        }
        double Error(BarSeries s, int c) => s.Errors is { } e && double.IsFinite(e[c]) ? Math.Abs(e[c]) : 0;
        var extents = Series.SelectMany(s => Enumerable.Range(0, Categories.Count).Where(c => double.IsFinite(s.Values[c]))
            .SelectMany(c => new[] { s.Values[c] - Error(s, c), s.Values[c] + Error(s, c) })).ToList();
        double yMin = Math.Min(0, extents.Count == 0 ? 0 : extents.Min()), yMax = Math.Max(0, extents.Count == 0 ? 1 : extents.Max());
        double[] yTicks = SvgLineChart.NiceTicks(ref yMin, ref yMax);

        var frame = new SvgFrame(Width, Height, Title);
        double plotH = frame.PlotHeight;
        double Y(double y) => SvgFrame.Top + plotH - (y - yMin) / (yMax - yMin) * plotH;
        foreach (double t in yTicks) frame.YTick(Y(t), SvgFrame.FormatTick(t));

        // Each category gets an equal slot; its bars fill 80% of the slot side by side.
        double slot = frame.PlotWidth / Math.Max(1, Categories.Count), bar = slot * 0.8 / Math.Max(1, Series.Count);
        for (int c = 0; c < Categories.Count; c++)
        {
            double slotLeft = SvgFrame.Left + c * slot;
            frame.Append($"<text x=\"{slotLeft + slot / 2:0.##}\" y=\"{SvgFrame.Top + plotH + 16}\" text-anchor=\"middle\">{SvgFrame.Escape(Categories[c])}</text>\n");
            for (int i = 0; i < Series.Count; i++)
            {
                var s = Series[i];
                double value = s.Values[c];
                if (!double.IsFinite(value)) continue;
                double x = slotLeft + slot * 0.1 + i * bar, top = Y(Math.Max(value, 0)), bottom = Y(Math.Min(value, 0));
                frame.Append($"<rect x=\"{x:0.##}\" y=\"{top:0.##}\" width=\"{bar:0.##}\" height=\"{bottom - top:0.##}\" fill=\"{SvgFrame.Escape(s.Color)}\"><title>{SvgFrame.Escape($"{s.Name}, {Categories[c]}: {SvgFrame.FormatTick(value)}")}</title></rect>\n");
                double error = Error(s, c);
                if (error > 0)
                {
                    double mid = x + bar / 2;
                    frame.Append($"<line x1=\"{mid:0.##}\" y1=\"{Y(value - error):0.##}\" x2=\"{mid:0.##}\" y2=\"{Y(value + error):0.##}\" stroke=\"#222\"/>\n");
                }
            }
        }
        frame.Append($"<line x1=\"{SvgFrame.Left}\" y1=\"{Y(0):0.##}\" x2=\"{SvgFrame.Left + frame.PlotWidth}\" y2=\"{Y(0):0.##}\" stroke=\"#555\"/>\n");
        frame.Box(XLabel, YLabel);
        frame.Legend(Series.Select(s => (s.Name, s.Color, 8.0, 1.0)));
        return frame.Close();
    }
}
