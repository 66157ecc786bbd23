using System.CommandLine;
using Llada.Reporting;

namespace Llada.Cli.Commands;

/// <summary>`llada plot`: an SVG line or bar chart from columns of a CSV file.</summary>
internal static class PlotCommand
{
    private static readonly string[] Palette =
        ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

    public static Command Create()
    {
        var csv = new Option<string>("--csv") { Description = "CSV file with a header row.", Required = true };
        var x = new Option<string>("--x") { Description = "Column for the x axis (line: numbers; bar: category labels).", Required = true };
        var y = new Option<string[]>("--y")
        {
            Description = "One or more value columns; each becomes a series (named after the column).",
            Required = true, AllowMultipleArgumentsPerToken = true,
        };
        var series = new Option<string?>("--series") { Description = "Split rows into series by the value of this column (e.g. a method name)." };
        var error = new Option<string[]>("--error")
        {
            Description = "Bar charts: error-bar half-length columns (e.g. standard errors), one per --y column, in the same order.",
            AllowMultipleArgumentsPerToken = true,
        };
        var kind = new Option<string>("--kind") { Description = "line (default) or bar.", DefaultValueFactory = _ => "line" };
        var logX = new Option<bool>("--log-x") { Description = "Logarithmic x axis (line charts)." };
        var logY = new Option<bool>("--log-y") { Description = "Logarithmic y axis (line charts)." };
        var title = new Option<string>("--title") { Description = "Chart title.", DefaultValueFactory = _ => "" };
        var xLabel = new Option<string?>("--xlabel") { Description = "x axis label (default: the --x column)." };
        var yLabel = new Option<string?>("--ylabel") { Description = "y axis label (default: the --y column when there is one)." };
        var output = new Option<string>("--out", "-o") { Description = "SVG file to write. Must not exist unless --overwrite.", Required = true };
        var overwrite = ModelSource.OverwriteOption();
        var command = new Command("plot",
            "Draw an SVG chart (no scripts or external resources) from columns of a CSV file: lines over a numeric x, or grouped bars " +
            "over categories, one series per --y column or per value of --series.\n\n" +
            "Examples:\n" +
            "  llada plot --csv ablation.csv --x steps --y accuracy --series remasking --log-x --out steps.svg\n" +
            "  llada plot --csv reversal.csv --kind bar --x direction --y accuracy --series model --out reversal.svg\n" +
            "  llada plot --csv variance.csv --x mc_num --y std_eq6 std_t --log-x --log-y --out variance.svg");
        foreach (var option in new Option[] { csv, x, y, series, error, kind, logX, logY, title, xLabel, yLabel, output, overwrite })
            command.Options.Add(option);
        CliAction.Set(command, (parse, ctx, _) =>
        {
            string path = parse.GetValue(output)!;
            OutputPaths.CheckFile(path, "--out", parse.GetValue(overwrite), "chart.svg");
            var table = CsvTable.Load(parse.GetValue(csv)!);
            string xName = parse.GetValue(x)!;
            string[] yNames = parse.GetValue(y) ?? [];
            string[] errorNames = parse.GetValue(error) ?? [];
            string? seriesName = parse.GetValue(series);
            string chartKind = parse.GetValue(kind)!;
            if (chartKind is not ("line" or "bar")) throw new ArgumentException($"--kind must be line or bar, not '{chartKind}'");
            if (errorNames.Length > 0 && errorNames.Length != yNames.Length)
                throw new ArgumentException($"--error needs one column per --y column ({yNames.Length}), got {errorNames.Length}");
            if (errorNames.Length > 0 && chartKind != "bar") throw new ArgumentException("--error is only drawn on bar charts (--kind bar)");

            int xColumn = table.Column(xName);
            int[] yColumns = yNames.Select(table.Column).ToArray();
            int[] errorColumns = errorNames.Select(table.Column).ToArray();
            int? seriesColumn = seriesName is null ? null : table.Column(seriesName);
            var groups = Group(table, seriesColumn, yNames);
            string xText = parse.GetValue(xLabel) ?? xName;
            string yText = parse.GetValue(yLabel) ?? (yNames.Length == 1 ? yNames[0] : "");

            string svg;
            if (chartKind == "line")
            {
                var chart = new SvgLineChart
                {
                    Title = parse.GetValue(title)!, XLabel = xText, YLabel = yText, LogX = parse.GetValue(logX), LogY = parse.GetValue(logY),
                };
                for (int g = 0; g < groups.Count; g++)
                {
                    var (name, rows, k) = groups[g];
                    var points = rows.Select(r => (table.Number(r, xColumn), table.Number(r, yColumns[k]))).ToList();
                    chart.Series.Add(new ChartSeries(name, points, Palette[g % Palette.Length], 2, 1, Markers: true));
                }
                svg = chart.Render();
            }
            else
            {
                var chart = new SvgBarChart { Title = parse.GetValue(title)!, XLabel = xText, YLabel = yText };
                foreach (var row in table.Rows)
                    if (!chart.Categories.Contains(row[xColumn])) chart.Categories.Add(row[xColumn]);
                for (int g = 0; g < groups.Count; g++)
                {
                    var (name, rows, k) = groups[g];
                    var values = Enumerable.Repeat(double.NaN, chart.Categories.Count).ToArray();
                    var errors = Enumerable.Repeat(double.NaN, chart.Categories.Count).ToArray();
                    foreach (int r in rows)
                    {
                        int c = chart.Categories.IndexOf(table.Rows[r][xColumn]);
                        if (!double.IsNaN(values[c]))
                            throw new ArgumentException($"{table.Source}: series '{name}' has two rows for category '{table.Rows[r][xColumn]}'");
                        values[c] = table.Number(r, yColumns[k]);
                        if (errorColumns.Length > 0) errors[c] = table.Number(r, errorColumns[k]);
                    }
                    chart.Series.Add(new BarSeries(name, values, Palette[g % Palette.Length], errorColumns.Length > 0 ? errors : null));
                }
                svg = chart.Render();
            }
            File.WriteAllText(path, svg);
            ctx.Output.WriteLine($"wrote {path}: {Quantity.Of(groups.Count, "series", "series")}, {Quantity.Of(table.Rows.Count, "row")}");
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>Series in order of first appearance: one per (value of the series column, y column).</summary>
    private static List<(string Name, List<int> Rows, int YIndex)> Group(CsvTable table, int? seriesColumn, string[] yNames)
    {
        var groups = new List<(string Name, List<int> Rows, int YIndex)>();
        for (int r = 0; r < table.Rows.Count; r++)
            for (int k = 0; k < yNames.Length; k++)
            {
                string name = seriesColumn is { } s
                    ? (yNames.Length == 1 ? table.Rows[r][s] : $"{table.Rows[r][s]} {yNames[k]}")
                    : yNames[k];
                int index = groups.FindIndex(g => g.Name == name);
                if (index < 0) groups.Add((name, [r], k));
                else groups[index].Rows.Add(r);
            }
        return groups;
    }
}
