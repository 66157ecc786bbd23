namespace Llada.Training.Data;

/// <summary>Progress of a pass over source files, in bytes, for drawing a progress bar.</summary>
/// <param name="BytesProcessed">Bytes of source read so far, over all files.</param>
/// <param name="TotalBytes">Total size of all source files.</param>
/// <param name="CurrentFile">The file being read.</param>
public readonly record struct DataProgress(long BytesProcessed, long TotalBytes, string CurrentFile)
{
    /// <summary>Fraction done in [0, 1] (1 for empty input).</summary>
    public double Fraction => TotalBytes <= 0 ? 1.0 : Math.Min(1.0, (double)BytesProcessed / TotalBytes);
}
