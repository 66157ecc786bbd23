using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Llada.Tokenization;

namespace Llada.Tests.Tokenization;

/// <summary>
/// BpeTrainer: hand-worked merge orders, a naive from-scratch reference trainer, Hugging Face's own BpeTrainer
/// (golden merges), byte-identical reproduction of the committed trained fixture, and the written files.
/// </summary>
public class BpeTrainerTests
{
    private static readonly Lazy<string> s_slice = new(() =>
    {
        using var gz = new GZipStream(File.OpenRead(Path.Combine(TokenizerFixtures.Directory("trained"), "train_slice.txt.gz")), CompressionMode.Decompress);
        using var reader = new StreamReader(gz, Encoding.UTF8);
        return reader.ReadToEnd();
    });

    private static BpeTrainingResult TrainText(string text, int vocabSize, int minFrequency, BpeTrainer? trainer = null)
    {
        trainer ??= new BpeTrainer(new BpeTrainerOptions { VocabSize = vocabSize, MinFrequency = minFrequency });
        trainer.AddText(text);
        return trainer.Train();
    }

    private static string[] Show(BpeTrainingResult r) => [.. r.Merges.Select(m => m.Left + " " + m.Right)];

    private static string Counts(IEnumerable<KeyValuePair<string, long>> counts) =>
        string.Join(", ", counts.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}:{p.Value}"));

    [Fact]
    public void Merges_a_single_word_in_the_hand_worked_order()
    {
        // aaabdaaabac: pairs aa:4 (non-overlapping: 2 per "aaa"), ab:2 ... merge aa; then (aa,a) and (a,b) tie at 2
        // and (a,b) wins because byte symbols have smaller ids than merged tokens; then aa+ab occurs twice.
        var r = TrainText("aaabdaaabac", 10_000, minFrequency: 2);
        Assert.Equal(["a a", "a b", "aa ab"], Show(r));
        Assert.Equal(new[] { "aa", "ab", "aaab" }, r.Tokens.Skip(256));

        // With min frequency 1 every count-1 pair follows, ties broken by (left id, right id):
        // (a,c) since 'a' < 'd' < merged ids; then (d,aaab); then (aaab,daaab) whose left id is smaller; then the rest.
        var all = TrainText("aaabdaaabac", 10_000, minFrequency: 1);
        Assert.Equal(["a a", "a b", "aa ab", "a c", "d aaab", "aaab daaab", "aaabdaaab ac"], Show(all));
        Assert.Equal(256 + 7 + 6, all.VocabSize);
    }

    [Fact]
    public void Counts_words_with_their_leading_space_and_weights_pairs_by_word_count()
    {
        // Words: "ab", "Ġab" x2, "Ġcd": (a,b) 3, (Ġ,a) 2 -> after "ab", (Ġ,ab) 2; (Ġ,c) and (c,d) stay below 2.
        var trainer = new BpeTrainer(new BpeTrainerOptions { VocabSize = 1000, MinFrequency = 2 });
        var r = TrainText("ab ab ab cd", 0, 0, trainer);
        Assert.Equal("ab:1, Ġab:2, Ġcd:1", Counts(trainer.WordCounts));
        Assert.Equal(["a b", "Ġ ab"], Show(r));
    }

    [Fact]
    public void Stops_at_the_requested_vocabulary_size_counting_special_tokens()
    {
        var r = TrainText(s_slice.Value[..20_000], 256 + 6 + 40, minFrequency: 2);
        Assert.Equal(256 + 40, r.LearnedCount);
        Assert.Equal(256 + 6 + 40, r.VocabSize);
        Assert.Equal(r.LearnedCount, r.SpecialTokenId("<|startoftext|>"));
        Assert.Equal(r.LearnedCount + 5, r.SpecialTokenId("<|eot_id|>"));
    }

    [Fact]
    public void Cuts_special_tokens_out_of_the_training_text()
    {
        var trainer = new BpeTrainer();
        trainer.AddText("x<|endoftext|>y <|mdm_mask|><|mdm_mask|>z");
        Assert.Equal("x:1, y:1, z:1, Ġ:1", Counts(trainer.WordCounts));
    }

    [Fact]
    public void Streaming_a_file_in_small_chunks_counts_the_same_words_as_the_whole_text()
    {
        string text = s_slice.Value[..60_000] + "\n\n  \n\tTrailing 😀 words\n";
        string path = Path.Combine(Path.GetTempPath(), $"llada-bpe-{Guid.NewGuid():N}.txt");
        try
        {
            File.WriteAllText(path, text, new UTF8Encoding(false));
            var streamed = new BpeTrainer { ChunkChars = 1000 };
            streamed.AddFile(path, cancellationToken: TestContext.Current.CancellationToken);
            var whole = new BpeTrainer();
            whole.AddText(text);
            Assert.Equal(Counts(whole.WordCounts), Counts(streamed.WordCounts));
            Assert.Contains(whole.WordCounts.Keys, w => w.Contains("ĊĊ")); // blank lines are words ("\n\n" after a paragraph)
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Matches_a_naive_trainer_that_recounts_every_pair_each_step()
    {
        var trainer = new BpeTrainer(new BpeTrainerOptions { VocabSize = 700, MinFrequency = 2 });
        var r = TrainText(s_slice.Value[..60_000], 0, 0, trainer);
        var expected = NaiveTrain(trainer.WordCounts, 700 - 6, 2);
        Assert.Equal(700 - 6 - 256, r.Merges.Count);
        Assert.Equal(expected, r.Merges.Select(m => (m.Left, m.Right)).ToList());
    }

    /// <summary>
    /// Textbook BPE: every step recounts all adjacent pairs, takes the most frequent (ties: smallest left id, then
    /// right id; byte symbols sorted by character come first, merged tokens follow in creation order) and merges it
    /// left to right in every word.
    /// </summary>
    private static List<(string, string)> NaiveTrain(IReadOnlyDictionary<string, long> wordCounts, int targetTokens, int minFrequency)
    {
        var tokens = Enumerable.Range(0, 256).Select(b => ByteLevelAlphabet.ToChar((byte)b)).Order().Select(c => c.ToString()).ToList();
        var ids = tokens.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i);
        var words = wordCounts.Select(p => (Symbols: p.Key.Select(c => ids[c.ToString()]).ToList(), Count: p.Value)).ToList();
        var merges = new List<(string, string)>();
        while (tokens.Count < targetTokens)
        {
            var counts = new Dictionary<(int, int), long>();
            foreach (var (s, c) in words)
                for (int i = 0; i + 1 < s.Count; i++) counts[(s[i], s[i + 1])] = counts.GetValueOrDefault((s[i], s[i + 1])) + c;
            if (counts.Count == 0) break;
            var best = counts.OrderByDescending(p => p.Value).ThenBy(p => p.Key.Item1).ThenBy(p => p.Key.Item2).First();
            if (best.Value < minFrequency) break;
            var (l, r) = best.Key;
            string text = tokens[l] + tokens[r];
            if (!ids.TryGetValue(text, out int id))
            {
                id = tokens.Count;
                tokens.Add(text);
                ids[text] = id;
            }
            merges.Add((tokens[l], tokens[r]));
            foreach (var (s, _) in words)
                for (int i = 0; i + 1 < s.Count; i++)
                    if (s[i] == l && s[i + 1] == r)
                    {
                        s[i] = id;
                        s.RemoveAt(i + 1);
                    }
        }
        return merges;
    }

    [Fact]
    public void Learns_exactly_the_merges_of_hugging_face_tokenizers_bpe_trainer()
    {
        // Reference: Hugging Face's Rust BpeTrainer (via its node binding, tools/tokenizer-golden) trained on the
        // slice as one line, min_frequency 0, vocabulary 30000 over the characters seen; every count-1 merge and
        // tie is included, so the whole order must agree.
        using var gz = new GZipStream(File.OpenRead(Path.Combine(TokenizerFixtures.Directory("trained"), "hf_training.json.gz")), CompressionMode.Decompress);
        using var doc = JsonDocument.Parse(gz);
        var root = doc.RootElement;
        var expected = root.GetProperty("merges").EnumerateArray().Select(m => m[0].GetString() + " " + m[1].GetString()).ToArray();
        int learned = root.GetProperty("vocab_size").GetInt32() - root.GetProperty("alphabet_size").GetInt32() + 256;
        var r = TrainText(s_slice.Value.Replace('\n', ' '), learned + 6, minFrequency: 1);
        Assert.True(expected.Length > 10_000, $"only {expected.Length} reference merges");
        Assert.Equal(expected, Show(r));
    }

    [Fact]
    public void Reproduces_the_committed_trained_fixture_byte_for_byte()
    {
        // tests/fixtures/tokenizers/trained was written by BpeTrainer.TrainFiles([train_slice.txt], dir, new() { VocabSize = 1000 }).
        string fixture = TokenizerFixtures.Directory("trained");
        string work = Path.Combine(Path.GetTempPath(), $"llada-bpe-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        try
        {
            string slice = Path.Combine(work, "train_slice.txt");
            File.WriteAllText(slice, s_slice.Value, new UTF8Encoding(false));
            var reports = new List<BpeTrainingProgress>();
            var progress = new SyncProgress(reports.Add);
            for (int run = 0; run < 2; run++)
            {
                string output = Path.Combine(work, "out" + run);
                var result = BpeTrainer.TrainFiles([slice], output, new BpeTrainerOptions { VocabSize = 1000 }, progress,
                    TestContext.Current.CancellationToken);
                Assert.Equal(1000, result.VocabSize);
                foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
                    Assert.True(File.ReadAllBytes(Path.Combine(fixture, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(output, file))),
                        $"run {run}: {file} differs from the committed fixture");
                Assert.Empty(Directory.GetFiles(output, "*.tmp-*"));
            }
            Assert.Contains(reports, p => p.Stage == "count" && p.Completed == p.Total);
            Assert.Contains(reports, p => p.Stage == "merge" && p.Completed == 1000 - 6 - 256 && p.Total == p.Completed);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private sealed class SyncProgress(Action<BpeTrainingProgress> report) : IProgress<BpeTrainingProgress>
    {
        public void Report(BpeTrainingProgress value) => report(value);
    }

    [Fact]
    public void Written_tokenizer_has_the_llada_special_tokens_as_single_ids()
    {
        var t = TokenizerFixtures.Load("trained");
        Assert.Equal(1000, t.VocabSize);
        string[] specials = ["<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"];
        for (int i = 0; i < specials.Length; i++)
        {
            Assert.Equal([994 + i], t.Encode(specials[i]));
            Assert.True(t.IsSpecial(994 + i));
            Assert.Equal(specials[i], t.Decode([994 + i]));
            Assert.Equal("", t.Decode([994 + i], skipSpecialTokens: true));
        }
        Assert.Equal(994, t.BosTokenId);
        Assert.Equal(995, t.EosTokenId);
        Assert.Equal(995, t.PadTokenId);
        Assert.Equal(996, t.MaskTokenId);
        Assert.Equal(999, t.EndOfTurnTokenId);
        Assert.False(t.AddBosToken);
        Assert.Equal(t.Encode("Hello there."), t.Encode("Hello there.", addSpecialTokens: true));
        Assert.Equal([996, 996, 996], t.Encode("<|mdm_mask|><|mdm_mask|><|mdm_mask|>"));

        Assert.True(t.HasOwnChatTemplate);
        var messages = new[] { new ChatMessage("user", " What is 2+2? "), new ChatMessage("assistant", "4") };
        Assert.Equal("<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>", t.ApplyChatTemplate(messages, addGenerationPrompt: false));
        int[] chat = t.EncodeChat(messages[..1]);
        Assert.Equal([994, 997], chat[..2]);
        Assert.Equal(2, chat.Count(id => id == 997));
        Assert.Equal(1, chat.Count(id => id == 999));
        Assert.Equal("<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n", t.Decode(chat));
    }

    [Fact]
    public void Written_tokenizer_round_trips_random_unicode_text()
    {
        var t = TokenizerFixtures.Load("trained");
        var random = new Random(1234);
        string[] pieces = ["the", " ", "  ", "\n", "\n\n", "\r\n", "\t", "'s", "'LL", "123456", "3.14", "😀", "👨‍👩‍👧", "日本語", "é", "e\u0301",
            "Ångström", "\u00a0", "\u2003", "\u200b", "𝐀", "<|mdm_mask", "|", "--", "...", "\"", "\u0000", "\u007f", "ÿ", "Ġ", "Ċ"];
        for (int trial = 0; trial < 300; trial++)
        {
            var sb = new StringBuilder();
            int n = random.Next(0, 12);
            for (int i = 0; i < n; i++)
            {
                if (random.Next(4) == 0) sb.Append(char.ConvertFromUtf32(RandomScalar(random)));
                else sb.Append(pieces[random.Next(pieces.Length)]);
            }
            string text = sb.ToString();
            int[] ids = t.Encode(text);
            Assert.All(ids, id => Assert.InRange(id, 0, 993));
            Assert.Equal(text, t.Decode(ids));
        }
    }

    private static int RandomScalar(Random random)
    {
        while (true)
        {
            int c = random.Next(4) switch { 0 => random.Next(0x20, 0x80), 1 => random.Next(0x80, 0x800), 2 => random.Next(0x800, 0x10000), _ => random.Next(0x10000, 0x110000) };
            if (c is < 0xD800 or > 0xDFFF) return c;
        }
    }

    [Fact]
    public void Rejects_bad_options_with_specific_messages()
    {
        var small = Assert.Throws<ArgumentOutOfRangeException>(() => new BpeTrainer(new BpeTrainerOptions { VocabSize = 261 }));
        Assert.Contains("at least 262", small.Message);
        var bos = Assert.Throws<ArgumentException>(() => new BpeTrainer(new BpeTrainerOptions { BosToken = "<s>" }));
        Assert.Contains("'<s>' is not one of SpecialTokens", bos.Message);
        Assert.Throws<ArgumentException>(() => new BpeTrainer(new BpeTrainerOptions { SpecialTokens = ["<a>", "<a>"], BosToken = null, EosToken = null, PadToken = null, MaskToken = null }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BpeTrainer(new BpeTrainerOptions { MinFrequency = 0 }));
        var missing = Assert.Throws<FileNotFoundException>(() => BpeTrainer.TrainFiles(["/nonexistent/corpus.txt"], Path.GetTempPath(),
            cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("/nonexistent/corpus.txt", missing.Message);
    }

    [Fact]
    public void Honours_cancellation()
    {
        var trainer = new BpeTrainer();
        trainer.AddText(s_slice.Value[..50_000]);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() => trainer.Train(cancellationToken: cts.Token));
    }
}
