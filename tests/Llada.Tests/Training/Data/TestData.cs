using System.Text;
using Llada.Training.Data;

namespace Llada.Tests.Training.Data;

/// <summary>A temporary directory deleted after the test.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Root);

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "llada-data-" + Guid.NewGuid().ToString("N"));

    public string File(string name, string text) => Bytes(name, Encoding.UTF8.GetBytes(text));

    public string Bytes(string name, byte[] bytes)
    {
        string path = Path.Combine(Root, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        System.IO.File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Test tokenizers: UTF-8 bytes, and whitespace words with a few special words.</summary>
internal static class TestTokenizers
{
    public const int ByteBos = 256, ByteEos = 257;

    /// <summary>Ids 0..255 are bytes; 256 = BOS, 257 = EOS.</summary>
    public static ITextEncoder Bytes(string identity = "bytes-v1") =>
        new DelegateTextEncoder(s => Encoding.UTF8.GetBytes(s).Select(b => (int)b).ToArray(), 258, identity);

    public const int Bos = 0, Eos = 1, Eot = 2, User = 3, Assistant = 4;
    private static readonly string[] Specials = ["<bos>", "<eos>", "<eot>", "<user>", "<assistant>"];

    /// <summary>Whitespace words; special words map to 0..4, other words to 5 + FNV-1a(word) mod (vocab − 5).</summary>
    public static ITextEncoder Words(int vocabSize = 1000) =>
        new DelegateTextEncoder(s => s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Select(w => WordId(w, vocabSize)).ToArray(),
            vocabSize, $"words-{vocabSize}");

    public static int WordId(string word, int vocabSize)
    {
        int special = Array.IndexOf(Specials, word);
        if (special >= 0) return special;
        uint h = 2166136261;
        foreach (char c in word) h = (h ^ c) * 16777619;
        return 5 + (int)(h % (uint)(vocabSize - 5));
    }

    /// <summary>A Llama-3-like template in words: &lt;bos&gt; then "&lt;role&gt; content &lt;eot&gt;" per message.</summary>
    public static string Render(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt)
    {
        var sb = new StringBuilder("<bos>");
        foreach (var m in messages) sb.Append($" <{m.Role}> {m.Content.Trim()} <eot>");
        if (addGenerationPrompt) sb.Append(" <assistant>");
        return sb.ToString();
    }

    /// <summary>The repository root (holding Llada.slnx), for tests over the committed data.</summary>
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !System.IO.File.Exists(Path.Combine(dir.FullName, "Llada.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Repository root not found.");
    }
}
