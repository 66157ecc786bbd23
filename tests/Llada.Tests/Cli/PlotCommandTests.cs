using System.Xml.Linq;

namespace Llada.Tests.Cli;

public sealed class PlotCommandTests : IDisposable
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";
    private readonly string _dir = Directory.CreateTempSubdirectory("llada-plot-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Csv(params string[] lines)
    {
        string path = Path.Combine(_dir, "t.csv");
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public async Task Series_column_splits_rows_into_one_line_each_with_a_point_per_row()
    {
        string csv = Csv("method,steps,accuracy", "random,4,0.1", "low_confidence,4,0.3", "random,8,0.2", "low_confidence,8,0.5", "random,16,0.25");
        string svg = Path.Combine(_dir, "a.svg");
        var (exit, stdout, stderr) = await CliTestHost.Run("plot", "--csv", csv, "--x", "steps", "--y", "accuracy", "--series", "method",
            "--log-x", "--title", "T", "--out", svg);
        Assert.True(exit == 0, stderr);
        Assert.Contains("2 series, 5 rows", stdout);
        var doc = XDocument.Load(svg);
        Assert.Equal([3, 2], doc.Descendants(Svg + "polyline").Select(p => p.Attribute("points")!.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length));
        var texts = doc.Descendants(Svg + "text").Select(t => t.Value).ToList();
        Assert.Contains("random", texts);
        Assert.Contains("low_confidence", texts);
        Assert.Contains("T", texts);
        Assert.Contains("steps", texts); // default x label
        Assert.Contains("accuracy", texts); // default y label
    }

    [Fact]
    public async Task Bar_chart_draws_a_bar_per_category_and_series_with_error_bars()
    {
        string csv = Csv("model,direction,accuracy,se", "MDM,seen,0.9,0.03", "MDM,reversed,0.3,0.05", "AR,seen,1.0,0", "AR,reversed,0.25,0.04");
        string svg = Path.Combine(_dir, "b.svg");
        var (exit, _, stderr) = await CliTestHost.Run("plot", "--csv", csv, "--kind", "bar", "--x", "direction", "--y", "accuracy",
            "--series", "model", "--error", "se", "--out", svg);
        Assert.True(exit == 0, stderr);
        var doc = XDocument.Load(svg);
        Assert.Equal(["MDM, seen: 0.9", "AR, seen: 1", "MDM, reversed: 0.3", "AR, reversed: 0.25"],
            doc.Descendants(Svg + "title").Select(t => t.Value));
        Assert.Equal(3, doc.Descendants(Svg + "line").Count(l => l.Attribute("stroke")?.Value == "#222")); // se 0 draws none
    }

    [Fact]
    public async Task An_existing_out_file_is_replaced_only_with_overwrite()
    {
        string csv = Csv("x,y", "1,2", "2,3");
        string svg = Path.Combine(_dir, "d.svg");
        File.WriteAllText(svg, "earlier chart");
        var (exit, _, stderr) = await CliTestHost.Run("plot", "--csv", csv, "--x", "x", "--y", "y", "--out", svg);
        Assert.Equal(1, exit);
        Assert.Contains($"--out '{svg}' already exists (use --overwrite to replace it)", stderr);
        Assert.Equal("earlier chart", File.ReadAllText(svg));

        (exit, _, stderr) = await CliTestHost.Run("plot", "--csv", csv, "--x", "x", "--y", "y", "--out", svg, "--overwrite");
        Assert.True(exit == 0, stderr);
        Assert.Single(XDocument.Load(svg).Descendants(Svg + "polyline"));

        (exit, _, stderr) = await CliTestHost.Run("plot", "--csv", csv, "--x", "x", "--y", "y", "--out", _dir, "--overwrite");
        Assert.Equal(1, exit);
        Assert.Contains("is a directory; give a file name", stderr);
        var (_, help, _) = await CliTestHost.Run("plot", "--help");
        Assert.Contains("Must not exist unless --overwrite", help);
    }

    [Theory]
    [InlineData("no column 'nope' (columns: x, y)", "--x", "nope", "--y", "y")]
    [InlineData("'abc' is not a number", "--x", "x", "--y", "y")]
    [InlineData("--kind must be line or bar", "--x", "x", "--y", "y", "--kind", "pie")]
    [InlineData("--error is only drawn on bar charts", "--x", "x", "--y", "y", "--error", "y")]
    public async Task Bad_arguments_are_one_clear_line(string expected, params string[] args)
    {
        string csv = Csv("x,y", "1,abc");
        var (exit, _, stderr) = await CliTestHost.Run(["plot", "--csv", csv, "--out", Path.Combine(_dir, "c.svg"), .. args]);
        Assert.Equal(1, exit);
        Assert.Contains(expected, stderr);
    }
}
