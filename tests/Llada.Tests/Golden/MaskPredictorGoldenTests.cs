using Llada.Model;
using Llada.Numerics;

namespace Llada.Tests.Golden;

public class MaskPredictorGoldenTests
{
    [Theory]
    [MemberData(nameof(GoldenFixtures.All), MemberType = typeof(GoldenFixtures))]
    public void Logits_match_the_independent_reference_within_1e_4_relative(string fixture)
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir(fixture));
        foreach (var c in GoldenFixtures.Load(fixture, "expected_logits.json").GetProperty("cases").EnumerateArray())
        {
            var rows = c.GetProperty("input_ids").EnumerateArray().Select(GoldenFixtures.Ints).ToArray();
            int batch = rows.Length, t = rows[0].Length, v = model.VocabSize;
            bool[]? mask = c.GetProperty("key_mask").ValueKind == System.Text.Json.JsonValueKind.Null
                ? null
                : c.GetProperty("key_mask").EnumerateArray().SelectMany(r => r.EnumerateArray().Select(e => e.GetInt32() == 1)).ToArray();
            var logits = new float[batch * t * v];
            model.Forward(rows.SelectMany(r => r).ToArray(), batch, t, mask, Enumerable.Range(0, t).ToArray(), logits, TestContext.Current.CancellationToken);

            var expected = c.GetProperty("logits");
            double maxAbs = 0, maxErr = 0;
            for (int b = 0; b < batch; b++)
            {
                var rowExpected = expected[b];
                for (int i = 0; i < t; i++)
                {
                    if (mask is not null && !mask[b * t + i]) continue; // pad queries are meaningless
                    var e = rowExpected[i];
                    Assert.Equal(v, e.GetArrayLength());
                    for (int j = 0; j < v; j++)
                    {
                        double want = e[j].GetDouble();
                        maxAbs = Math.Max(maxAbs, Math.Abs(want));
                        maxErr = Math.Max(maxErr, Math.Abs(want - logits[(b * t + i) * v + j]));
                    }
                }
            }
            Assert.True(maxErr <= 1e-4 * maxAbs, $"{fixture}/{c.GetProperty("name")}: max error {maxErr:g3} vs 1e-4 x {maxAbs:g3}");
        }
    }

    [Theory]
    [MemberData(nameof(GoldenFixtures.All), MemberType = typeof(GoldenFixtures))]
    public void Logits_for_a_subset_of_positions_equal_the_full_pass(string fixture)
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir(fixture));
        var c = GoldenFixtures.Load(fixture, "expected_logits.json").GetProperty("cases")[1];
        int[] tokens = c.GetProperty("input_ids").EnumerateArray().SelectMany(GoldenFixtures.Ints).ToArray();
        bool[] mask = c.GetProperty("key_mask").EnumerateArray().SelectMany(r => r.EnumerateArray().Select(e => e.GetInt32() == 1)).ToArray();
        int batch = 2, t = tokens.Length / 2, v = model.VocabSize;
        var full = new float[batch * t * v];
        model.Forward(tokens, batch, t, mask, Enumerable.Range(0, t).ToArray(), full, TestContext.Current.CancellationToken);
        int[] subset = [t - 1, 4, 5];
        var part = new float[batch * subset.Length * v];
        model.Forward(tokens, batch, t, mask, subset, part, TestContext.Current.CancellationToken);
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < subset.Length; i++)
                for (int j = 0; j < v; j++)
                {
                    float want = full[(b * t + subset[i]) * v + j], got = part[(b * subset.Length + i) * v + j];
                    Assert.True(Math.Abs(want - got) <= 1e-5f * (1 + Math.Abs(want)), $"row {b} pos {subset[i]} col {j}: {got} vs {want}");
                }
    }

    [Fact]
    public void Results_do_not_depend_on_the_thread_count()
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir("tiny-gqa-bf16"));
        int[] tokens = [1, 5, 9, 196, 196, 7, 3, 190];
        int[] all = Enumerable.Range(0, tokens.Length).ToArray();
        var one = new float[tokens.Length * model.VocabSize];
        var two = new float[one.Length];
        int saved = Parallelism.ThreadCount;
        try
        {
            Parallelism.ThreadCount = 1;
            model.Forward(tokens, 1, tokens.Length, default, all, one, TestContext.Current.CancellationToken);
            Parallelism.ThreadCount = 2;
            model.Forward(tokens, 1, tokens.Length, default, all, two, TestContext.Current.CancellationToken);
        }
        finally
        {
            Parallelism.ThreadCount = saved;
        }
        Assert.Equal(one, two);
    }

    [Fact]
    public void Token_ids_outside_the_embedding_are_rejected_with_their_index()
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir("tiny-mha-f32"));
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            model.Forward([1, 2, 500], 1, 3, default, [0], new float[model.VocabSize], TestContext.Current.CancellationToken));
        Assert.Contains("index 2", ex.Message);
    }
}
