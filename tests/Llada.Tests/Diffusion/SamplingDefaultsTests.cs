using System.Text;
using Llada.Diffusion;
using Llada.Model;
using Llada.Tests.Model;

namespace Llada.Tests.Diffusion;

public sealed class SamplingDefaultsTests
{
    private static SamplingDefaults Parse(string json) => SamplingDefaults.Parse(Encoding.UTF8.GetBytes(json), "m/generation_config.json");

    [Fact]
    public void Reads_the_sampling_keys_of_a_hugging_face_file_and_ignores_the_rest()
    {
        var d = Parse("""
            {"bos_token_id": 1, "eos_token_id": [2, 3], "top_p": 0.9, "transformers_version": "4.46.0", "pad_token_id": null,
             "max_new_tokens": 48, "steps": 24, "block_length": 16, "temperature": 0.5, "cfg_scale": 1.5, "remasking": "random"}
            """);
        Assert.Equal((48, 24, 16, 0.5, 1.5, Remasking.Random), (d.GenLength, d.Steps, d.BlockLength, d.Temperature, d.CfgScale, d.Remasking));
        Assert.Equal("m/generation_config.json", d.SourcePath);
        Assert.Equal(["block_length", "cfg_scale", "gen_length", "remasking", "steps", "temperature"], d.FromFile.Order());
    }

    [Fact]
    public void Unset_keys_keep_the_built_in_values_and_say_so()
    {
        var d = Parse("""{"block_length": 16, "gen_length": 32}""");
        Assert.Equal((32, null, 16, 0.0, 0.0, Remasking.LowConfidence), (d.GenLength, d.Steps, d.BlockLength, d.Temperature, d.CfgScale, d.Remasking));
        Assert.Equal(SamplingDefaults.FileName, d.SourceOf("block_length"));
        Assert.Equal("built-in", d.SourceOf("temperature"));
        Assert.Equal((64, 32), (SamplingDefaults.BuiltIn.GenLength, SamplingDefaults.BuiltIn.BlockLength));
    }

    [Fact]
    public void Do_sample_false_means_greedy_whatever_the_temperature_as_in_transformers()
    {
        var d = Parse("""{"do_sample": false, "temperature": 0.7, "block_length": 8}""");
        Assert.Equal(0.0, d.Temperature);
        Assert.DoesNotContain("temperature", d.FromFile);
        Assert.Equal(0.7, Parse("""{"do_sample": true, "temperature": 0.7}""").Temperature);
    }

    [Fact]
    public void A_folder_without_the_file_gets_the_built_in_defaults()
    {
        using var dir = new TempDir();
        Assert.Same(SamplingDefaults.BuiltIn, SamplingDefaults.FromDirectory(dir.Path));
        File.WriteAllText(dir.File(SamplingDefaults.FileName), """{"block_length": 8}""");
        var d = SamplingDefaults.FromDirectory(dir.Path);
        Assert.Equal(8, d.BlockLength);
        Assert.Equal(dir.File(SamplingDefaults.FileName), d.SourcePath);
    }

    [Theory]
    [InlineData("""{"block_length": "16"}""", "m/generation_config.json: 'block_length': must be a 32-bit integer, found \"16\"")]
    [InlineData("""{"steps": 12.5}""", "m/generation_config.json: 'steps': must be a 32-bit integer, found 12.5")]
    [InlineData("""{"temperature": "hot"}""", "m/generation_config.json: 'temperature': must be a number, found \"hot\"")]
    [InlineData("""{"do_sample": "yes", "temperature": 1}""", "m/generation_config.json: 'do_sample': must be true or false, found \"yes\"")]
    [InlineData("""{"remasking": "ar"}""", "m/generation_config.json: 'remasking': 'ar' is unknown; use low_confidence or random")]
    [InlineData("""{"remasking": 1}""", "m/generation_config.json: 'remasking': must be a string, found 1")]
    [InlineData("""{"block_length": 0}""", "m/generation_config.json: 'block_length': must be at least 1, found 0")]
    [InlineData("""{"cfg_scale": -1}""", "m/generation_config.json: 'cfg_scale': must be >= 0, found -1")]
    [InlineData("""{"block_length": 48}""",
        "m/generation_config.json: 'block_length': 48 does not divide the built-in gen_length 64 (the answer is split into blocks of equal length)")]
    [InlineData("""{"max_new_tokens": 32, "block_length": 8, "steps": 6}""",
        "m/generation_config.json: 'steps': 6 must be a multiple of the number of blocks, 4 (max_new_tokens 32 / block_length 8), and at most 32 (one token per step)")]
    [InlineData("""{"max_new_tokens": 64, "gen_length": 32}""",
        "m/generation_config.json: 'gen_length': 32 disagrees with max_new_tokens 64; both name the answer length, keep one")]
    [InlineData("""{"block_length": 16,}""", "m/generation_config.json: not valid JSON")]
    [InlineData("""[16]""", "m/generation_config.json: must be a JSON object, found Array")]
    public void A_bad_file_is_an_error_naming_the_file_and_the_key(string json, string expected)
    {
        var ex = Assert.Throws<CheckpointFormatException>(() => Parse(json));
        Assert.StartsWith(expected, ex.Message);
    }

    [Fact]
    public void The_fitted_block_is_the_largest_divisor_of_the_length_not_above_the_default()
    {
        foreach (int block in new[] { 1, 7, 16, 32 })
            for (int gen = 1; gen <= 100; gen++)
            {
                int expected = Enumerable.Range(1, Math.Min(block, gen)).Last(b => gen % b == 0); // brute force
                Assert.Equal(expected, new SamplingDefaults { BlockLength = block }.FittedBlockLength(gen));
            }
    }

    [Theory]
    [InlineData(null, 64, 24, 4, 24)] // no steps in the file: one per token
    [InlineData(32, 64, 64, 4, 32)]   // half a step per token, kept at another length
    [InlineData(32, 64, 24, 4, 12)]
    [InlineData(32, 64, 24, 8, 16)]   // 12 rounded up to a multiple of the 8 blocks
    [InlineData(64, 64, 24, 3, 24)]
    public void Steps_keep_the_files_steps_per_token_at_other_lengths(int? steps, int atLength, int gen, int blocks, int expected) =>
        Assert.Equal(expected, new SamplingDefaults { Steps = steps, GenLength = atLength }.StepsFor(gen, blocks));

    [Fact]
    public void Options_from_the_defaults_fit_the_block_and_steps_to_the_length_and_validate()
    {
        var d = Parse("""{"max_new_tokens": 64, "steps": 32, "block_length": 16, "temperature": 0.25}""");
        var o = d.ToOptions(eosTokenId: 5, endOfTurnTokenId: 6);
        Assert.Equal((64, 16, 32, 0.25, 5, 6), (o.GenLength, o.BlockLength, o.Steps, o.Temperature, o.EosTokenId, o.EndOfTurnTokenId));
        var shorter = d.ToOptions(5, null, genLength: 24); // block 12 (largest divisor of 24 up to 16), 2 blocks, 12 steps
        Assert.Equal((24, 12, 12), (shorter.GenLength, shorter.BlockLength, shorter.Steps));
        shorter.ValidateSettings();
    }
}
