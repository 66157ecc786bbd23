using System.Text.Json;
using Llada.Diffusion;
using Llada.Model;

namespace Llada.Tests.Golden;

public class ReverseProcessGoldenTests
{
    [Theory]
    [MemberData(nameof(GoldenFixtures.All), MemberType = typeof(GoldenFixtures))]
    public void Greedy_generation_matches_the_reference_token_for_token_and_step_for_step(string fixture) =>
        ReplayCases(fixture, "expected_generate.json");

    [Theory]
    [MemberData(nameof(GoldenFixtures.All), MemberType = typeof(GoldenFixtures))]
    public void Greedy_generation_with_the_prefix_and_dual_KV_cache_matches_the_reference(string fixture)
    {
        var cases = GoldenFixtures.Load(fixture, "expected_generate_cached.json").GetProperty("cases").EnumerateArray().ToArray();
        Assert.Contains(cases, c => c.GetProperty("options").GetProperty("cache").GetString() == "prefix");
        Assert.Contains(cases, c => c.GetProperty("options").GetProperty("cache").GetString() == "dual");
        // The cache is an approximation: the reference's cached trajectories must differ from the uncached ones somewhere.
        Assert.Contains(cases, c => c.GetProperty("differs_from_uncached").GetBoolean());
        ReplayCases(fixture, "expected_generate_cached.json");
    }

    private static void ReplayCases(string fixture, string file)
    {
        using var model = MaskPredictor.Load(GoldenFixtures.Dir(fixture));
        var sampler = new ReverseProcess(model);
        foreach (var c in GoldenFixtures.Load(fixture, file).GetProperty("cases").EnumerateArray())
        {
            string name = $"{fixture}/{c.GetProperty("name").GetString()}";
            int[] prompt = GoldenFixtures.Ints(c.GetProperty("prompt_ids"));
            var o = c.GetProperty("options");
            var options = new GenerationOptions
            {
                GenLength = o.GetProperty("gen_length").GetInt32(),
                Steps = o.GetProperty("steps").GetInt32(),
                BlockLength = o.GetProperty("block_length").GetInt32(),
                Temperature = o.GetProperty("temperature").GetDouble(),
                CfgScale = o.GetProperty("cfg_scale").GetDouble(),
                LogitsEosInf = o.GetProperty("logits_eos_inf").GetBoolean(),
                ConfidenceEosEotInf = o.GetProperty("confidence_eos_eot_inf").GetBoolean(),
                EosTokenId = o.GetProperty("eos_id").GetInt32(),
                EndOfTurnTokenId = o.GetProperty("eot_id").GetInt32(),
                Threshold = o.GetProperty("threshold").ValueKind == JsonValueKind.Null ? null : o.GetProperty("threshold").GetDouble(),
                Factor = o.GetProperty("factor").ValueKind == JsonValueKind.Null ? null : o.GetProperty("factor").GetDouble(),
                Cache = o.TryGetProperty("cache", out var cache) ? Enum.Parse<KvCacheMode>(cache.GetString()!, ignoreCase: true) : KvCacheMode.None,
            };
            var steps = new List<(int[] Positions, int[] Tokens)>();
            var result = sampler.Generate(prompt, options, new StepRecorder(s =>
                steps.Add((s.Committed.OrderBy(x => x.Position).Select(x => x.Position + prompt.Length).ToArray(),
                           s.Committed.OrderBy(x => x.Position).Select(x => x.TokenId).ToArray()))), TestContext.Current.CancellationToken);

            var expectedSteps = c.GetProperty("steps").EnumerateArray().ToArray();
            Assert.True(expectedSteps.Length == steps.Count, $"{name}: {steps.Count} steps, reference {expectedSteps.Length}");
            for (int s = 0; s < steps.Count; s++)
            {
                Assert.True(GoldenFixtures.Ints(expectedSteps[s].GetProperty("positions")).SequenceEqual(steps[s].Positions),
                    $"{name} step {s}: committed positions [{string.Join(",", steps[s].Positions)}]");
                Assert.True(GoldenFixtures.Ints(expectedSteps[s].GetProperty("tokens")).SequenceEqual(steps[s].Tokens),
                    $"{name} step {s}: committed tokens [{string.Join(",", steps[s].Tokens)}]");
            }
            Assert.Equal(GoldenFixtures.Ints(c.GetProperty("token_ids")), result.Sequences[0]);
            Assert.Equal(steps.Count, result.ForwardPasses);
            int blocksRun = c.GetProperty("steps").EnumerateArray().Select(x => x.GetProperty("block").GetInt32()).Distinct().Count();
            Assert.Equal(options.Cache == KvCacheMode.None ? 0 : steps.Count - blocksRun, result.WindowPasses);
        }
    }

    private sealed class StepRecorder(Action<ReverseProcessStep> record) : IProgress<ReverseProcessStep>
    {
        public void Report(ReverseProcessStep value) => record(value);
    }
}
