using System.Security.Cryptography;
using System.Text;

namespace Llada.Training.Data;

/// <summary>Options that shape a pre-training token stream.</summary>
public sealed record PretrainCacheOptions
{
    /// <summary>Id placed before every document, or null for none.</summary>
    public int? BosTokenId { get; init; }

    /// <summary>Id placed after every document (the separator between packed documents), or null for none.</summary>
    public int? EosTokenId { get; init; }

    /// <summary>How .txt sources are cut into documents.</summary>
    public TextLayout Layout { get; init; } = TextLayout.Auto;
}

/// <summary>Options that shape SFT pairs.</summary>
/// <param name="EndOfTurnTokenId">Id that closes an answer (e.g. &lt;|eot_id|&gt;).</param>
/// <param name="EosTokenId">Id appended after the end-of-turn (and used for padding).</param>
/// <param name="TemplateIdentity">Changes whenever the chat renderer's output could change (e.g. a hash of the
/// chat template); part of the cache fingerprint.</param>
public sealed record SftCacheOptions(int EndOfTurnTokenId, int EosTokenId, string TemplateIdentity);

/// <summary>One single-turn training pair cut from a dialogue: everything before an assistant message, and that message.</summary>
/// <param name="History">Messages before the answer (earlier answers included).</param>
/// <param name="Answer">The assistant content to train on.</param>
public sealed record SftPair(IReadOnlyList<ChatTurn> History, string Answer);

/// <summary>Builds (or reuses) the token cache of a pre-training corpus.</summary>
public static class PretrainCache
{
    /// <summary>
    /// Returns the cache at <paramref name="cachePath"/> if its fingerprint (source contents, tokenizer identity,
    /// options) matches; otherwise tokenises the sources into it first. Each document becomes
    /// [BOS] tokens [EOS]; the stream is all documents in source order.
    /// </summary>
    public static TokenCache OpenOrBuild(IReadOnlyList<string> sources, string cachePath, ITextEncoder encoder,
        PretrainCacheOptions options, IProgress<DataProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        string fingerprint = ComputeFingerprint(sources, encoder, options, cancellationToken);
        if (TokenCache.ReadFingerprint(cachePath) != fingerprint)
            Build(sources, cachePath, encoder, options, fingerprint, progress, cancellationToken);
        var cache = TokenCache.Open(cachePath);
        if (cache.Kind != TokenCacheKind.Pretrain)
        {
            cache.Dispose();
            throw new InvalidDataException($"{cachePath} is an SFT cache, not a pre-training cache.");
        }
        return cache;
    }

    /// <summary>The fingerprint a cache of these sources, tokenizer and options must carry.</summary>
    public static string ComputeFingerprint(IReadOnlyList<string> sources, ITextEncoder encoder,
        PretrainCacheOptions options, CancellationToken cancellationToken = default) =>
        Fingerprints.Compute(sources,
            $"pretrain|{encoder.Identity}|{encoder.VocabSize}|{options.BosTokenId}|{options.EosTokenId}|{options.Layout}",
            cancellationToken);

    private static void Build(IReadOnlyList<string> sources, string cachePath, ITextEncoder encoder,
        PretrainCacheOptions options, string fingerprint, IProgress<DataProgress>? progress, CancellationToken ct)
    {
        using var writer = new TokenCacheWriter(cachePath, TokenCacheKind.Pretrain, encoder.VocabSize, fingerprint);
        Span<int> one = stackalloc int[1];
        foreach (var doc in CorpusReader.ReadDocuments(sources, options.Layout, progress, ct))
        {
            long start = writer.TokenCount;
            string Where() => $"{doc.Path}:{doc.Line}";
            if (options.BosTokenId is int bos) { one[0] = bos; writer.Append(one, Where); }
            writer.Append(encoder.Encode(doc.Text), Where);
            if (options.EosTokenId is int eos) { one[0] = eos; writer.Append(one, Where); }
            writer.AddRecord(start, checked((int)(writer.TokenCount - start)), 0);
        }
        writer.Commit();
    }
}

/// <summary>Splits dialogues into SFT pairs and builds (or reuses) their token cache.</summary>
public static class SftCache
{
    /// <summary>
    /// A dialogue with n assistant messages becomes n pairs; pair k's history is every message before the k-th
    /// answer, so it contains the earlier answers.
    /// </summary>
    public static IEnumerable<SftPair> Split(Dialogue dialogue)
    {
        var messages = dialogue.Messages;
        for (int i = 0; i < messages.Count; i++)
            if (messages[i].Role == "assistant")
                yield return new SftPair(messages.Take(i).ToArray(), messages[i].Content);
    }

    /// <summary>
    /// Tokenises one pair. Prompt = the rendered history with the generation prompt (earlier answers carry their
    /// end-of-turn, as the renderer writes them). Response = the trimmed answer's tokens, end-of-turn, EOS — the
    /// template trims content too, so the response matches what the chat format would contain.
    /// </summary>
    public static (int[] Prompt, int[] Response) Encode(SftPair pair, ITextEncoder encoder, ChatRenderer render,
        SftCacheOptions options)
    {
        int[] prompt = encoder.Encode(render(pair.History, addGenerationPrompt: true));
        int[] answer = encoder.Encode(pair.Answer.Trim());
        var response = new int[answer.Length + 2];
        answer.CopyTo(response, 0);
        response[^2] = options.EndOfTurnTokenId;
        response[^1] = options.EosTokenId;
        return (prompt, response);
    }

    /// <summary>
    /// Returns the SFT cache at <paramref name="cachePath"/> if its fingerprint (sources, tokenizer, template, ids)
    /// matches; otherwise tokenises every pair of every dialogue into it first. Record i = pair i, with its
    /// prompt length.
    /// </summary>
    public static TokenCache OpenOrBuild(IReadOnlyList<string> sources, string cachePath, ITextEncoder encoder,
        ChatRenderer render, SftCacheOptions options, IProgress<DataProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        string fingerprint = ComputeFingerprint(sources, encoder, options, cancellationToken);
        if (TokenCache.ReadFingerprint(cachePath) != fingerprint)
        {
            using var writer = new TokenCacheWriter(cachePath, TokenCacheKind.Sft, encoder.VocabSize, fingerprint);
            foreach (var dialogue in CorpusReader.ReadDialogues(sources, progress, cancellationToken))
            {
                string Where() => $"{dialogue.Path}:{dialogue.Line}";
                foreach (var pair in Split(dialogue))
                {
                    var (prompt, response) = Encode(pair, encoder, render, options);
                    long start = writer.TokenCount;
                    writer.Append(prompt, Where);
                    writer.Append(response, Where);
                    writer.AddRecord(start, prompt.Length + response.Length, prompt.Length);
                }
            }
            writer.Commit();
        }
        var cache = TokenCache.Open(cachePath);
        if (cache.Kind != TokenCacheKind.Sft)
        {
            cache.Dispose();
            throw new InvalidDataException($"{cachePath} is a pre-training cache, not an SFT cache.");
        }
        return cache;
    }

    /// <summary>The fingerprint an SFT cache of these sources, tokenizer and options must carry.</summary>
    public static string ComputeFingerprint(IReadOnlyList<string> sources, ITextEncoder encoder, SftCacheOptions options,
        CancellationToken cancellationToken = default) =>
        Fingerprints.Compute(sources,
            $"sft|{encoder.Identity}|{encoder.VocabSize}|{options.TemplateIdentity}|{options.EndOfTurnTokenId}|{options.EosTokenId}",
            cancellationToken);
}

/// <summary>SHA-256 over a description and the bytes of every source file.</summary>
internal static class Fingerprints
{
    public static string Compute(IReadOnlyList<string> sources, string description, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes($"llada-token-cache-v{TokenCache.Version}|{description}\n"));
        var buffer = new byte[1 << 20];
        foreach (var file in CorpusReader.ExpandSources(sources))
        {
            // The file name (not its directory) is hashed so a moved data folder keeps its cache.
            hash.AppendData(Encoding.UTF8.GetBytes($"{Path.GetFileName(file)}|{new FileInfo(file).Length}\n"));
            AppendFile(hash, file, buffer, ct);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Feeds the contents of <paramref name="path"/> to <paramref name="hash"/>, streamed through <paramref name="buffer"/>.</summary>
    public static void AppendFile(IncrementalHash hash, string path, byte[] buffer, CancellationToken ct)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        int n;
        while ((n = fs.Read(buffer)) > 0)
        {
            ct.ThrowIfCancellationRequested();
            hash.AppendData(buffer, 0, n);
        }
    }
}
