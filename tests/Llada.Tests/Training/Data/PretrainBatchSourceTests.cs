using Llada.Training.Data;

namespace Llada.Tests.Training.Data;

public class PretrainBatchSourceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A cache whose stream is 0,1,2,... mod 250 (BOS/EOS off) so every token tells its position.</summary>
    private static TokenCache Counting(TempDir dir, int tokens)
    {
        string f = dir.File("a.txt", "x\n");
        var enc = new DelegateTextEncoder(_ => Enumerable.Range(0, tokens).Select(i => i % 250).ToArray(), 258, $"count-{tokens}");
        return PretrainCache.OpenOrBuild([f], Path.Combine(dir.Root, "c.tokens"), enc, new PretrainCacheOptions(), cancellationToken: Ct);
    }

    [Fact]
    public void Each_epoch_covers_the_stream_once_in_disjoint_windows()
    {
        using var dir = new TempDir();
        using var cache = Counting(dir, 1003);
        var source = new PretrainBatchSource(cache, sequenceLength: 10, batchSize: 1, modelVocabSize: 258, seed: 42);
        Assert.Equal(100, source.SequencesPerEpoch);
        Assert.Equal(3, source.LeftoverTokensPerEpoch);
        var seq = new int[10];
        var phases = new HashSet<long>();
        var orders = new List<long[]>();
        for (int epoch = 0; epoch < 6; epoch++)
        {
            var starts = new long[100];
            for (int i = 0; i < 100; i++)
            {
                starts[i] = source.NextSequence(seq);
                Assert.Equal(epoch, source.Epoch);
                for (int j = 0; j < 10; j++) Assert.Equal((int)((starts[i] + j) % 250), seq[j]); // window content
            }
            long phase = starts.Min();
            Assert.InRange(phase, 0, 3);
            Assert.Equal(Enumerable.Range(0, 100).Select(i => phase + 10L * i), starts.Order()); // disjoint, contiguous cover
            phases.Add(phase);
            orders.Add(starts);
        }
        Assert.True(phases.Count > 1, "the phase should vary between epochs");
        Assert.NotEqual(orders[0].Select(s => s - orders[0].Min()), orders[1].Select(s => s - orders[1].Min())); // reshuffled
    }

    [Fact]
    public void Unshuffled_source_reads_windows_in_order_from_zero()
    {
        using var dir = new TempDir();
        using var cache = Counting(dir, 95);
        var source = new PretrainBatchSource(cache, 10, 3, 258, seed: 7, shuffle: false);
        var batch = new int[30];
        source.NextBatch(batch);
        Assert.Equal(Enumerable.Range(0, 30), batch);
        source.NextBatch(batch);
        source.NextBatch(batch); // windows 6,7,8 then the epoch wraps to window 0
        Assert.Equal([.. Enumerable.Range(60, 30)], batch);
        source.NextBatch(batch);
        Assert.Equal([.. Enumerable.Range(0, 30)], batch);
        Assert.Equal(1, source.Epoch);
    }

    [Fact]
    public void Same_seed_gives_the_same_batches_and_another_seed_does_not()
    {
        using var dir = new TempDir();
        using var cache = Counting(dir, 5000);
        int[] Run(ulong seed)
        {
            var s = new PretrainBatchSource(cache, 16, 4, 258, seed);
            var all = new int[20 * 64];
            for (int b = 0; b < 20; b++) s.NextBatch(all.AsSpan(b * 64, 64));
            return all;
        }
        Assert.Equal(Run(3), Run(3));
        Assert.NotEqual(Run(3), Run(4));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(17)]   // mid-epoch, batch straddles the boundary next
    [InlineData(18)]
    [InlineData(40)]   // second epoch
    public void Resuming_from_saved_state_continues_bit_identically(int batchesBeforeSave)
    {
        using var dir = new TempDir();
        using var cache = Counting(dir, 1131); // 62 sequences of 18 + 15 leftover
        const int L = 18, B = 7, Total = 60;
        var reference = new PretrainBatchSource(cache, L, B, 258, seed: 99);
        var expected = new int[Total][];
        for (int b = 0; b < Total; b++) reference.NextBatch(expected[b] = new int[L * B]);

        var first = new PretrainBatchSource(cache, L, B, 258, seed: 99);
        var buf = new int[L * B];
        for (int b = 0; b < batchesBeforeSave; b++) first.NextBatch(buf);
        string saved = first.State.ToJson();

        var resumed = new PretrainBatchSource(cache, L, B, 258, seed: 99);
        resumed.Restore(SamplerState.FromJson(saved));
        for (int b = batchesBeforeSave; b < Total; b++)
        {
            resumed.NextBatch(buf);
            Assert.Equal(expected[b], buf);
        }
    }

    [Fact]
    public void State_from_other_data_or_seed_is_refused()
    {
        using var dir = new TempDir();
        using var cache = Counting(dir, 1000);
        var state = new PretrainBatchSource(cache, 10, 2, 258, seed: 1).State;
        var e = Assert.Throws<ArgumentException>(() => new PretrainBatchSource(cache, 20, 2, 258, seed: 1).Restore(state));
        Assert.Contains("is for 100 items, seed 1, shuffle True, but this source has 50 items", e.Message);
        Assert.Throws<ArgumentException>(() => new PretrainBatchSource(cache, 10, 2, 258, seed: 2).Restore(state));
        Assert.Throws<FormatException>(() => SamplerState.FromJson("{\"itemCount\":1}"));
    }

    [Fact]
    public void Stream_shorter_than_one_sequence_is_an_error()
    {
        using var dir = new TempDir();
        using var cache = Counting(dir, 9);
        var e = Assert.Throws<InvalidDataException>(() => new PretrainBatchSource(cache, 10, 1, 258, 1));
        Assert.Contains("holds 9 tokens, fewer than one sequence of 10", e.Message);
    }
}
