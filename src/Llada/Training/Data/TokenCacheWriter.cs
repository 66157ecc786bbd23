using System.Buffers.Binary;

namespace Llada.Training.Data;

/// <summary>
/// Writes a <see cref="TokenCache"/> file atomically: everything goes to a temporary file next to the target,
/// which is renamed over the target only when complete, so an interrupted build never leaves a cache that looks
/// valid. Token ids are checked against the tokenizer's vocabulary as they are written.
/// </summary>
internal sealed class TokenCacheWriter : IDisposable
{
    private readonly string _path;
    private readonly string _tempTokens;
    private readonly string _tempRecords;
    private readonly FileStream _tokens;
    private readonly FileStream _records;
    private readonly TokenCacheKind _kind;
    private readonly int _vocabSize;
    private readonly int _bytesPerToken;
    private readonly string _fingerprint;
    private readonly byte[] _scratch = new byte[1 << 16];
    private long _count;
    private long _recordCount;
    private int _maxId = -1;
    private bool _committed;

    public TokenCacheWriter(string path, TokenCacheKind kind, int vocabSize, string fingerprint)
    {
        _path = Path.GetFullPath(path);
        _kind = kind;
        _vocabSize = vocabSize;
        _bytesPerToken = vocabSize <= 65536 ? 2 : 4; // ids 0..65535 fit in u16
        _fingerprint = fingerprint;
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        string stem = $"{_path}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        _tempTokens = stem;
        _tempRecords = stem + ".records";
        _tokens = new FileStream(_tempTokens, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16);
        _records = new FileStream(_tempRecords, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16,
            FileOptions.DeleteOnClose);
        _tokens.Write(new byte[TokenCache.HeaderSize]);
    }

    public long TokenCount => _count;

    public long RecordCount => _recordCount;

    /// <summary>Appends tokens to the stream; <paramref name="where"/> names the source for an out-of-range id.</summary>
    public void Append(ReadOnlySpan<int> ids, Func<string> where)
    {
        int per = _bytesPerToken;
        int chunk = _scratch.Length / per;
        for (int offset = 0; offset < ids.Length; offset += chunk)
        {
            var part = ids.Slice(offset, Math.Min(chunk, ids.Length - offset));
            for (int i = 0; i < part.Length; i++)
            {
                int id = part[i];
                if ((uint)id >= (uint)_vocabSize)
                    throw new InvalidDataException(
                        $"{where()}: the tokenizer produced id {id}, outside its vocabulary [0, {_vocabSize}).");
                if (id > _maxId) _maxId = id;
                if (per == 2) BinaryPrimitives.WriteUInt16LittleEndian(_scratch.AsSpan(2 * i), (ushort)id);
                else BinaryPrimitives.WriteInt32LittleEndian(_scratch.AsSpan(4 * i), id);
            }
            _tokens.Write(_scratch, 0, part.Length * per);
        }
        _count += ids.Length;
    }

    /// <summary>Adds a record covering tokens [start, start + length).</summary>
    public void AddRecord(long start, int length, int promptLength)
    {
        Span<byte> r = stackalloc byte[TokenCache.RecordSize];
        BinaryPrimitives.WriteInt64LittleEndian(r, start);
        BinaryPrimitives.WriteInt32LittleEndian(r[8..], length);
        BinaryPrimitives.WriteInt32LittleEndian(r[12..], promptLength);
        _records.Write(r);
        _recordCount++;
    }

    /// <summary>Appends the record table, writes the header, flushes to disk and renames into place.</summary>
    public void Commit()
    {
        long tableOffset = TokenCache.HeaderSize + _count * _bytesPerToken;
        long aligned = (tableOffset + 7) & ~7L;
        _tokens.Write(new byte[aligned - tableOffset]);
        _records.Flush();
        _records.Position = 0;
        _records.CopyTo(_tokens);
        Span<byte> header = stackalloc byte[TokenCache.HeaderSize];
        TokenCache.WriteHeader(header, new TokenCache.Header(_kind, _bytesPerToken, _vocabSize, _maxId, _count,
            _recordCount, aligned, _fingerprint));
        _tokens.Position = 0;
        _tokens.Write(header);
        _tokens.Flush(flushToDisk: true);
        _tokens.Dispose();
        File.Move(_tempTokens, _path, overwrite: true);
        _committed = true;
    }

    public void Dispose()
    {
        _tokens.Dispose();
        _records.Dispose();
        if (!_committed) File.Delete(_tempTokens);
    }
}
