using System.Text;
using BenchmarkDotNet.Attributes;
using Llada.Tokenization;

namespace Llada.Benchmarks;

/// <summary>
/// Encoding throughput on English prose with the Qwen3 tokenizer (NFC normaliser, Split regex, ByteLevel, BPE).
/// MB/s = TextBytes / mean time. Run: dotnet run -c Release --project bench/Llada.Benchmarks -- --filter *Tokenizer*
/// </summary>
[MemoryDiagnoser]
public class TokenizerBenchmarks
{
    private Tokenizer _tokenizer = null!;
    private string _prose = "";

    /// <summary>UTF-8 size of the encoded text (1 MiB of prose).</summary>
    public const int TextBytes = 1 << 20;

    [Params("qwen3", "gpt35turbo")]
    public string Name { get; set; } = "qwen3";

    [GlobalSetup]
    public void Setup()
    {
        _tokenizer = Tokenizer.FromDirectory(Path.Combine(RepositoryRoot(), "tests", "fixtures", "tokenizers", Name));
        _prose = Prose(TextBytes);
        _tokenizer.Encode(_prose); // warm the word cache as a long-running process would have it
    }

    [Benchmark]
    public int EncodeOneMebibyteOfProse() => _tokenizer.Encode(_prose).Length;

    /// <summary>Deterministic English-like prose: common words with Zipf-like frequencies, punctuation, numbers, paragraphs.</summary>
    internal static string Prose(int bytes)
    {
        string[] words = ("the of and to a in is that it was for on are as with his they at be this from have or by one had not "
            + "but what all were when we there can an your which their said if do will each about how up out them then she many "
            + "some so these would other into has more her two like him see time could no make than first been its who now people "
            + "my made over did down only way find use may water long little very after words called just where most know get "
            + "through back much before go good new write our used me man too any day same right look think also around another "
            + "came come work three word must because does part even place well such here take why things help put years different "
            + "away again off went old number great tell men say small every found still between name should home big give air "
            + "line set own under read last never us left end along while might next sound below saw something thought both few "
            + "those always looked show large often together asked house don't world going want school important until form food "
            + "keep children feet land side without boy once animals life enough took sometimes four head above kind began almost "
            + "live page got earth need far hand high year mother light parts country father let night following picture being "
            + "study second eyes soon times story boys since white days ever paper hard near sentence better best across during "
            + "today others however sure means knew it's try told young miles sun ways thing whole hear example heard several "
            + "change answer room sea against top turned learn point city play toward five using himself usually diffusion masked "
            + "language models predict tokens sampling remasking confidence likelihood").Split(' ');
        var rng = new Random(1234);
        var sb = new StringBuilder(bytes + 64);
        bool capital = true;
        while (sb.Length < bytes)
        {
            // Zipf-like choice: low indices are much more frequent.
            int k = (int)(words.Length * Math.Pow(rng.NextDouble(), 2.2));
            string w = words[k];
            sb.Append(capital ? char.ToUpperInvariant(w[0]) + w[1..] : w);
            capital = false;
            double r = rng.NextDouble();
            if (r < 0.06) { sb.Append(". "); capital = true; }
            else if (r < 0.09) sb.Append(", ");
            else if (r < 0.095) sb.Append(' ').Append(rng.Next(1, 5000)).Append(' ');
            else if (r < 0.097) { sb.Append(".\n\n"); capital = true; }
            else sb.Append(' ');
        }
        return sb.ToString(0, bytes);
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Llada.slnx"))) return dir.FullName;
        throw new DirectoryNotFoundException($"Llada.slnx not found above {AppContext.BaseDirectory}.");
    }
}
