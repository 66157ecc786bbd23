using Llada.Model;
using Llada.Numerics;

namespace Llada.Tests.Model;

/// <summary>Q8_0 models pack their matrices once at load (<see cref="PackedWeights"/>); these tests switch kernels, hence the collection.</summary>
[Collection(nameof(Numerics.NumericsGlobalState))]
public class PackedQ8ModelTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string> Models => ["dense", "moe"];

    [Theory]
    [MemberData(nameof(Models))]
    public void A_q8_model_packed_at_load_predicts_bit_for_bit_like_one_packed_per_call_and_its_released_rows_still_read(string kind)
    {
        if (!QuantizedGemm.UseVector) Assert.Skip("no AVX-512BW: nothing is packed");
        using var dir = new TempDir();
        // 48-wide MLP and a 50-token head: matrices whose row count is not a multiple of the 32-row panel.
        var config = kind == "dense"
            ? SyntheticCheckpoint.Config(64, 2, 4, mlp: 96, vocab: 50, maxSeq: 64)
            : SyntheticCheckpoint.MoeConfig(64, 2, 4, experts: 4, topK: 2, expertFf: 32, vocab: 50, maxSeq: 64);
        SyntheticCheckpoint.Write(dir.Path, config, DType.Q8_0, seed: 5, Ct);
        int[] tokens = [1, 5, 9, config.MaskTokenId, 3, config.MaskTokenId, 7, 2];
        int[] positions = Enumerable.Range(0, tokens.Length).ToArray();
        float[] Logits(MaskPredictor model)
        {
            var logits = new float[tokens.Length * model.VocabSize];
            model.Forward(tokens, 1, tokens.Length, default, positions, logits, Ct);
            return logits;
        }

        MaskPredictor perCall;
        QuantizedGemm.UseVector = false; // nothing is packed while no vector kernel runs
        try { perCall = MaskPredictor.Load(dir.Path); }
        finally { QuantizedGemm.UseVector = true; }
        using (perCall)
        using (var packed = MaskPredictor.Load(dir.Path))
        {
            Assert.Equal(0, perCall.PackedWeightBytes);
            Assert.True(packed.PackedWeightBytes > 0);
            float[] expected = Logits(perCall);
            Assert.Equal(expected, Logits(packed));
            // The scalar path multiplies from the rows whose mapped pages packing released: they fault back in intact.
            QuantizedGemm.UseVector = false;
            try { Assert.Equal(expected, Logits(packed)); }
            finally { QuantizedGemm.UseVector = true; }
        }
    }
}
