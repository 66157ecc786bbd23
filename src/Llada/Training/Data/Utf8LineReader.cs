using System.Buffers;
using System.Text.Unicode;

namespace Llada.Training.Data;

/// <summary>
/// Streams a file line by line as raw UTF-8 bytes, tracking the line number and bytes consumed. Lines may end in
/// "\n" or "\r\n"; a leading UTF-8 byte-order mark is skipped. Decoding is strict: invalid UTF-8 is an error that
/// names the file, line and byte column, never silently replaced.
/// </summary>
internal sealed class Utf8LineReader : IDisposable
{
    private readonly FileStream _stream;
    private byte[] _buffer = new byte[1 << 16];
    private char[] _chars = new char[1 << 16];
    private int _start;  // first unconsumed byte in _buffer
    private int _end;    // one past the last valid byte in _buffer
    private bool _eof;
    private bool _first = true;

    public Utf8LineReader(string path)
    {
        Path = path;
        try
        {
            _stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new DataFormatException(path, 0, "file not found", e);
        }
        Length = _stream.Length;
    }

    public string Path { get; }

    /// <summary>File size in bytes.</summary>
    public long Length { get; }

    /// <summary>1-based number of the line last returned (0 before the first).</summary>
    public long LineNumber { get; private set; }

    /// <summary>Bytes of the file consumed so far (through the last returned line's terminator).</summary>
    public long BytesConsumed { get; private set; }

    /// <summary>Reads the next line without its terminator; false at end of file. The span is valid until the next call.</summary>
    public bool TryReadLine(out ReadOnlySpan<byte> line)
    {
        while (true)
        {
            int nl = _buffer.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
            if (nl >= 0)
            {
                line = Take(nl, 1);
                return true;
            }
            if (_eof)
            {
                if (_end == _start)
                {
                    line = default;
                    return false;
                }
                line = Take(_end - _start, 0);
                return true;
            }
            Fill();
        }
    }

    private ReadOnlySpan<byte> Take(int length, int terminator)
    {
        var span = _buffer.AsSpan(_start, length);
        _start += length + terminator;
        BytesConsumed += length + terminator;
        LineNumber++;
        if (span.Length > 0 && span[^1] == (byte)'\r') span = span[..^1];
        if (_first)
        {
            _first = false;
            if (span.StartsWith("\uFEFF"u8)) span = span[3..];
        }
        return span;
    }

    private void Fill()
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length) Array.Resize(ref _buffer, _buffer.Length * 2); // a line longer than the buffer
        int n = _stream.Read(_buffer, _end, _buffer.Length - _end);
        if (n == 0) _eof = true;
        _end += n;
    }

    /// <summary>Decodes a line returned by <see cref="TryReadLine"/>, failing with file:line:column on invalid UTF-8.</summary>
    public string Decode(ReadOnlySpan<byte> line)
    {
        if (_chars.Length < line.Length) _chars = new char[Math.Max(line.Length, _chars.Length * 2)];
        var status = Utf8.ToUtf16(line, _chars, out int read, out int written, replaceInvalidSequences: false);
        if (status != OperationStatus.Done)
            throw InvalidUtf8(line, read);
        return new string(_chars, 0, written);
    }

    /// <summary>Throws if <paramref name="line"/> is not valid UTF-8.</summary>
    public void Validate(ReadOnlySpan<byte> line)
    {
        if (Utf8.IsValid(line)) return;
        Utf8.ToUtf16(line, _chars.Length >= line.Length ? _chars : new char[line.Length], out int read, out _,
            replaceInvalidSequences: false);
        throw InvalidUtf8(line, read);
    }

    private DataFormatException InvalidUtf8(ReadOnlySpan<byte> line, int offset)
    {
        var bad = line.Slice(offset, Math.Min(4, line.Length - offset));
        return new DataFormatException(Path, LineNumber,
            $"invalid UTF-8 at byte column {offset + 1} (bytes {Convert.ToHexString(bad)}); the file must be UTF-8 encoded");
    }

    public void Dispose() => _stream.Dispose();
}
