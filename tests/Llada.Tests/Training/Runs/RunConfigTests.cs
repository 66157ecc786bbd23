using Llada.Reporting;
using Llada.Training.Runs;

namespace Llada.Tests.Training.Runs;

public class RunConfigTests
{
    private static string WriteJson(string json)
    {
        string path = Path.Combine(Path.GetTempPath(), $"llada-config-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void Presets_have_the_documented_sizes()
    {
        var tiny = RunConfig.Resolve("tiny");
        Assert.Equal((256, 6, 4, 2, 704, 256), (tiny.DModel, tiny.NLayers, tiny.NHeads, tiny.NKvHeads, tiny.MlpHiddenSize, tiny.SeqLen));
        var small = RunConfig.Resolve("small");
        Assert.Equal((384, 8, 6, 2, 1024, 256), (small.DModel, small.NLayers, small.NHeads, small.NKvHeads, small.MlpHiddenSize, small.SeqLen));
        Assert.Equal(0.1, RunConfig.Resolve("sft").DecayFraction);
        foreach (string name in RunConfig.PresetNames) RunConfig.Resolve(name).Validate(name);
    }

    [Fact]
    public void A_file_overrides_its_base_preset_and_round_trips()
    {
        string path = WriteJson("""{ "base": "small", "n_layers": 4, "lr": 5e-4, "objective": "ar", "seed": 18446744073709551615 }""");
        var c = RunConfig.Resolve(path);
        Assert.Equal(("small", 384, 4, 5e-4, RunObjective.Ar, ulong.MaxValue), (c.Name, c.DModel, c.NLayers, c.LearningRate, c.Objective, c.Seed));
        Assert.Equal(c, RunConfig.Parse(c.ToJson()));
        var custom = RunConfig.Resolve(WriteJson("""{ "d_model": 128, "n_heads": 2, "n_kv_heads": 1 }"""));
        Assert.StartsWith("llada-config-", custom.Name);
        Assert.Equal(128, custom.DModel);
    }

    [Theory]
    [InlineData("""{ "d_modle": 128 }""", "'d_modle' is not a known key")]
    [InlineData("""{ "d_model": "big" }""", "'d_model' must be an integer, found \"big\"")]
    [InlineData("""{ "lr": -1 }""", "'lr' must be positive")]
    [InlineData("""{ "d_model": 100, "n_heads": 3 }""", "'d_model' (100) must be divisible by n_heads (3)")]
    [InlineData("""{ "n_heads": 4, "n_kv_heads": 3 }""", "'n_kv_heads' (3) must divide n_heads (4)")]
    [InlineData("""{ "objective": "gpt" }""", "'objective' must be \"mdm\" or \"ar\"")]
    [InlineData("""{ "base": "huge" }""", "'base' must be one of tiny, small, sft")]
    [InlineData("""{ "steps": 10, "warmup_steps": 50 }""", "'warmup_steps' (50) runs into the decay, which starts at step 9 of 10; lower warmup_steps to at most 9 or raise steps to at least 56")]
    [InlineData("""{ "steps": 10, "warmup_steps": 50, "decay_fraction": 0.5 }""", "'warmup_steps' (50) runs into the decay, which starts at step 5 of 10; lower warmup_steps to at most 5 or raise steps to at least 100")]
    [InlineData("""{ "steps": 10, "warmup_steps": 5, "decay_fraction": 1 }""", "'warmup_steps' (5) runs into the decay, which starts at step 0 of 10; lower warmup_steps to at most 0")]
    [InlineData("""[1, 2]""", "must be a JSON object")]
    [InlineData("""{ "steps": 10,, }""", "is not valid JSON")]
    public void Bad_files_name_the_file_and_the_key(string json, string expected)
    {
        string path = WriteJson(json);
        var ex = Assert.Throws<RunConfigException>(() => RunConfig.Resolve(path));
        Assert.Contains(expected, ex.Message);
        Assert.StartsWith(path, ex.Message);
    }

    [Fact]
    public void Unknown_presets_and_missing_files_are_reported()
    {
        Assert.Contains("neither a preset (tiny, small, sft) nor a .json file", Assert.Throws<RunConfigException>(() => RunConfig.Resolve("medium")).Message);
        Assert.Contains("file not found", Assert.Throws<RunConfigException>(() => RunConfig.Resolve("/nonexistent/run.json")).Message);
    }

    [Theory]
    [InlineData(0.3, 9.7, new[] { 0.0, 2, 4, 6, 8, 10 })]
    [InlineData(2.31, 2.87, new[] { 2.2, 2.4, 2.6, 2.8, 3.0 })]
    [InlineData(0, 1000, new[] { 0.0, 200, 400, 600, 800, 1000 })]
    [InlineData(5, 5, new[] { 4.4, 4.6, 4.8, 5.0, 5.2, 5.4, 5.6 })]
    public void Chart_ticks_are_1_2_5_multiples_covering_the_range(double min, double max, double[] expected)
    {
        double[] ticks = SvgLineChart.NiceTicks(ref min, ref max);
        Assert.Equal(expected, ticks);
        Assert.Equal(expected[0], min);
        Assert.Equal(expected[^1], max);
    }
}
