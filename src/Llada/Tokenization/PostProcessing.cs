using System.Text;
using System.Text.Json;

namespace Llada.Tokenization;

/// <summary>A tokenizer.json "post_processor": adds special tokens around an encoded sequence.</summary>
internal sealed class PostProcessor
{
    private readonly int[] _prefix;
    private readonly int[] _suffix;

    private PostProcessor(int[] prefix, int[] suffix)
    {
        _prefix = prefix;
        _suffix = suffix;
    }

    public static readonly PostProcessor None = new([], []);

    public bool AddsAnything => _prefix.Length + _suffix.Length > 0;
    public IReadOnlyList<int> Prefix => _prefix;

    public void Apply(List<int> ids)
    {
        ids.InsertRange(0, _prefix);
        ids.AddRange(_suffix);
    }

    /// <summary>Reads TemplateProcessing (its "single" template), RobertaProcessing, BertProcessing, ByteLevel and Sequence.</summary>
    public static PostProcessor FromJson(JsonElement node, string file)
    {
        if (node.ValueKind == JsonValueKind.Null) return None;
        string type = JsonRead.String(node, "type", file, "post_processor");
        switch (type)
        {
            case "ByteLevel":
                return None; // only trims offsets; ids are unchanged
            case "TemplateProcessing":
            {
                var specials = new Dictionary<string, int[]>(StringComparer.Ordinal);
                if (node.TryGetProperty("special_tokens", out var st))
                    foreach (var p in st.EnumerateObject())
                        specials[p.Name] = [.. p.Value.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32())];
                var prefix = new List<int>();
                var suffix = new List<int>();
                bool seenSequence = false;
                foreach (var item in node.GetProperty("single").EnumerateArray())
                {
                    if (item.TryGetProperty("Sequence", out _)) { seenSequence = true; continue; }
                    string name = item.GetProperty("SpecialToken").GetProperty("id").GetString()!;
                    if (!specials.TryGetValue(name, out var ids))
                        throw new InvalidDataException($"{file}: TemplateProcessing uses special token '{name}' missing from its special_tokens.");
                    (seenSequence ? suffix : prefix).AddRange(ids);
                }
                return new PostProcessor([.. prefix], [.. suffix]);
            }
            case "RobertaProcessing":
            case "BertProcessing":
                return new PostProcessor([node.GetProperty("cls")[1].GetInt32()], [node.GetProperty("sep")[1].GetInt32()]);
            case "Sequence":
            {
                var prefix = new List<int>();
                var suffix = new List<int>();
                foreach (var child in node.GetProperty("processors").EnumerateArray())
                {
                    var p = FromJson(child, file);
                    prefix.InsertRange(0, p._prefix);
                    suffix.AddRange(p._suffix);
                }
                return new PostProcessor([.. prefix], [.. suffix]);
            }
            default:
                throw new NotSupportedException($"{file}: post_processor type '{type}' is not supported (supported: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence).");
        }
    }

    /// <summary>A processor that adds BOS (and/or EOS), as tokenizer_config.json add_bos_token/add_eos_token ask.</summary>
    public static PostProcessor FromFlags(int? bos, int? eos) =>
        new(bos is int b ? [b] : [], eos is int e ? [e] : []);
}

/// <summary>A tokenizer.json "decoder" turning tokens back into text.</summary>
internal enum DecoderKind { None, ByteLevel }

internal static class TokenDecoder
{
    public static DecoderKind FromJson(JsonElement node, string file)
    {
        if (node.ValueKind == JsonValueKind.Null) return DecoderKind.None;
        string type = JsonRead.String(node, "type", file, "decoder");
        if (type == "ByteLevel") return DecoderKind.ByteLevel;
        if (type == "Sequence")
        {
            var kinds = node.GetProperty("decoders").EnumerateArray().Select(d => FromJson(d, file)).Distinct().ToList();
            if (kinds.Count == 1) return kinds[0];
        }
        throw new NotSupportedException($"{file}: decoder type '{type}' is not supported (only ByteLevel).");
    }

    /// <summary>
    /// Appends the bytes of a vocabulary token: byte-level characters map back to their bytes; a token with any
    /// character outside the byte-level alphabet contributes its own UTF-8 (as Hugging Face's ByteLevel decoder does).
    /// </summary>
    public static void AppendByteLevel(string token, List<byte> bytes)
    {
        foreach (char c in token)
        {
            if (ByteLevelAlphabet.ToByte(c) < 0)
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(token));
                return;
            }
        }
        foreach (char c in token) bytes.Add((byte)ByteLevelAlphabet.ToByte(c));
    }
}
