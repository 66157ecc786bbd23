using System.Collections.Concurrent;
using System.Text.Json;
using Llada.Tokenization;

namespace Llada.Tests.Tokenization;

/// <summary>Loads the tokenizers under tests/fixtures/tokenizers once per test run.</summary>
internal static class TokenizerFixtures
{
    private static readonly ConcurrentDictionary<string, Lazy<Tokenizer>> s_tokenizers = new();

    public static string Directory(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenizers", name);

    public static Tokenizer Load(string name) =>
        s_tokenizers.GetOrAdd(name, n => new Lazy<Tokenizer>(() => Tokenizer.FromDirectory(Directory(n)))).Value;

    public static JsonElement Golden(string name, string file = "golden.json")
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Directory(name), file)));
        return doc.RootElement.Clone();
    }

    public static int[] Ints(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetInt32())];
}
