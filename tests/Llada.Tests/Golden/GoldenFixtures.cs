using System.Text.Json;

namespace Llada.Tests.Golden;

/// <summary>
/// The tiny checkpoints under tests/fixtures/tiny-*, written with logits and greedy trajectories by the independent
/// float64 PyTorch references in tools/reference/llada_ref.py (dense) and tools/reference/moe_ref.py (tiny-moe*, the
/// LLaDA-MoE layout); format: tests/fixtures/README.md.
/// </summary>
public static class GoldenFixtures
{
    public static readonly string[] Names =
        ["tiny-mha-f32", "tiny-gqa-tied-f32", "tiny-gqa-bf16", "tiny-padded-sharded", "tiny-moe-f32", "tiny-moe-mixed-bf16"];

    public static TheoryData<string> All()
    {
        var data = new TheoryData<string>();
        foreach (var n in Names) data.Add(n);
        return data;
    }

    public static string Dir(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", name);

    /// <summary>Parses a fixture file. Python's json writes bare Infinity for some margins; they become 1e999 here.</summary>
    public static JsonElement Load(string name, string file) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir(name), file)).Replace("Infinity", "1e999")).RootElement;

    public static int[] Ints(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt32()).ToArray();
}
