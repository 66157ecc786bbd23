namespace Llada.Training.Data;

/// <summary>
/// A training data file is unusable: empty, not valid UTF-8, malformed JSON, a missing or wrong field, or a
/// dialogue that cannot be trained on. The message always starts with <c>path:line:</c> when a line is known.
/// </summary>
public sealed class DataFormatException : Exception
{
    /// <summary>Creates the exception for <paramref name="path"/>, optionally at a 1-based <paramref name="line"/>.</summary>
    public DataFormatException(string path, long line, string problem, Exception? inner = null)
        : base(line > 0 ? $"{path}:{line}: {problem}" : $"{path}: {problem}", inner)
    {
        Path = path;
        Line = line;
        Problem = problem;
    }

    /// <summary>The offending file.</summary>
    public string Path { get; }

    /// <summary>1-based line number, or 0 when the problem concerns the whole file.</summary>
    public long Line { get; }

    /// <summary>The problem without the location prefix.</summary>
    public string Problem { get; }
}
