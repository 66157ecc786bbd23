using Llada.Diffusion;
using Llada.Model;

namespace Llada.Tests.Golden;

/// <summary>The reverse process with the approximate KV cache, against the uncached sampler on a tiny real checkpoint.</summary>
public class KvCacheSamplerTests
{
    private const string Fixture = "tiny-gqa-bf16"; // mask 196, eos 190, eot 193

    private static GenerationOptions Options(int gen, int steps, int block) => new()
    {
        GenLength = gen, Steps = steps, BlockLength = block, EosTokenId = 190, EndOfTurnTokenId = 193,
    };

    public static TheoryData<KvCacheMode, double, double, double?> OneBlockCases => new()
    {
        { KvCacheMode.Dual, 0.0, 0.0, null },
        { KvCacheMode.Prefix, 0.0, 0.0, null },
        { KvCacheMode.Dual, 0.9, 0.0, null },
        { KvCacheMode.Dual, 0.0, 1.5, null },
        { KvCacheMode.Dual, 0.0, 0.0, 0.5 },
        { KvCacheMode.Prefix, 0.7, 1.0, 0.3 },
    };

    // With an empty prompt and one block covering the whole answer, every window pass runs the whole canvas, so
    // the cache holds nothing stale: the cached sampler must reproduce the uncached one exactly.
    [Theory]
    [MemberData(nameof(OneBlockCases))]
    public void One_block_over_the_whole_answer_with_an_empty_prompt_equals_the_uncached_sampler(
        KvCacheMode mode, double temperature, double cfg, double? threshold)
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir(Fixture));
        var sampler = new ReverseProcess(model);
        var options = Options(12, 6, 12) with { Temperature = temperature, CfgScale = cfg, Threshold = threshold, Seed = 11 };
        var ct = TestContext.Current.CancellationToken;
        var vanilla = sampler.Generate(ReadOnlySpan<int>.Empty, options, cancellationToken: ct);
        var cached = sampler.Generate(ReadOnlySpan<int>.Empty, options with { Cache = mode }, cancellationToken: ct);
        Assert.Equal(vanilla.Sequences[0], cached.Sequences[0]);
        Assert.Equal(vanilla.ForwardPasses, cached.ForwardPasses);
        Assert.Equal(1, cached.FullPasses);
        Assert.Equal(cached.ForwardPasses - 1, cached.WindowPasses);
        Assert.Equal(0, vanilla.WindowPasses);
    }

    [Theory]
    [InlineData(KvCacheMode.Prefix)]
    [InlineData(KvCacheMode.Dual)]
    public void A_batch_row_without_padding_matches_its_lone_run_with_the_cache(KvCacheMode mode)
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir(Fixture));
        var sampler = new ReverseProcess(model);
        var options = Options(12, 6, 4) with { CfgScale = 0.5, Cache = mode };
        var ct = TestContext.Current.CancellationToken;
        int[][] prompts = [[5, 17, 42, 8, 99], [3, 61]];
        var batched = sampler.Generate(prompts, options, cancellationToken: ct);
        var lone = sampler.Generate(prompts[0], options, cancellationToken: ct);
        Assert.Equal(lone.Sequences[0], batched.Sequences[0]);
        Assert.Equal(3, batched.FullPasses); // one per block
        Assert.Equal(3, batched.WindowPasses);
    }
}
