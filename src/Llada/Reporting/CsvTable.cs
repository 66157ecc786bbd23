using System.Text;

namespace Llada.Reporting;

/// <summary>
/// A comma-separated table with a header row, as written by the experiment scripts: fields may be double-quoted
/// (a doubled quote inside stands for one quote); blank lines are skipped.
/// </summary>
public sealed class CsvTable
{
    private readonly Dictionary<string, int> _columns;

    private CsvTable(string source, string[] header, List<string[]> rows)
    {
        Source = source;
        Header = header;
        Rows = rows;
        _columns = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < header.Length; i++)
            if (!_columns.TryAdd(header[i], i)) throw new FormatException($"{source}:1: column '{header[i]}' appears twice");
    }

    /// <summary>Where the table came from (for messages).</summary>
    public string Source { get; }
    /// <summary>Column names.</summary>
    public IReadOnlyList<string> Header { get; }
    /// <summary>Data rows; each has one field per column.</summary>
    public IReadOnlyList<string[]> Rows { get; }

    /// <summary>Reads <paramref name="path"/>; every malformed line is reported as path:line.</summary>
    public static CsvTable Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"CSV file '{path}' not found", path);
        return Parse(File.ReadAllLines(path), path);
    }

    /// <summary>Parses <paramref name="lines"/>; <paramref name="source"/> names them in error messages.</summary>
    public static CsvTable Parse(IEnumerable<string> lines, string source)
    {
        string[]? header = null;
        var rows = new List<string[]>();
        int number = 0;
        foreach (string line in lines)
        {
            number++;
            if (line.Trim().Length == 0) continue;
            string[] fields = SplitLine(line, $"{source}:{number}");
            if (header is null) { header = fields; continue; }
            if (fields.Length != header.Length)
                throw new FormatException($"{source}:{number}: {fields.Length} fields, the header has {header.Length}");
            rows.Add(fields);
        }
        return new CsvTable(source, header ?? throw new FormatException($"{source}: no header row"), rows);
    }

    /// <summary>The index of column <paramref name="name"/>, or an error listing the columns there are.</summary>
    public int Column(string name) =>
        _columns.TryGetValue(name, out int i) ? i
            : throw new ArgumentException($"{Source} has no column '{name}' (columns: {string.Join(", ", Header)})");

    /// <summary>Field <paramref name="column"/> of row <paramref name="row"/> as a number (empty or "nan": NaN).</summary>
    public double Number(int row, int column)
    {
        string text = Rows[row][column].Trim();
        if (text.Length == 0 || text.Equals("nan", StringComparison.OrdinalIgnoreCase)) return double.NaN;
        return double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new FormatException($"{Source}: row {row + 1}, column '{Header[column]}': '{text}' is not a number");
    }

    private static string[] SplitLine(string line, string where)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c != '"') field.Append(c);
                else if (i + 1 < line.Length && line[i + 1] == '"') { field.Append('"'); i++; }
                else quoted = false;
            }
            else if (c == '"' && field.Length == 0) quoted = true;
            else if (c == ',') { fields.Add(field.ToString()); field.Clear(); }
            else field.Append(c);
        }
        if (quoted) throw new FormatException($"{where}: unterminated quoted field");
        fields.Add(field.ToString());
        return [.. fields];
    }
}
