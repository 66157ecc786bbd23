using System.Text;
using System.Text.Json;

namespace Llada.Tokenization;

/// <summary>A tokenizer.json "normalizer": rewrites text before pre-tokenisation.</summary>
internal abstract class TextNormalizer
{
    public abstract string Normalize(string text);

    /// <summary>Builds the normalizer a tokenizer.json node describes (null for a JSON null).</summary>
    public static TextNormalizer? FromJson(JsonElement node, string file)
    {
        if (node.ValueKind == JsonValueKind.Null) return null;
        string type = JsonRead.String(node, "type", file, "normalizer");
        switch (type)
        {
            case "NFC": return new UnicodeForm(NormalizationForm.FormC);
            case "NFD": return new UnicodeForm(NormalizationForm.FormD);
            case "NFKC": return new UnicodeForm(NormalizationForm.FormKC);
            case "NFKD": return new UnicodeForm(NormalizationForm.FormKD);
            case "Lowercase": return new Lowercase();
            case "Prepend": return new Prepend(JsonRead.String(node, "prepend", file, "Prepend normalizer"));
            case "Strip":
                return new Strip(JsonRead.Bool(node, "strip_left", true), JsonRead.Bool(node, "strip_right", true));
            case "Replace":
            {
                var pattern = node.GetProperty("pattern");
                string content = JsonRead.String(node, "content", file, "Replace normalizer");
                return pattern.TryGetProperty("String", out var literal)
                    ? new Replace(SplitPattern.FromLiteral(literal.GetString()!), content)
                    : new Replace(SplitPattern.FromRegex(pattern.GetProperty("Regex").GetString()!), content);
            }
            case "Sequence":
            {
                var parts = new List<TextNormalizer>();
                foreach (var child in node.GetProperty("normalizers").EnumerateArray())
                    if (FromJson(child, file) is { } n) parts.Add(n);
                return new Sequence(parts);
            }
            default:
                throw new NotSupportedException($"{file}: normalizer type '{type}' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Strip, Replace, Sequence).");
        }
    }

    private sealed class UnicodeForm(NormalizationForm form) : TextNormalizer
    {
        public override string Normalize(string text) => UnicodeNormalizer.Normalize(text, form);
    }

    private sealed class Lowercase : TextNormalizer
    {
        public override string Normalize(string text) => text.ToLowerInvariant();
    }

    private sealed class Prepend(string prefix) : TextNormalizer
    {
        public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;
    }

    private sealed class Strip(bool left, bool right) : TextNormalizer
    {
        public override string Normalize(string text) => left && right ? text.Trim() : left ? text.TrimStart() : right ? text.TrimEnd() : text;
    }

    private sealed class Replace(SplitPattern pattern, string content) : TextNormalizer
    {
        public override string Normalize(string text)
        {
            var matches = new List<(int Start, int Length)>();
            pattern.Matches(text, matches);
            if (matches.Count == 0) return text;
            var sb = new StringBuilder(text.Length);
            int prev = 0;
            foreach (var (start, length) in matches)
            {
                sb.Append(text, prev, start - prev).Append(content);
                prev = start + length;
            }
            return sb.Append(text, prev, text.Length - prev).ToString();
        }
    }

    private sealed class Sequence(List<TextNormalizer> parts) : TextNormalizer
    {
        public override string Normalize(string text)
        {
            foreach (var part in parts) text = part.Normalize(text);
            return text;
        }
    }
}

/// <summary>Small helpers that read tokenizer.json / tokenizer_config.json fields with file-specific errors.</summary>
internal static class JsonRead
{
    public static string String(JsonElement node, string name, string file, string what)
    {
        if (node.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String) return v.GetString()!;
        throw new InvalidDataException($"{file}: {what} has no string field '{name}'.");
    }

    public static bool Bool(JsonElement node, string name, bool fallback) =>
        node.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;

    public static string? OptionalString(JsonElement node, string name) =>
        node.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
