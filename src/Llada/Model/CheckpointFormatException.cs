namespace Llada.Model;

/// <summary>
/// A checkpoint file (safetensors, index or config.json) is malformed or does not match what the model needs.
/// The message names the file, the tensor or key when there is one, and what was expected.
/// </summary>
public class CheckpointFormatException : Exception
{
    /// <summary>Creates the exception for <paramref name="filePath"/> (and <paramref name="tensorName"/> if any).</summary>
    public CheckpointFormatException(string filePath, string? tensorName, string problem, Exception? inner = null)
        : this(filePath, tensorName, [problem], inner)
    {
    }

    /// <summary>Creates the exception reporting several problems of one file or checkpoint at once.</summary>
    public CheckpointFormatException(string filePath, string? tensorName, IReadOnlyList<string> problems, Exception? inner = null)
        : base(Format(filePath, tensorName, problems), inner)
    {
        FilePath = filePath;
        TensorName = tensorName;
        Problems = problems;
    }

    /// <summary>The file (or model directory) at fault.</summary>
    public string FilePath { get; }

    /// <summary>The tensor (or config key) at fault, when the problem concerns one.</summary>
    public string? TensorName { get; }

    /// <summary>Every problem found, one line each (a shape check reports all mismatches, not just the first).</summary>
    public IReadOnlyList<string> Problems { get; }

    private static string Format(string filePath, string? tensorName, IReadOnlyList<string> problems)
    {
        string where = tensorName is null ? filePath : $"{filePath}: '{tensorName}'";
        return problems.Count == 1
            ? $"{where}: {problems[0]}"
            : $"{where}: {problems.Count} problems:{Environment.NewLine}  " + string.Join(Environment.NewLine + "  ", problems);
    }
}

/// <summary>
/// The checkpoint is well formed but describes an architecture this implementation does not run
/// (e.g. activation_type other than silu, biases, no RoPE).
/// </summary>
public sealed class UnsupportedArchitectureException : CheckpointFormatException
{
    /// <summary>Creates the exception for the config key <paramref name="key"/> of <paramref name="filePath"/>.</summary>
    public UnsupportedArchitectureException(string filePath, string key, string problem)
        : base(filePath, key, "unsupported: " + problem)
    {
    }
}
