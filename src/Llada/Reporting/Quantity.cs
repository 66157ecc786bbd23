using System.Globalization;

namespace Llada.Reporting;

/// <summary>Counts in user-facing text, with the noun agreeing: "1 token", "2 tokens", "1 batch", "3 batches".</summary>
public static class Quantity
{
    /// <summary>
    /// <paramref name="count"/> followed by <paramref name="singular"/> when it is 1, else by <paramref name="plural"/>
    /// (default: the singular plus "s", or "es" after s, x, ch and sh). <paramref name="format"/> formats the number
    /// ("N0" for thousands separators); invariant digits otherwise.
    /// </summary>
    public static string Of(long count, string singular, string? plural = null, string? format = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(singular);
        string number = format is null ? count.ToString(CultureInfo.InvariantCulture) : count.ToString(format, CultureInfo.CurrentCulture);
        return $"{number} {(count == 1 ? singular : plural ?? Plural(singular))}";
    }

    private static string Plural(string noun) =>
        noun.EndsWith('s') || noun.EndsWith('x') || noun.EndsWith("ch", StringComparison.Ordinal) || noun.EndsWith("sh", StringComparison.Ordinal)
            ? noun + "es" : noun + "s";
}
