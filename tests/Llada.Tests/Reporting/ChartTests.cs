using System.Globalization;
using System.Xml.Linq;
using Llada.Reporting;

namespace Llada.Tests.Reporting;

public sealed class ChartTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    private static (double X, double Y)[] PolylinePoints(XElement polyline) =>
        polyline.Attribute("points")!.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split(','))
            .Select(p => (double.Parse(p[0], CultureInfo.InvariantCulture), double.Parse(p[1], CultureInfo.InvariantCulture)))
            .ToArray();

    private static double Attr(XElement e, string name) => double.Parse(e.Attribute(name)!.Value, CultureInfo.InvariantCulture);

    [Fact]
    public void Log_ticks_cover_whole_decades_with_2_and_5_over_short_ranges()
    {
        double min = Math.Log10(3), max = Math.Log10(40);
        double[] ticks = SvgLineChart.LogTicks(ref min, ref max);
        Assert.Equal((0.0, 2.0), (min, max));
        Assert.Equal([1, 2, 5, 10, 20, 50, 100], ticks.Select(t => Math.Round(Math.Pow(10, t), 9)));

        min = Math.Log10(0.002); max = Math.Log10(3000);
        ticks = SvgLineChart.LogTicks(ref min, ref max);
        Assert.Equal([1e-3, 1e-2, 1e-1, 1, 10, 100, 1e3, 1e4], ticks.Select(t => Math.Round(Math.Pow(10, t), 9)));
    }

    [Fact]
    public void Log_axes_space_powers_of_ten_evenly_and_skip_non_positive_points()
    {
        var chart = new SvgLineChart { LogX = true, LogY = true, Width = 600, Height = 400 };
        chart.Series.Add(new ChartSeries("s", [(0, 5), (1, 1000), (10, 100), (100, 10), (1000, 1)], "#000"));
        var doc = XDocument.Parse(chart.Render());
        var points = PolylinePoints(doc.Descendants(Svg + "polyline").Single());

        Assert.Equal(4, points.Length); // x = 0 has no place on a log axis
        // Equal ratios are equal distances; the decades span the whole plot box.
        double dx = points[1].X - points[0].X, dy = points[1].Y - points[0].Y;
        for (int i = 2; i < points.Length; i++)
        {
            Assert.Equal(dx, points[i].X - points[i - 1].X, 1);
            Assert.Equal(dy, points[i].Y - points[i - 1].Y, 1);
        }
        var box = doc.Descendants(Svg + "rect").Single(r => r.Attribute("fill")?.Value == "none");
        Assert.Equal(Attr(box, "x"), points[0].X, 1);
        Assert.Equal(Attr(box, "x") + Attr(box, "width"), points[^1].X, 1);
        Assert.Equal(Attr(box, "y"), points[0].Y, 1);
        var labels = doc.Descendants(Svg + "text").Select(t => t.Value).ToHashSet();
        Assert.Superset(new HashSet<string> { "1", "10", "100", "1000" }, labels);
    }

    [Fact]
    public void Bars_are_proportional_to_their_values_and_carry_error_bars()
    {
        var chart = new SvgBarChart { Title = "t", Width = 600, Height = 400 };
        chart.Categories.AddRange(["forward", "reversed"]);
        chart.Series.Add(new BarSeries("MDM", [0.8, 0.4], "#1f77b4", [0.05, double.NaN]));
        chart.Series.Add(new BarSeries("AR", [0.6, 0.2], "#d62728"));
        var doc = XDocument.Parse(chart.Render());
        var bars = doc.Descendants(Svg + "rect").Where(r => r.Element(Svg + "title") is not null).ToList();

        Assert.Equal(["MDM, forward: 0.8", "AR, forward: 0.6", "MDM, reversed: 0.4", "AR, reversed: 0.2"],
            bars.Select(b => b.Element(Svg + "title")!.Value));
        double unit = Attr(bars[0], "height") / 0.8;
        Assert.Equal(0.6 * unit, Attr(bars[1], "height"), 1);
        Assert.Equal(0.4 * unit, Attr(bars[2], "height"), 1);
        Assert.Equal(0.2 * unit, Attr(bars[3], "height"), 1);
        // Bars stand on the same baseline.
        Assert.All(bars, b => Assert.Equal(Attr(bars[0], "y") + Attr(bars[0], "height"), Attr(b, "y") + Attr(b, "height"), 1));
        // One error bar (MDM forward), 0.05 above and below the top of its bar, centred on it.
        var error = doc.Descendants(Svg + "line").Single(l => l.Attribute("stroke")?.Value == "#222");
        Assert.Equal(Attr(bars[0], "x") + Attr(bars[0], "width") / 2, Attr(error, "x1"), 1);
        Assert.Equal(Attr(bars[0], "y") + 0.05 * unit, Attr(error, "y1"), 1);
        Assert.Equal(Attr(bars[0], "y") - 0.05 * unit, Attr(error, "y2"), 1);
    }

    [Fact]
    public void A_bar_series_with_the_wrong_number_of_values_is_rejected()
    {
        var chart = new SvgBarChart();
        chart.Categories.AddRange(["a", "b"]);
        chart.Series.Add(new BarSeries("s", [1.0], "#000"));
        var ex = Assert.Throws<ArgumentException>(() => chart.Render());
        Assert.Contains("'s' has 1 values for 2 categories", ex.Message);
    }

    [Fact]
    public void Csv_fields_may_be_quoted_and_bad_rows_name_their_line()
    {
        var table = CsvTable.Parse(["a,b", "\"x, \"\"y\"\"\",2.5", "", "z,nan"], "t.csv");
        Assert.Equal(["a", "b"], table.Header);
        Assert.Equal("x, \"y\"", table.Rows[0][0]);
        Assert.Equal(2.5, table.Number(0, table.Column("b")));
        Assert.True(double.IsNaN(table.Number(1, 1)));
        Assert.Contains("t.csv:3: 1 fields, the header has 2", Assert.Throws<FormatException>(() => CsvTable.Parse(["a,b", "1,2", "3"], "t.csv")).Message);
        Assert.Contains("no column 'c' (columns: a, b)", Assert.Throws<ArgumentException>(() => table.Column("c")).Message);
    }
}
