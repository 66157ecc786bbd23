using Llada.Training.Data;
using static Llada.Tests.Training.Data.TestTokenizers;

namespace Llada.Tests.Training.Data;

public class SftTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly SftCacheOptions Options = new(Eot, Eos, "words-template-v1");
    private static int W(string word) => WordId(word, 1000);

    private static Dialogue TwoTurns() => new(
    [
        new ChatTurn("user", "define harbor"),
        new ChatTurn("assistant", " a sheltered port "),
        new ChatTurn("user", "now spell it"),
        new ChatTurn("assistant", "h a r b o r"),
    ], "x.jsonl", 1);

    [Fact]
    public void Dialogue_of_n_answers_becomes_n_pairs_with_history()
    {
        var pairs = SftCache.Split(TwoTurns()).ToList();
        Assert.Equal(2, pairs.Count);
        Assert.Equal([new ChatTurn("user", "define harbor")], pairs[0].History);
        Assert.Equal(" a sheltered port ", pairs[0].Answer);
        Assert.Equal(3, pairs[1].History.Count);
        Assert.Equal(new ChatTurn("assistant", " a sheltered port "), pairs[1].History[1]);
        Assert.Equal("h a r b o r", pairs[1].Answer);
    }

    [Fact]
    public void Second_pair_prompt_contains_the_earlier_answer_with_end_of_turn()
    {
        var enc = Words();
        var pairs = SftCache.Split(TwoTurns()).ToList();
        var (p0, r0) = SftCache.Encode(pairs[0], enc, Render, Options);
        Assert.Equal([Bos, User, W("define"), W("harbor"), Eot, Assistant], p0);
        Assert.Equal([W("a"), W("sheltered"), W("port"), Eot, Eos], r0);

        var (p1, r1) = SftCache.Encode(pairs[1], enc, Render, Options);
        Assert.Equal([Bos, User, W("define"), W("harbor"), Eot, Assistant, W("a"), W("sheltered"), W("port"), Eot,
            User, W("now"), W("spell"), W("it"), Eot, Assistant], p1);
        Assert.Equal([W("h"), W("a"), W("r"), W("b"), W("o"), W("r"), Eot, Eos], r1);
        // The first pair's prompt + response is exactly the start of the second pair's prompt (minus EOS).
        Assert.Equal(p0.Concat(r0[..^1]), p1.Take(p0.Length + r0.Length - 1));
    }

    private static string WriteSft(TempDir dir, int n)
    {
        var lines = new List<string>();
        for (int i = 0; i < n; i++)
        {
            string answer = string.Join(' ', Enumerable.Range(0, 1 + i % 5).Select(k => $"a{i}_{k}"));
            lines.Add(i % 3 == 0
                ? $"{{\"messages\":[{{\"role\":\"user\",\"content\":\"q{i}\"}},{{\"role\":\"assistant\",\"content\":\"{answer}\"}},{{\"role\":\"user\",\"content\":\"more {i}\"}},{{\"role\":\"assistant\",\"content\":\"b{i}\"}}]}}"
                : $"{{\"prompt\":\"question {i} please\",\"response\":\"{answer}\"}}");
        }
        return dir.File("s.jsonl", string.Join('\n', lines) + "\n");
    }

    [Fact]
    public void Sft_cache_matches_direct_encoding_of_every_pair()
    {
        using var dir = new TempDir();
        string f = WriteSft(dir, 30);
        var enc = Words();
        using var cache = SftCache.OpenOrBuild([f], Path.Combine(dir.Root, "s.tokens"), enc, Render, Options, cancellationToken: Ct);
        var expected = CorpusReader.ReadDialogues([f], cancellationToken: Ct).SelectMany(SftCache.Split)
            .Select(p => SftCache.Encode(p, enc, Render, Options)).ToList();
        Assert.Equal(30 + 10, expected.Count); // every third dialogue has two answers
        Assert.Equal(expected.Count, cache.RecordCount);
        Assert.Equal(TokenCacheKind.Sft, cache.Kind);
        for (int i = 0; i < expected.Count; i++)
        {
            var rec = cache.GetRecord(i);
            var row = new int[rec.Length];
            cache.CopyTokens(rec.Start, row);
            Assert.Equal(expected[i].Prompt.Length, rec.PromptLength);
            Assert.Equal(expected[i].Prompt.Concat(expected[i].Response), row);
        }
        string fp = cache.Fingerprint;
        Assert.NotEqual(fp, SftCache.ComputeFingerprint([f], enc, Options with { TemplateIdentity = "other" }, Ct));
        Assert.Contains("is not a pre-training cache",
            Assert.Throws<ArgumentException>(() => new PretrainBatchSource(cache, 4, 1, 1000, 1)).Message);
    }

    [Fact]
    public void Rows_are_padded_with_eos_that_counts_as_response()
    {
        using var dir = new TempDir();
        string f = WriteSft(dir, 12);
        var enc = Words();
        using var cache = SftCache.OpenOrBuild([f], Path.Combine(dir.Root, "s.tokens"), enc, Render, Options, cancellationToken: Ct);
        var source = new SftBatchSource(cache, new SftBatchOptions { BatchSize = 4, MaxLength = 64, EosTokenId = Eos, Seed = 5 }, 1000);
        var batch = source.CreateBatch();
        for (int b = 0; b < 6; b++)
        {
            source.NextBatch(batch);
            int longest = 0;
            for (int r = 0; r < batch.Rows; r++)
            {
                var rec = cache.GetRecord(batch.PairIndices[r]);
                longest = Math.Max(longest, rec.Length);
                var own = new int[rec.Length];
                cache.CopyTokens(rec.Start, own);
                var row = batch.Row(r).ToArray();
                Assert.Equal(own, row[..rec.Length]);
                Assert.All(row[rec.Length..], t => Assert.Equal(Eos, t));
                Assert.Equal(rec.PromptLength, batch.PromptLengths[r]);
                Assert.Equal(batch.Length - rec.PromptLength, batch.ResponseLength(r)); // padding included
                Assert.Equal(rec.ResponseLength + (batch.Length - rec.Length), batch.ResponseLength(r));
            }
            Assert.Equal(longest, batch.Length);
            Assert.Equal(batch.Rows * batch.Length, batch.Tokens.Length);
        }

        var fixedSource = new SftBatchSource(cache, new SftBatchOptions
        { BatchSize = 2, MaxLength = 40, EosTokenId = Eos, Padding = SftPadding.ToMaxLength }, 1000);
        var fixedBatch = fixedSource.CreateBatch();
        fixedSource.NextBatch(fixedBatch);
        Assert.Equal(40, fixedBatch.Length);
        Assert.Equal(40 - fixedBatch.PromptLengths[0], fixedBatch.ResponseLength(0));
    }

    [Fact]
    public void Every_pair_appears_once_per_epoch_and_resume_is_exact()
    {
        using var dir = new TempDir();
        string f = WriteSft(dir, 33);
        using var cache = SftCache.OpenOrBuild([f], Path.Combine(dir.Root, "s.tokens"), Words(), Render, Options, cancellationToken: Ct);
        var options = new SftBatchOptions { BatchSize = 4, MaxLength = 64, EosTokenId = Eos, Seed = 11 };
        var source = new SftBatchSource(cache, options, 1000);
        Assert.Equal(44, source.PairsPerEpoch);
        var batch = source.CreateBatch();
        var seen = new List<long>();
        var expected = new List<(int[] Tokens, int[] Prompts)>();
        for (int b = 0; b < 33; b++) // 3 epochs of 11 batches
        {
            source.NextBatch(batch);
            seen.AddRange(batch.PairIndices);
            expected.Add((batch.Tokens.ToArray(), (int[])batch.PromptLengths.Clone()));
        }
        for (int e = 0; e < 3; e++)
            Assert.Equal(Enumerable.Range(0, 44).Select(i => (long)i), seen.Skip(44 * e).Take(44).Order());
        Assert.NotEqual(seen.Take(44), seen.Skip(44).Take(44));

        var partial = new SftBatchSource(cache, options, 1000);
        for (int b = 0; b < 13; b++) partial.NextBatch(batch);
        var resumed = new SftBatchSource(cache, options, 1000);
        resumed.Restore(SamplerState.FromJson(partial.State.ToJson()));
        for (int b = 13; b < 33; b++)
        {
            resumed.NextBatch(batch);
            Assert.Equal(expected[b].Tokens, batch.Tokens.ToArray());
            Assert.Equal(expected[b].Prompts, batch.PromptLengths);
        }
    }

    [Fact]
    public void Overlong_pairs_are_skipped_or_left_truncated_and_counted()
    {
        using var dir = new TempDir();
        string f = dir.File("s.jsonl",
            "{\"prompt\":\"short\",\"response\":\"ok\"}\n" +                          // prompt 5 + response 3
            "{\"prompt\":\"a b c d e f g h\",\"response\":\"fine\"}\n" +           // prompt 12 + response 3
            "{\"prompt\":\"x\",\"response\":\"r1 r2 r3 r4 r5 r6 r7 r8 r9\"}\n");  // prompt 5 + response 11
        using var cache = SftCache.OpenOrBuild([f], Path.Combine(dir.Root, "s.tokens"), Words(), Render, Options, cancellationToken: Ct);
        Assert.Equal([8, 15, 16], Enumerable.Range(0, 3).Select(i => cache.GetRecord(i).Length));
        Assert.Equal([5, 12, 5], Enumerable.Range(0, 3).Select(i => cache.GetRecord(i).PromptLength));

        var skip = new SftBatchSource(cache, new SftBatchOptions { BatchSize = 1, MaxLength = 11, EosTokenId = Eos, Shuffle = false }, 1000);
        Assert.Equal(2, skip.SkippedCount);
        Assert.Equal(0, skip.TruncatedCount);
        Assert.Equal(1, skip.PairsPerEpoch);

        var cut = new SftBatchSource(cache, new SftBatchOptions
        { BatchSize = 1, MaxLength = 11, EosTokenId = Eos, Shuffle = false, Overflow = SftOverflow.TruncatePromptLeft }, 1000);
        Assert.Equal(1, cut.SkippedCount);   // an 11-token response leaves no room for any prompt token
        Assert.Equal(1, cut.TruncatedCount);
        var batch = cut.CreateBatch();
        cut.NextBatch(batch);
        cut.NextBatch(batch);
        // The second pair keeps its last 11 tokens: the prompt loses "<bos> <user> a b".
        Assert.Equal(11, batch.Length);
        Assert.Equal([W("c"), W("d"), W("e"), W("f"), W("g"), W("h"), Eot, Assistant, W("fine"), Eot, Eos], batch.Row(0).ToArray());
        Assert.Equal(8, batch.PromptLengths[0]);
        Assert.Equal(3, batch.ResponseLength(0));
    }

    [Fact]
    public void Nothing_fitting_is_an_error()
    {
        using var dir = new TempDir();
        string f = dir.File("s.jsonl", "{\"prompt\":\"a b c\",\"response\":\"d\"}\n");
        using var cache = SftCache.OpenOrBuild([f], Path.Combine(dir.Root, "s.tokens"), Words(), Render, Options, cancellationToken: Ct);
        var e = Assert.Throws<InvalidDataException>(() =>
            new SftBatchSource(cache, new SftBatchOptions { BatchSize = 1, MaxLength = 4, EosTokenId = Eos }, 1000));
        Assert.Contains("None of the 1 SFT pairs", e.Message);
    }
}
