using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Llada.Tokenization;

/// <summary>
/// The "model" of a tokenizer.json of type BPE: vocabulary, ranked merges and the merge loop.
/// Merging follows Hugging Face: repeatedly apply the lowest-ranked merge present, leftmost first.
/// </summary>
internal sealed class BpeModel
{
    private const int CacheCapacity = 200_000;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    private readonly Dictionary<long, long> _merges; // (left << 32 | right) -> (rank << 32 | merged id)
    private readonly int[] _charIds; // id of each single byte-level character (char < 324), -1 when absent
    private readonly bool _ignoreMerges;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;

    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, bool ignoreMerges, string file)
    {
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        _ignoreMerges = ignoreMerges;
        _merges = new Dictionary<long, long>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (!vocab.TryGetValue(left, out int l) || !vocab.TryGetValue(right, out int r))
                throw new InvalidDataException($"{file}: merge #{rank} '{left} {right}' uses a token missing from the vocabulary.");
            if (!vocab.TryGetValue(left + right, out int merged))
                throw new InvalidDataException($"{file}: merge #{rank} '{left} {right}' produces '{left + right}', which is missing from the vocabulary.");
            _merges.TryAdd(Key(l, r), ((long)rank << 32) | (uint)merged); // first (lowest) rank wins, as in HF
        }
        _charIds = new int[324];
        for (int c = 0; c < _charIds.Length; c++)
            _charIds[c] = vocab.TryGetValue(((char)c).ToString(), out int id) ? id : -1;
    }

    public int VocabCount => _vocab.Count;

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    public bool TryGetId(ReadOnlySpan<char> token, out int id) => _vocabBySpan.TryGetValue(token, out id);

    private static JsonElement Required(JsonElement model, string key, JsonValueKind kind, string file) =>
        model.TryGetProperty(key, out var node) && node.ValueKind == kind
            ? node
            : throw new InvalidDataException($"{file}: \"model\" needs a \"{key}\" {(kind == JsonValueKind.Object ? "object" : "array")}");

    /// <summary>Reads the "model" node of a tokenizer.json.</summary>
    public static BpeModel FromJson(JsonElement model, string file)
    {
        string type = JsonRead.OptionalString(model, "type") ?? "BPE";
        if (type != "BPE") throw new NotSupportedException($"{file}: model type '{type}' is not supported (only BPE).");
        if (JsonRead.Bool(model, "byte_fallback", false))
            throw new NotSupportedException($"{file}: BPE byte_fallback is not supported (byte-level BPE needs no fallback).");
        if (!string.IsNullOrEmpty(JsonRead.OptionalString(model, "continuing_subword_prefix"))
            || !string.IsNullOrEmpty(JsonRead.OptionalString(model, "end_of_word_suffix")))
            throw new NotSupportedException($"{file}: BPE continuing_subword_prefix / end_of_word_suffix are not supported.");
        if (model.TryGetProperty("dropout", out var dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() > 0)
            throw new NotSupportedException($"{file}: BPE dropout is not supported.");

        var vocabNode = Required(model, "vocab", JsonValueKind.Object, file);
        var vocab = new Dictionary<string, int>(vocabNode.EnumerateObject().Count(), StringComparer.Ordinal);
        foreach (var entry in vocabNode.EnumerateObject()) vocab[entry.Name] = entry.Value.GetInt32();

        var merges = new List<(string, string)>();
        foreach (var m in Required(model, "merges", JsonValueKind.Array, file).EnumerateArray())
        {
            if (m.ValueKind == JsonValueKind.Array)
            {
                // Newer files: ["left", "right"].
                merges.Add((m[0].GetString()!, m[1].GetString()!));
            }
            else
            {
                // Older files: "left right" (neither side contains a space in byte-level vocabularies).
                string s = m.GetString()!;
                int space = s.IndexOf(' ', 1);
                if (space < 0) throw new InvalidDataException($"{file}: merge '{s}' is not of the form 'left right'.");
                merges.Add((s[..space], s[(space + 1)..]));
            }
        }
        return new BpeModel(vocab, merges, JsonRead.Bool(model, "ignore_merges", false), file);
    }

    /// <summary>Appends the ids of one pre-tokenised word given as byte-level characters.</summary>
    public void EncodeWord(ReadOnlySpan<char> word, List<int> ids)
    {
        if (word.Length == 0) return;
        if (_cacheBySpan.TryGetValue(word, out int[]? cached))
        {
            ids.AddRange(cached);
            return;
        }
        int[] result;
        if (_ignoreMerges && _vocabBySpan.TryGetValue(word, out int whole)) result = [whole];
        else result = Merge(word);
        if (_cache.Count >= CacheCapacity) _cache.Clear();
        _cacheBySpan.TryAdd(word, result);
        ids.AddRange(result);
    }

    private int[] Merge(ReadOnlySpan<char> word)
    {
        int n = word.Length;
        int[] id = new int[n], prev = new int[n], next = new int[n];
        int count = 0;
        for (int i = 0; i < n; i++)
        {
            char c = word[i];
            int t = c < _charIds.Length ? _charIds[c] : -1;
            if (t < 0 && !_vocabBySpan.TryGetValue(word.Slice(i, 1), out t)) continue; // no unk token: skipped, as in HF
            id[count++] = t;
        }
        if (count <= 1) return id.AsSpan(0, count).ToArray();
        if (count <= SmallWord) return MergeSmall(id.AsSpan(0, count));
        for (int i = 0; i < count; i++) { prev[i] = i - 1; next[i] = i + 1 < count ? i + 1 : -1; }

        // Min-heap of candidate merges ordered by (rank, position); stale entries are skipped when popped.
        var heap = new PriorityQueue<int, long>(count);
        for (int i = 0; i + 1 < count; i++)
            if (_merges.TryGetValue(Key(id[i], id[i + 1]), out long m)) heap.Enqueue(i, Priority(m, i));

        var alive = new bool[count];
        Array.Fill(alive, true);
        while (heap.TryDequeue(out int pos, out long priority))
        {
            int right = next[pos];
            if (!alive[pos] || right < 0) continue;
            if (!_merges.TryGetValue(Key(id[pos], id[right]), out long m) || (m >> 32) != (priority >> 32)) continue;

            id[pos] = (int)(uint)m;
            alive[right] = false;
            next[pos] = next[right];
            if (next[right] >= 0) prev[next[right]] = pos;

            if (prev[pos] >= 0 && _merges.TryGetValue(Key(id[prev[pos]], id[pos]), out long ml)) heap.Enqueue(prev[pos], Priority(ml, prev[pos]));
            if (next[pos] >= 0 && _merges.TryGetValue(Key(id[pos], id[next[pos]]), out long mr)) heap.Enqueue(pos, Priority(mr, pos));
        }

        var result = new List<int>(count);
        for (int i = 0; i >= 0; i = next[i]) result.Add(id[i]);
        return [.. result];
    }

    private const int SmallWord = 32;

    /// <summary>Short words: rescan adjacent pairs for the best merge each round (no heap, compacts in place).</summary>
    private int[] MergeSmall(Span<int> symbols)
    {
        int len = symbols.Length;
        while (len > 1)
        {
            long bestRank = long.MaxValue;
            int bestPos = -1, bestId = 0;
            for (int i = 0; i + 1 < len; i++)
            {
                if (_merges.TryGetValue(Key(symbols[i], symbols[i + 1]), out long m) && (m >> 32) < bestRank)
                {
                    bestRank = m >> 32;
                    bestPos = i;
                    bestId = (int)(uint)m;
                }
            }
            if (bestPos < 0) break;
            symbols[bestPos] = bestId;
            symbols.Slice(bestPos + 2, len - bestPos - 2).CopyTo(symbols.Slice(bestPos + 1));
            len--;
        }
        return symbols[..len].ToArray();
    }

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    // Ranks fit in 31 bits and positions in 32: rank first, then leftmost position.
    private static long Priority(long merge, int pos) => (merge & ~0xFFFFFFFFL) | (uint)pos;
}
