using Llada.Model;
using Llada.Tests.Model;

namespace Llada.Tests.Cli;

public sealed class WeightsCommandTests
{
    [Fact]
    public async Task Synth_then_quantize_to_q8_writes_a_model_that_loads_benches_and_refuses_to_overwrite()
    {
        using var dir = new TempDir();
        string synth = dir.File("synth"), q8 = dir.File("q8");
        var (exit, stdout, stderr) = await CliTestHost.Run("synth", "--shape", "64,2,4,96,40", "--dtype", "bf16", "--out", synth);
        Assert.True(exit == 0, stderr);
        Assert.Contains("BF16", stdout);
        File.WriteAllText(Path.Combine(synth, "tokenizer.json"), "{}");

        (exit, stdout, stderr) = await CliTestHost.Run("quantize", "--model", synth, "--type", "q8", "--out", q8);
        Assert.True(exit == 0, stderr);
        Assert.Contains("Q8_0 + BF16", stdout);
        Assert.Contains("blocks.1.ff_out.weight.q8_scale (F16 [64, 3])", stderr); // one progress line per stored tensor
        Assert.True(File.Exists(Path.Combine(q8, "tokenizer.json")));
        using (var ckpt = LladaCheckpoint.Open(q8))
        {
            Assert.Equal("Q8_0", ckpt.TensorDType(LladaTensorNames.Block(1, "q_proj")));
            Assert.Equal("BF16", ckpt.TensorDType(LladaTensorNames.Embedding));
        }

        (exit, stdout, stderr) = await CliTestHost.Run("bench", "--model", q8, "--seq-len", "8", "--repeat", "1", "--json");
        Assert.True(exit == 0, stderr);
        Assert.Equal("Q8_0 + BF16", CliTestHost.Json(stdout).GetProperty("dtype").GetString());

        (exit, _, stderr) = await CliTestHost.Run("quantize", "--model", synth, "--type", "q8", "--out", q8);
        Assert.NotEqual(0, exit);
        Assert.Contains("already exists", stderr);
        (exit, _, stderr) = await CliTestHost.Run("quantize", "--model", synth, "--type", "q4", "--out", dir.File("x"));
        Assert.NotEqual(0, exit);
        Assert.Contains("use f32, bf16, f16 or q8", stderr);
    }
}
