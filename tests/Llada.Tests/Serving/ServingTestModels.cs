using System.Text.Json;
using Llada.Model;
using Llada.Numerics;
using Llada.Serving;
using Llada.Tokenization;

namespace Llada.Tests.Serving;

/// <summary>
/// A byte-level tokenizer (one id per byte, no merges, so any UTF-8 text round-trips) with LLaDA's special tokens,
/// small enough for a tiny model's vocabulary: 256 &lt;|startoftext|&gt;, 257 &lt;|start_header_id|&gt;,
/// 258 &lt;|end_header_id|&gt;, 259 &lt;|eot_id|&gt;, 260 &lt;|endoftext|&gt; (EOS), 261 &lt;|mdm_mask|&gt;.
/// </summary>
internal static class ByteTokenizer
{
    public const int Bos = 256, StartHeader = 257, EndHeader = 258, Eot = 259, Eos = 260, Mask = 261, Vocab = 262;

    private static readonly string[] Specials =
        ["<|startoftext|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|endoftext|>", "<|mdm_mask|>"];

    /// <summary>Writes tokenizer.json and tokenizer_config.json into <paramref name="directory"/>.</summary>
    public static void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        var vocab = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++) vocab[ByteLevelAlphabet.ToChar((byte)b).ToString()] = b;
        var json = new
        {
            version = "1.0",
            added_tokens = Specials.Select((s, i) => new
            {
                id = 256 + i, content = s, single_word = false, lstrip = false, rstrip = false, normalized = false, special = true,
            }),
            normalizer = (object?)null,
            pre_tokenizer = new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = true },
            post_processor = (object?)null,
            decoder = new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = true },
            model = new { type = "BPE", vocab, merges = Array.Empty<string>() },
        };
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), JsonSerializer.Serialize(json));
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), JsonSerializer.Serialize(new
        {
            bos_token = "<|startoftext|>", eos_token = "<|endoftext|>", mask_token = "<|mdm_mask|>",
        }));
    }

    private static readonly Lazy<Llada.Tokenization.Tokenizer> s_shared = new(() =>
    {
        string dir = Directory.CreateTempSubdirectory("llada-bytetok-").FullName;
        try
        {
            Write(dir);
            return Llada.Tokenization.Tokenizer.FromDirectory(dir);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    });

    public static Llada.Tokenization.Tokenizer Shared => s_shared.Value;

    public static Llada.Tokenization.Tokenizer Tokenizer() => s_shared.Value;

    public static int[] Bytes(string text) => System.Text.Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();
}

/// <summary>
/// A mask predictor that writes a fixed script into the answer canvas (which starts right after the last
/// &lt;|end_header_id|&gt;\n\n of the row) and EOS after it, with one-hot logits, so the answer is known exactly.
/// </summary>
internal sealed class ScriptedPredictor(int[] script, int maxSequenceLength = 512) : IMaskPredictor
{
    private volatile int _forwardCalls;
    public int VocabSize => ByteTokenizer.Vocab;
    public int MaskTokenId => ByteTokenizer.Mask;
    public int MaxSequenceLength => maxSequenceLength;
    public int ForwardCalls => _forwardCalls;

    /// <summary>When set, Forward waits on it (honouring cancellation) before computing.</summary>
    public SemaphoreSlim? Gate { get; set; }

    public void Forward(ReadOnlySpan<int> tokens, int batch, int seqLen, ReadOnlySpan<bool> keyMask,
        ReadOnlySpan<int> logitPositions, Span<float> logits, CancellationToken cancellationToken = default)
    {
        if (Gate is { } gate)
        {
            gate.Wait(cancellationToken);
            gate.Release();
        }
        Interlocked.Increment(ref _forwardCalls);
        logits.Clear();
        for (int b = 0; b < batch; b++)
        {
            var row = tokens.Slice(b * seqLen, seqLen);
            int start = row.LastIndexOf(ByteTokenizer.EndHeader) + 3;
            for (int j = 0; j < logitPositions.Length; j++)
            {
                int i = logitPositions[j] - start;
                int token = i >= 0 && i < script.Length ? script[i] : ByteTokenizer.Eos;
                logits[(b * logitPositions.Length + j) * VocabSize + token] = 10f;
            }
        }
    }
}

internal static class ServingTestModels
{
    /// <summary>A generator whose answers are <paramref name="answer"/> then end-of-turn (unless <paramref name="endTurn"/> is false).</summary>
    public static TextGenerator Scripted(string answer, bool endTurn = true, int maxSequenceLength = 512) =>
        Scripted(endTurn ? [.. ByteTokenizer.Bytes(answer), ByteTokenizer.Eot] : ByteTokenizer.Bytes(answer), maxSequenceLength, out _);

    public static TextGenerator Scripted(int[] script, int maxSequenceLength, out ScriptedPredictor predictor)
    {
        predictor = new ScriptedPredictor(script, maxSequenceLength);
        return new TextGenerator(predictor, ByteTokenizer.Shared, ByteTokenizer.Eos, ByteTokenizer.Eot, "scripted");
    }

    /// <summary>A tiny random-weight LLaDA checkpoint whose vocabulary is the byte tokenizer's, with the tokenizer files.</summary>
    public static string WriteSyntheticModel(string directory, int maxSeq = 256)
    {
        var config = SyntheticCheckpoint.Config(dModel: 32, nLayers: 2, nHeads: 4, mlp: 64, vocab: ByteTokenizer.Vocab, nKvHeads: 2, maxSeq: maxSeq);
        SyntheticCheckpoint.Write(directory, config, DType.F32, seed: 11);
        ByteTokenizer.Write(directory);
        return directory;
    }
}
