namespace Llada.Cli.Commands;

/// <summary>
/// Checks an output path before the work that fills it, so a taken or unwritable --out fails in a moment with its
/// option named, instead of after an evaluation, a conversion or a training setup has run. Nothing is created here:
/// writability is probed in the nearest folder that already exists, so a refused path leaves no trace.
/// </summary>
internal static class OutputPaths
{
    /// <summary>
    /// A file to write (a report, a chart): not a directory, not an existing file unless <paramref name="overwrite"/>,
    /// and in a place where a file can be created. No-op for null (the option was not given).
    /// </summary>
    public static void CheckFile(string? path, string option, bool overwrite, string example)
    {
        if (path is null) return;
        if (Directory.Exists(path))
            throw new ArgumentException($"{option} '{path}' is a directory; give a file name, e.g. {Path.Combine(path, example)}");
        if (File.Exists(path) && !overwrite) throw new IOException($"{option} '{path}' already exists (use --overwrite to replace it)");
        ProbeWritable(Path.GetDirectoryName(Path.GetFullPath(path))!, path, option);
    }

    /// <summary>A directory to create or fill: not a file, and inside a folder where entries can be created.</summary>
    public static void CheckDirectory(string path, string option)
    {
        if (File.Exists(path)) throw new IOException($"{option} '{path}' is a file; the output must be a directory");
        ProbeWritable(Path.GetFullPath(path), path, option);
    }

    /// <summary>Creates and deletes a probe file in the nearest existing folder of <paramref name="folder"/>.</summary>
    private static void ProbeWritable(string folder, string path, string option)
    {
        string? existing = Path.TrimEndingDirectorySeparator(folder);
        while (existing is not null && !Directory.Exists(existing))
        {
            if (File.Exists(existing)) throw new IOException($"{option} '{path}': '{existing}' is a file, not a folder");
            existing = Path.GetDirectoryName(existing);
        }
        if (existing is null) throw new IOException($"{option} '{path}': no part of the path exists");
        string probe = Path.Combine(existing, $".llada-write-probe-{Guid.NewGuid():N}");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (UnauthorizedAccessException)
        {
            throw new IOException($"{option} '{path}': cannot write in '{existing}' (permission denied)");
        }
        catch (IOException)
        {
            throw new IOException($"{option} '{path}': cannot write in '{existing}' (creating a file there fails)");
        }
    }
}
