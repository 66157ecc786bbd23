using System.Runtime.InteropServices;
using System.Text;

namespace Llada.Tokenization;

/// <summary>
/// Trains a GPT-2-style byte-level BPE tokenizer with the pre-tokenisation <see cref="Tokenizer"/> applies
/// (Split by <see cref="BpeTrainerOptions.Regex"/>, Isolated, then ByteLevel without prefix space or regex), so the
/// words counted here are exactly the words the trained tokenizer will encode.
/// <para>
/// Algorithm: count unique pre-tokenised words (as byte-level strings) while streaming the text; split each word
/// into its 256-symbol byte alphabet; then repeatedly merge the most frequent adjacent pair. Ties go to the
/// pair with the smallest (left id, right id), where the 256 byte symbols have ids 0-255 in code-point order and
/// merged tokens get the following ids in creation order (Hugging Face's BpeTrainer orders ties the same way).
/// Pair counts are updated incrementally: an index from each pair to the words holding it limits each merge to the
/// affected words, and a priority queue with lazy invalidation (an entry whose count is stale is re-queued with
/// the current count when popped) picks the best pair.
/// </para>
/// <para>
/// A merge whose concatenation already is a token (e.g. "Ġt"+"he" after "Ġth"+"e") is recorded but adds no
/// vocabulary entry. Special tokens in the text are cut out before counting, as they are when encoding.
/// </para>
/// </summary>
public sealed class BpeTrainer
{
    private const int ChunkChars = 1 << 20;

    private readonly SplitPattern _pattern;
    private readonly Dictionary<string, long> _wordCounts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long>.AlternateLookup<ReadOnlySpan<char>> _wordCountsBySpan;
    private readonly List<(int Start, int Length)> _matches = new();
    private byte[] _bytes = new byte[256];
    private char[] _chars = new char[256];

    /// <summary>Creates a trainer; <paramref name="options"/> defaults to LLaDA's settings with vocabulary 8192.</summary>
    public BpeTrainer(BpeTrainerOptions? options = null)
    {
        Options = options ?? new BpeTrainerOptions();
        Options.Validate();
        _pattern = SplitPattern.FromRegex(Options.Regex);
        _wordCountsBySpan = _wordCounts.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The settings.</summary>
    public BpeTrainerOptions Options { get; }

    /// <summary>Counts of the unique pre-tokenised words seen so far, as byte-level strings (space = 'Ġ').</summary>
    public IReadOnlyDictionary<string, long> WordCounts => _wordCounts;

    /// <summary>
    /// Trains on <paramref name="files"/> (UTF-8 text) and writes tokenizer.json, tokenizer_config.json and
    /// special_tokens_map.json into <paramref name="outputDirectory"/> (created if missing; each file written atomically).
    /// </summary>
    public static BpeTrainingResult TrainFiles(IReadOnlyList<string> files, string outputDirectory, BpeTrainerOptions? options = null,
        IProgress<BpeTrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(files);
        if (files.Count == 0) throw new ArgumentException("No training files given.", nameof(files));
        var trainer = new BpeTrainer(options);
        long total = 0;
        foreach (var f in files)
        {
            if (!File.Exists(f)) throw new FileNotFoundException($"Tokenizer training file '{f}' does not exist.", f);
            total += new FileInfo(f).Length;
        }
        long done = 0;
        foreach (var f in files)
        {
            long before = done;
            var inner = progress is null ? null : new ForwardProgress(p => progress.Report(new BpeTrainingProgress("count", before + p.Completed, total)));
            trainer.AddFile(f, inner, cancellationToken);
            done += new FileInfo(f).Length;
        }
        var result = trainer.Train(progress, cancellationToken);
        result.WriteDirectory(outputDirectory);
        return result;
    }

    /// <summary>Counts the words of a text (a whole document: line breaks are pre-tokenised like any other text).</summary>
    public void AddText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        CountChunk(text);
    }

    /// <summary>
    /// Streams a UTF-8 file and counts its words. The file is read in chunks cut right after a line break that is
    /// followed by a non-space character; no match of a GPT-style pattern crosses such a point, so the counts equal
    /// those of the whole file pre-tokenised at once.
    /// </summary>
    public void AddFile(string path, IProgress<BpeTrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        using var reader = new StreamReader(stream, new UTF8Encoding(false, throwOnInvalidBytes: true), detectEncodingFromByteOrderMarks: true);
        char[] buffer = new char[ChunkChars];
        int filled = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (filled == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2); // no cut point yet: read more
            int read;
            try
            {
                read = reader.Read(buffer, filled, buffer.Length - filled);
            }
            catch (DecoderFallbackException e)
            {
                throw new InvalidDataException($"Tokenizer training file '{path}' is not valid UTF-8 near byte {stream.Position}.", e);
            }
            filled += read;
            bool end = read == 0;
            int cut = end ? filled : LastCut(buffer, filled);
            if (cut > 0)
            {
                CountChunk(buffer.AsSpan(0, cut));
                Array.Copy(buffer, cut, buffer, 0, filled - cut);
                filled -= cut;
                progress?.Report(new BpeTrainingProgress("count", stream.Position, stream.Length));
            }
            if (end) break;
        }
    }

    /// <summary>The last index i with buffer[i-1] == '\n' and buffer[i] a non-space character (0 when none).</summary>
    private static int LastCut(char[] buffer, int length)
    {
        for (int i = length - 1; i > 0; i--)
            if (buffer[i - 1] == '\n' && !char.IsWhiteSpace(buffer[i]) && !char.IsLowSurrogate(buffer[i])) return i;
        return 0;
    }

    private void CountChunk(ReadOnlySpan<char> text)
    {
        // Special tokens are matched before pre-tokenisation when encoding, so they split the text here too.
        while (!text.IsEmpty)
        {
            int at = -1, length = 0;
            foreach (var special in Options.SpecialTokens)
            {
                int i = text.IndexOf(special, StringComparison.Ordinal);
                if (i >= 0 && (at < 0 || i < at || (i == at && special.Length > length))) { at = i; length = special.Length; }
            }
            if (at < 0)
            {
                CountWords(text);
                return;
            }
            CountWords(text[..at]);
            text = text[(at + length)..];
        }
    }

    private void CountWords(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty) return;
        _matches.Clear();
        _pattern.Matches(text, _matches);
        int previous = 0;
        foreach (var (start, length) in _matches)
        {
            if (start > previous) CountWord(text[previous..start]); // Isolated keeps unmatched gaps as words
            CountWord(text.Slice(start, length));
            previous = start + length;
        }
        if (previous < text.Length) CountWord(text[previous..]);
    }

    private void CountWord(ReadOnlySpan<char> word)
    {
        if (word.IsEmpty) return;
        int max = Encoding.UTF8.GetMaxByteCount(word.Length);
        if (_bytes.Length < max)
        {
            _bytes = new byte[max];
            _chars = new char[max];
        }
        int n = Encoding.UTF8.GetBytes(word, _bytes);
        ByteLevelAlphabet.Map(_bytes.AsSpan(0, n), _chars);
        ref long count = ref CollectionsMarshal.GetValueRefOrAddDefault(_wordCountsBySpan, _chars.AsSpan(0, n), out _);
        count++;
    }

    /// <summary>Learns merges from the counted words until the vocabulary is full or no pair is frequent enough.</summary>
    public BpeTrainingResult Train(IProgress<BpeTrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var state = new MergeState(_wordCounts);
        int target = Options.VocabSize - Options.SpecialTokens.Count;
        var merges = state.Run(target, Options.MinFrequency, progress, cancellationToken);
        return new BpeTrainingResult(Options, state.Tokens, merges);
    }

    private sealed class ForwardProgress(Action<BpeTrainingProgress> action) : IProgress<BpeTrainingProgress>
    {
        public void Report(BpeTrainingProgress value) => action(value);
    }

    /// <summary>Words as symbol-id arrays, pair counts, the pair-to-words index and the priority queue.</summary>
    private sealed class MergeState
    {
        private readonly int[][] _symbols;
        private readonly int[] _lengths;
        private readonly long[] _counts;
        private readonly int[] _visited; // merge step that last rewrote each word, to skip repeated index entries
        private readonly Dictionary<long, long> _pairCounts = new();
        private readonly Dictionary<long, List<int>> _pairWords = new();
        private readonly PriorityQueue<long, (long Count, long Pair)> _queue = new(QueueOrder.Instance);
        private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
        private readonly HashSet<long> _touched = new();

        public List<string> Tokens { get; } = new();

        public MergeState(Dictionary<string, long> wordCounts)
        {
            // The alphabet sorted by code point; ties between pairs then order like their strings' first symbols.
            var alphabet = new char[256];
            for (int b = 0; b < 256; b++) alphabet[b] = ByteLevelAlphabet.ToChar((byte)b);
            Array.Sort(alphabet);
            var symbolOf = new int[324];
            for (int i = 0; i < alphabet.Length; i++)
            {
                string s = alphabet[i].ToString();
                _ids[s] = i;
                Tokens.Add(s);
                symbolOf[alphabet[i]] = i;
            }

            // Words in ordinal order, so that everything below is independent of dictionary order.
            var words = wordCounts.Keys.ToArray();
            Array.Sort(words, StringComparer.Ordinal);
            _symbols = new int[words.Length][];
            _lengths = new int[words.Length];
            _counts = new long[words.Length];
            _visited = new int[words.Length];
            for (int w = 0; w < words.Length; w++)
            {
                string word = words[w];
                var s = new int[word.Length];
                for (int i = 0; i < word.Length; i++) s[i] = symbolOf[word[i]];
                _symbols[w] = s;
                _lengths[w] = s.Length;
                long c = wordCounts[word];
                _counts[w] = c;
                for (int i = 0; i + 1 < s.Length; i++) AddPair(Key(s[i], s[i + 1]), c, w);
            }
            foreach (var (pair, count) in _pairCounts) _queue.Enqueue(pair, (count, pair));
        }

        private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

        private void AddPair(long pair, long delta, int word)
        {
            ref long count = ref CollectionsMarshal.GetValueRefOrAddDefault(_pairCounts, pair, out _);
            count += delta;
            if (delta <= 0) return;
            ref List<int>? list = ref CollectionsMarshal.GetValueRefOrAddDefault(_pairWords, pair, out _);
            list ??= new List<int>();
            if (list.Count == 0 || list[^1] != word) list.Add(word);
        }

        public List<(string Left, string Right)> Run(int targetTokens, int minFrequency, IProgress<BpeTrainingProgress>? progress,
            CancellationToken cancellationToken)
        {
            var merges = new List<(string, string)>();
            var merged = new HashSet<long>();
            int step = 0;
            int total = Math.Max(0, targetTokens - Tokens.Count);
            while (Tokens.Count < targetTokens && _queue.TryDequeue(out long pair, out var queued))
            {
                long count = _pairCounts.GetValueOrDefault(pair);
                if (count != queued.Count)
                {
                    if (count > 0) _queue.Enqueue(pair, (count, pair)); // stale entry: re-rank with the current count
                    continue;
                }
                if (count < minFrequency) break; // this is the best pair left

                int left = (int)(pair >> 32), right = (int)(uint)pair;
                string text = Tokens[left] + Tokens[right];
                if (!_ids.TryGetValue(text, out int id))
                {
                    id = Tokens.Count;
                    Tokens.Add(text);
                    _ids[text] = id;
                }
                // A pair that reappears (only possible through an existing token) keeps its first rank.
                if (merged.Add(pair)) merges.Add((Tokens[left], Tokens[right]));
                step++;
                Apply(left, right, id, pair, step);
                if ((step & 63) == 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    progress?.Report(new BpeTrainingProgress("merge", Tokens.Count - 256, total));
                }
            }
            progress?.Report(new BpeTrainingProgress("merge", Tokens.Count - 256, total));
            return merges;
        }

        /// <summary>Replaces every (left, right) in the words holding it by <paramref name="id"/>, updating pair counts.</summary>
        private void Apply(int left, int right, int id, long pair, int step)
        {
            if (!_pairWords.Remove(pair, out var words)) return;
            _touched.Clear();
            foreach (int w in words)
            {
                if (_visited[w] == step) continue;
                _visited[w] = step;
                int[] s = _symbols[w];
                int n = _lengths[w];
                long c = _counts[w];
                int o = 0, i = 0;
                // Left to right, non-overlapping; s is rewritten in place (o <= i), so s[o - 1] is the already
                // merged output, which makes the pair updates right for runs like "a b a b" and "a a a".
                while (i < n)
                {
                    if (i + 1 < n && s[i] == left && s[i + 1] == right)
                    {
                        if (o > 0)
                        {
                            int prev = s[o - 1];
                            AddPair(Key(prev, left), -c, w);
                            Touch(Key(prev, id), c, w);
                        }
                        if (i + 2 < n)
                        {
                            int next = s[i + 2];
                            AddPair(Key(right, next), -c, w);
                            Touch(Key(id, next), c, w);
                        }
                        AddPair(pair, -c, w);
                        s[o++] = id;
                        i += 2;
                    }
                    else
                    {
                        s[o++] = s[i++];
                    }
                }
                _lengths[w] = o;
            }
            foreach (long p in _touched)
            {
                long count = _pairCounts.GetValueOrDefault(p);
                if (count > 0) _queue.Enqueue(p, (count, p));
            }
        }

        private void Touch(long pair, long delta, int word)
        {
            AddPair(pair, delta, word);
            _touched.Add(pair);
        }
    }

    /// <summary>Highest count first, then the smallest (left, right) ids.</summary>
    private sealed class QueueOrder : IComparer<(long Count, long Pair)>
    {
        public static readonly QueueOrder Instance = new();

        public int Compare((long Count, long Pair) x, (long Count, long Pair) y) =>
            x.Count != y.Count ? y.Count.CompareTo(x.Count) : x.Pair.CompareTo(y.Pair);
    }
}
