using System.Text;
using Llada.Training.Data;

namespace Llada.Tests.Training.Data;

public class TokenCacheTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly PretrainCacheOptions BosEos = new() { BosTokenId = TestTokenizers.ByteBos, EosTokenId = TestTokenizers.ByteEos };

    [Fact]
    public void Cache_holds_exactly_the_directly_encoded_documents_with_separators()
    {
        using var dir = new TempDir();
        string a = dir.File("a.txt", "Héllo world.\n\nSecond doc,\nline two.\n");
        string b = dir.File("b.jsonl", "{\"text\":\"third\"}\n");
        var enc = TestTokenizers.Bytes();
        using var cache = PretrainCache.OpenOrBuild([a, b], Path.Combine(dir.Root, "c.tokens"), enc, BosEos, cancellationToken: Ct);

        var expected = new List<int>();
        var starts = new List<long>();
        foreach (var doc in new[] { "Héllo world.", "Second doc,\nline two.", "third" })
        {
            starts.Add(expected.Count);
            expected.Add(TestTokenizers.ByteBos);
            expected.AddRange(Encoding.UTF8.GetBytes(doc).Select(x => (int)x));
            expected.Add(TestTokenizers.ByteEos);
        }
        var all = new int[cache.Count];
        cache.CopyTokens(0, all);
        Assert.Equal(expected, all);
        Assert.Equal(expected[5], cache[5]);
        Assert.Equal(2, cache.BytesPerToken);
        Assert.Equal(258, cache.VocabSize);
        Assert.Equal(TestTokenizers.ByteEos, cache.MaxTokenId);
        Assert.Equal(TokenCacheKind.Pretrain, cache.Kind);
        Assert.Equal(3, cache.RecordCount);
        Assert.Equal(starts, Enumerable.Range(0, 3).Select(i => cache.GetRecord(i).Start));
        Assert.Equal(expected.Count, Enumerable.Range(0, 3).Sum(i => cache.GetRecord(i).Length));
        Assert.Equal(new FileInfo(Path.Combine(dir.Root, "c.tokens")).Length,
            TokenCache.HeaderSize + ((expected.Count * 2 + 7) & ~7) + 3 * TokenCache.RecordSize);
    }

    [Fact]
    public void Vocabulary_above_65536_is_stored_as_u32_and_round_trips()
    {
        using var dir = new TempDir();
        string text = string.Join(' ', Enumerable.Range(0, 300).Select(i => $"w{i}"));
        string f = dir.File("a.txt", text + "\n\n" + text + " end\n");
        var enc = TestTokenizers.Words(100_000);
        using var cache = PretrainCache.OpenOrBuild([f], Path.Combine(dir.Root, "c.tokens"), enc,
            new PretrainCacheOptions { EosTokenId = TestTokenizers.Eos }, cancellationToken: Ct);
        int[] expected = [.. enc.Encode(text), TestTokenizers.Eos, .. enc.Encode(text + " end"), TestTokenizers.Eos];
        Assert.Contains(expected, id => id > 65535); // the u32 path is really exercised
        Assert.Equal(4, cache.BytesPerToken);
        var all = new int[cache.Count];
        cache.CopyTokens(0, all);
        Assert.Equal(expected, all);
        Assert.Equal(expected.Max(), cache.MaxTokenId);

        using var small = PretrainCache.OpenOrBuild([f], Path.Combine(dir.Root, "s.tokens"), TestTokenizers.Words(65536),
            new PretrainCacheOptions(), cancellationToken: Ct);
        Assert.Equal(2, small.BytesPerToken); // ids up to 65535 still fit u16
    }

    [Fact]
    public void Unchanged_sources_reuse_the_cache_and_changes_rebuild_it()
    {
        using var dir = new TempDir();
        string f = dir.File("a.txt", "one\n\ntwo\n");
        string path = Path.Combine(dir.Root, "c.tokens");
        var enc = TestTokenizers.Bytes();
        string first;
        using (var c = PretrainCache.OpenOrBuild([f], path, enc, BosEos, cancellationToken: Ct)) first = c.Fingerprint;
        var stamp = new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(path, stamp);

        using (var c = PretrainCache.OpenOrBuild([f], path, enc, BosEos, cancellationToken: Ct))
            Assert.Equal(first, c.Fingerprint);
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(path)); // not rewritten

        File.WriteAllText(f, "one\n\nthree\n"); // same length class, different content
        using (var c = PretrainCache.OpenOrBuild([f], path, enc, BosEos, cancellationToken: Ct))
        {
            Assert.NotEqual(first, c.Fingerprint);
            var all = new int[c.Count];
            c.CopyTokens(0, all);
            Assert.Equal([256, .. "one"u8.ToArray().Select(x => (int)x), 257, 256, .. "three"u8.ToArray().Select(x => (int)x), 257], all);
        }
        string afterEdit = TokenCache.ReadFingerprint(path)!;

        using (var c = PretrainCache.OpenOrBuild([f], path, TestTokenizers.Bytes("bytes-v2"), BosEos, cancellationToken: Ct))
            Assert.NotEqual(afterEdit, c.Fingerprint); // another tokenizer identity
        using (var c = PretrainCache.OpenOrBuild([f], path, TestTokenizers.Bytes("bytes-v2"), new PretrainCacheOptions(), cancellationToken: Ct))
            Assert.Equal(3 + 5, c.Count); // other options: no BOS/EOS
        Assert.Single(Directory.GetFiles(dir.Root, "c.tokens*")); // no temporary files left
    }

    [Fact]
    public void Truncated_cache_is_rebuilt_and_opening_it_directly_fails()
    {
        using var dir = new TempDir();
        string f = dir.File("a.txt", "some text\n");
        string path = Path.Combine(dir.Root, "c.tokens");
        var enc = TestTokenizers.Bytes();
        PretrainCache.OpenOrBuild([f], path, enc, BosEos, cancellationToken: Ct).Dispose();
        long size = new FileInfo(path).Length;
        using (var fs = new FileStream(path, FileMode.Open)) fs.SetLength(size - 3);
        Assert.Null(TokenCache.ReadFingerprint(path));
        Assert.Contains("is not a complete Llada token cache", Assert.Throws<InvalidDataException>(() => TokenCache.Open(path)).Message);
        using var c = PretrainCache.OpenOrBuild([f], path, enc, BosEos, cancellationToken: Ct);
        Assert.Equal(11, c.Count);
        Assert.Equal(size, new FileInfo(path).Length);
    }

    [Fact]
    public void Ids_outside_the_tokenizer_vocabulary_fail_the_build_and_leave_no_file()
    {
        using var dir = new TempDir();
        string f = dir.File("a.txt", "ok\n\nbad\n");
        var enc = new DelegateTextEncoder(s => s == "bad" ? [1, 300] : [1], 258, "broken");
        string path = Path.Combine(dir.Root, "c.tokens");
        var e = Assert.Throws<InvalidDataException>(() => PretrainCache.OpenOrBuild([f], path, enc, new PretrainCacheOptions(), cancellationToken: Ct));
        Assert.Equal($"{f}:3: the tokenizer produced id 300, outside its vocabulary [0, 258).", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Root, "c.tokens*"));
    }

    [Fact]
    public void Model_vocabulary_smaller_than_the_cache_ids_is_reported()
    {
        using var dir = new TempDir();
        string f = dir.File("a.txt", "zzz\n");
        using var cache = PretrainCache.OpenOrBuild([f], Path.Combine(dir.Root, "c.tokens"), TestTokenizers.Bytes(), BosEos, cancellationToken: Ct);
        cache.EnsureFitsVocabulary(258);
        var e = Assert.Throws<InvalidDataException>(() => cache.EnsureFitsVocabulary(257));
        Assert.Contains("contains token id 257, but the model's vocabulary has only 257 entries", e.Message);
        Assert.Throws<InvalidDataException>(() => new PretrainBatchSource(cache, 2, 1, modelVocabSize: 200, seed: 1));
    }

    [Fact]
    public void Cancelled_build_leaves_no_cache()
    {
        using var dir = new TempDir();
        string f = dir.File("a.txt", "a\n\nb\n");
        using var cts = new CancellationTokenSource();
        var enc = new DelegateTextEncoder(s => { cts.Cancel(); return [1]; }, 258, "cancel");
        Assert.ThrowsAny<OperationCanceledException>(() =>
            PretrainCache.OpenOrBuild([f], Path.Combine(dir.Root, "c.tokens"), enc, new PretrainCacheOptions(), cancellationToken: cts.Token));
        Assert.Empty(Directory.GetFiles(dir.Root, "c.tokens*"));
    }
}
