using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;

namespace Llada.Training.Data;

/// <summary>What a token cache holds.</summary>
public enum TokenCacheKind
{
    /// <summary>A pre-training stream: documents joined with separators; records are the documents.</summary>
    Pretrain = 1,

    /// <summary>SFT pairs: each record is prompt tokens followed by response tokens.</summary>
    Sft = 2,
}

/// <summary>One record of a cache: a slice of the token stream, the first <see cref="PromptLength"/> tokens being the prompt.</summary>
/// <param name="Start">Index of the first token in the stream.</param>
/// <param name="Length">Number of tokens.</param>
/// <param name="PromptLength">Prompt tokens at the start (0 for pre-training documents).</param>
public readonly record struct TokenRecord(long Start, int Length, int PromptLength)
{
    /// <summary>Tokens after the prompt.</summary>
    public int ResponseLength => Length - PromptLength;
}

/// <summary>
/// A tokenised dataset in a memory-mapped binary file, written once and reused across runs.
/// <para>Layout (little-endian): a 128-byte header — magic "LLADATOK", u32 version, u32 kind, u32 bytes per token
/// (2 when the vocabulary fits in 16 bits, else 4), i32 vocab size, i32 largest token id present (-1 if none),
/// u32 reserved, i64 token count, i64 record count, i64 record table offset, 32-byte SHA-256 fingerprint of the
/// sources, tokenizer and options — then the tokens, then the record table (i64 start, i32 length, i32 prompt
/// length per record).</para>
/// </summary>
public sealed unsafe class TokenCache : IDisposable
{
    internal const int HeaderSize = 128;
    internal const int RecordSize = 16;
    internal const uint Version = 1;
    internal static ReadOnlySpan<byte> Magic => "LLADATOK"u8;

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;
    private readonly byte* _tokens;
    private readonly byte* _records;

    private TokenCache(string path, MemoryMappedFile file, MemoryMappedViewAccessor view, in Header header)
    {
        Path = path;
        _file = file;
        _view = view;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref _base);
        _base += view.PointerOffset;
        _tokens = _base + HeaderSize;
        _records = _base + header.RecordTableOffset;
        Kind = header.Kind;
        BytesPerToken = header.BytesPerToken;
        VocabSize = header.VocabSize;
        MaxTokenId = header.MaxTokenId;
        Count = header.TokenCount;
        RecordCount = header.RecordCount;
        Fingerprint = header.Fingerprint;
    }

    /// <summary>The cache file.</summary>
    public string Path { get; }

    /// <summary>Pre-training stream or SFT pairs.</summary>
    public TokenCacheKind Kind { get; }

    /// <summary>2 (u16 ids) or 4 (u32 ids).</summary>
    public int BytesPerToken { get; }

    /// <summary>Vocabulary size of the tokenizer that built the cache.</summary>
    public int VocabSize { get; }

    /// <summary>Largest token id in the cache, -1 when it is empty.</summary>
    public int MaxTokenId { get; }

    /// <summary>Number of tokens in the stream.</summary>
    public long Count { get; }

    /// <summary>Number of records (documents or SFT pairs).</summary>
    public long RecordCount { get; }

    /// <summary>Hex SHA-256 of sources, tokenizer identity and options at build time.</summary>
    public string Fingerprint { get; }

    /// <summary>Token at <paramref name="index"/> of the stream.</summary>
    public int this[long index]
    {
        get
        {
            ObjectDisposedException.ThrowIf(_base == null, this);
            if ((ulong)index >= (ulong)Count) throw new ArgumentOutOfRangeException(nameof(index), index, $"Token index outside [0, {Count}).");
            return BytesPerToken == 2 ? ((ushort*)_tokens)[index] : (int)((uint*)_tokens)[index];
        }
    }

    /// <summary>Copies <c>destination.Length</c> tokens starting at <paramref name="start"/> into <paramref name="destination"/>.</summary>
    public void CopyTokens(long start, Span<int> destination)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        if (start < 0 || start > Count - destination.Length)
            throw new ArgumentOutOfRangeException(nameof(start), start,
                $"Tokens [{start}, {start + destination.Length}) are outside the cache's [0, {Count}).");
        if (BytesPerToken == 2)
        {
            var src = new ReadOnlySpan<ushort>((ushort*)_tokens + start, destination.Length);
            for (int i = 0; i < src.Length; i++) destination[i] = src[i];
        }
        else
        {
            new ReadOnlySpan<int>((int*)_tokens + start, destination.Length).CopyTo(destination);
        }
    }

    /// <summary>Record <paramref name="index"/> (document or SFT pair).</summary>
    public TokenRecord GetRecord(long index)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        if ((ulong)index >= (ulong)RecordCount) throw new ArgumentOutOfRangeException(nameof(index), index, $"Record index outside [0, {RecordCount}).");
        var p = new ReadOnlySpan<byte>(_records + index * RecordSize, RecordSize);
        return new TokenRecord(BinaryPrimitives.ReadInt64LittleEndian(p),
            BinaryPrimitives.ReadInt32LittleEndian(p[8..]), BinaryPrimitives.ReadInt32LittleEndian(p[12..]));
    }

    /// <summary>
    /// Fails before training starts when the cache holds ids the model cannot embed (a tokenizer/model mismatch).
    /// </summary>
    public void EnsureFitsVocabulary(int modelVocabSize)
    {
        if (MaxTokenId >= modelVocabSize)
            throw new InvalidDataException(
                $"Token cache {Path} contains token id {MaxTokenId}, but the model's vocabulary has only {modelVocabSize} " +
                $"entries (ids 0..{modelVocabSize - 1}); the cache was built with a tokenizer of {VocabSize} ids. " +
                "Use the model's own tokenizer or a model with a larger vocabulary.");
    }

    /// <summary>Opens a cache file; throws <see cref="InvalidDataException"/> if it is not a complete cache.</summary>
    public static TokenCache Open(string path)
    {
        var header = ReadHeader(path) ?? throw new InvalidDataException(
            $"{path} is not a complete Llada token cache (bad magic, version or size); delete it to rebuild.");
        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            var view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return new TokenCache(path, file, view, header);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Reads the fingerprint of a cache without mapping it; null if the file is missing or not a complete cache.</summary>
    public static string? ReadFingerprint(string path) => ReadHeader(path)?.Fingerprint;

    internal readonly record struct Header(TokenCacheKind Kind, int BytesPerToken, int VocabSize, int MaxTokenId,
        long TokenCount, long RecordCount, long RecordTableOffset, string Fingerprint);

    private static Header? ReadHeader(string path)
    {
        if (!File.Exists(path)) return null;
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        Span<byte> h = stackalloc byte[HeaderSize];
        if (fs.Length < HeaderSize || fs.ReadAtLeast(h, HeaderSize, throwOnEndOfStream: false) < HeaderSize) return null;
        if (!h[..8].SequenceEqual(Magic) || BinaryPrimitives.ReadUInt32LittleEndian(h[8..]) != Version) return null;
        var header = new Header(
            (TokenCacheKind)BinaryPrimitives.ReadUInt32LittleEndian(h[12..]),
            (int)BinaryPrimitives.ReadUInt32LittleEndian(h[16..]),
            BinaryPrimitives.ReadInt32LittleEndian(h[20..]),
            BinaryPrimitives.ReadInt32LittleEndian(h[24..]),
            BinaryPrimitives.ReadInt64LittleEndian(h[32..]),
            BinaryPrimitives.ReadInt64LittleEndian(h[40..]),
            BinaryPrimitives.ReadInt64LittleEndian(h[48..]),
            Convert.ToHexStringLower(h.Slice(56, 32)));
        bool sane = header.BytesPerToken is 2 or 4 && header.TokenCount >= 0 && header.RecordCount >= 0
            && header.RecordTableOffset >= HeaderSize + header.TokenCount * header.BytesPerToken
            && fs.Length == header.RecordTableOffset + header.RecordCount * RecordSize;
        return sane ? header : null;
    }

    internal static void WriteHeader(Span<byte> h, in Header header)
    {
        h.Clear();
        Magic.CopyTo(h);
        BinaryPrimitives.WriteUInt32LittleEndian(h[8..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], (uint)header.Kind);
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], (uint)header.BytesPerToken);
        BinaryPrimitives.WriteInt32LittleEndian(h[20..], header.VocabSize);
        BinaryPrimitives.WriteInt32LittleEndian(h[24..], header.MaxTokenId);
        BinaryPrimitives.WriteInt64LittleEndian(h[32..], header.TokenCount);
        BinaryPrimitives.WriteInt64LittleEndian(h[40..], header.RecordCount);
        BinaryPrimitives.WriteInt64LittleEndian(h[48..], header.RecordTableOffset);
        Convert.FromHexString(header.Fingerprint).CopyTo(h[56..]);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_base == null) return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _base = null;
        _view.Dispose();
        _file.Dispose();
    }
}
