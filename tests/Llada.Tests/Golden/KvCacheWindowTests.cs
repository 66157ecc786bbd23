using Llada.Model;

namespace Llada.Tests.Golden;

/// <summary>The window forward of the approximate KV cache against the full pass of the same predictor.</summary>
public class KvCacheWindowTests
{
    private static (int[] Tokens, bool[] Mask, int Batch, int T) LeftPaddedCase(string fixture)
    {
        var c = GoldenFixtures.Load(fixture, "expected_logits.json").GetProperty("cases")[1];
        int[] tokens = c.GetProperty("input_ids").EnumerateArray().SelectMany(GoldenFixtures.Ints).ToArray();
        bool[] mask = c.GetProperty("key_mask").EnumerateArray().SelectMany(r => r.EnumerateArray().Select(e => e.GetInt32() == 1)).ToArray();
        return (tokens, mask, 2, tokens.Length / 2);
    }

    private static void AssertRowsEqual(float[] full, int t, float[] part, int[] positions, int batch, int v, string what)
    {
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < positions.Length; i++)
                for (int j = 0; j < v; j++)
                {
                    float want = full[(b * t + positions[i]) * v + j], got = part[(b * positions.Length + i) * v + j];
                    Assert.True(Math.Abs(want - got) <= 1e-5f * (1 + Math.Abs(want)), $"{what}: row {b} pos {positions[i]} col {j}: {got} vs {want}");
                }
    }

    [Theory]
    [MemberData(nameof(GoldenFixtures.All), MemberType = typeof(GoldenFixtures))]
    public void Window_logits_equal_the_full_pass_when_nothing_outside_the_window_changed(string fixture)
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir(fixture));
        var (tokens, mask, batch, t) = LeftPaddedCase(fixture);
        int v = model.VocabSize;
        int[] all = Enumerable.Range(0, t).ToArray();
        var full = new float[batch * t * v];
        var cache = model.CreateCache(batch, t);
        model.ForwardFillingCache(tokens, batch, t, mask, all, full, cache, TestContext.Current.CancellationToken);
        var plain = new float[full.Length];
        model.Forward(tokens, batch, t, mask, all, plain, TestContext.Current.CancellationToken);
        Assert.Equal(plain, full); // filling the cache does not change the pass

        int[] window = [3, 4, 5], wanted = [5, 3];
        var part = new float[batch * wanted.Length * v];
        model.ForwardWindow(tokens, batch, t, mask, cache, window[0], window[^1] + 1, wanted, part, TestContext.Current.CancellationToken);
        AssertRowsEqual(full, t, part, wanted, batch, v, $"{fixture} window [3, 6)");

        // The cache still holds the same keys after the window rewrote its own positions: a second window agrees too.
        int[] tail = [t - 2, t - 1];
        var tailLogits = new float[batch * tail.Length * v];
        model.ForwardWindow(tokens, batch, t, mask, cache, t - 2, t, tail, tailLogits, TestContext.Current.CancellationToken);
        AssertRowsEqual(full, t, tailLogits, tail, batch, v, $"{fixture} window [{t - 2}, {t})");
    }

    [Theory]
    [MemberData(nameof(GoldenFixtures.All), MemberType = typeof(GoldenFixtures))]
    public void A_window_over_every_position_is_the_full_pass_whatever_the_cache_held(string fixture)
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir(fixture));
        var (tokens, mask, batch, t) = LeftPaddedCase(fixture);
        int v = model.VocabSize;
        int[] all = Enumerable.Range(0, t).ToArray();
        var cache = model.CreateCache(batch, t);
        int[] other = tokens.Select(x => (x * 7 + 3) % model.MaskTokenId).ToArray();
        model.ForwardFillingCache(other, batch, t, mask, all, new float[batch * t * v], cache, TestContext.Current.CancellationToken);

        var full = new float[batch * t * v];
        model.Forward(tokens, batch, t, mask, all, full, TestContext.Current.CancellationToken);
        var window = new float[full.Length];
        model.ForwardWindow(tokens, batch, t, mask, cache, 0, t, all, window, TestContext.Current.CancellationToken);
        AssertRowsEqual(full, t, window, all, batch, v, fixture);
    }

    [Fact]
    public void A_window_pass_needs_a_filled_cache_of_the_right_shape_and_positions_inside_the_window()
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir("tiny-mha-f32"));
        int[] tokens = [1, 2, 3, 4, 126, 126];
        var logits = new float[model.VocabSize];
        var cache = model.CreateCache(1, 6);
        var ct = TestContext.Current.CancellationToken;
        Assert.Throws<InvalidOperationException>(() => model.ForwardWindow(tokens, 1, 6, default, cache, 4, 6, [4], logits, ct));
        model.ForwardFillingCache(tokens, 1, 6, default, [4], logits, cache, ct);
        var shape = Assert.Throws<ArgumentException>(() => model.ForwardWindow(tokens, 1, 6, default, model.CreateCache(1, 7), 4, 6, [4], logits, ct));
        Assert.Contains("KV cache holds", shape.Message);
        var outside = Assert.Throws<ArgumentOutOfRangeException>(() => model.ForwardWindow(tokens, 1, 6, default, cache, 4, 6, [2], logits, ct));
        Assert.Contains("outside the window [4, 6)", outside.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.ForwardWindow(tokens, 1, 6, default, cache, 5, 5, [], logits, ct));
    }
}
