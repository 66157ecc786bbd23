using System.Text.Json;

namespace Llada.Model;

/// <summary>
/// Writes safetensors files the way the reference implementation does: compact JSON header (optional
/// "__metadata__" first) padded with spaces to a multiple of 8 bytes, data ordered by descending dtype
/// alignment (the reference's dtype order) then by name, so every tensor starts aligned to its element size. Files appear atomically (temp + rename).
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>Name of a single-file checkpoint.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>Name of the shard index of a sharded checkpoint.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>Metadata PyTorch-side savers add; transformers expects it when loading.</summary>
    public static IReadOnlyDictionary<string, string> PyTorchMetadata { get; } =
        new Dictionary<string, string> { ["format"] = "pt" };

    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/>, replacing it atomically; <paramref name="progress"/>
    /// receives each tensor just before its data is written.
    /// </summary>
    /// <exception cref="ArgumentException">Two tensors share a name, or a name is reserved.</exception>
    public static void Write(string path, IEnumerable<NamedTensor> tensors,
        IReadOnlyDictionary<string, string>? metadata = null, CancellationToken cancellationToken = default,
        IProgress<NamedTensor>? progress = null)
    {
        var ordered = tensors.ToList();
        CheckNames(ordered);
        ordered.Sort(CompareForLayout);
        byte[] header = BuildHeader(ordered, metadata);

        WriteAtomically(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var t in ordered)
            {
                cancellationToken.ThrowIfCancellationRequested();
                progress?.Report(t);
                long before = stream.Position;
                t.WriteData(stream);
                if (stream.Position - before != t.ByteLength)
                    throw new InvalidOperationException($"tensor '{t.Name}' wrote {stream.Position - before} bytes, expected {t.ByteLength}");
            }
        });
    }

    /// <summary>
    /// Writes a model's tensors into <paramref name="directory"/>: one model.safetensors when the total fits
    /// <paramref name="maxShardBytes"/>, otherwise model-0000k-of-0000n.safetensors shards (tensors kept in the given
    /// order, a new shard started whenever the next tensor would overflow the current one) plus
    /// model.safetensors.index.json. Creates the directory if needed; returns the file names written.
    /// </summary>
    public static IReadOnlyList<string> WriteModel(string directory, IReadOnlyList<NamedTensor> tensors, long maxShardBytes,
        IReadOnlyDictionary<string, string>? metadata = null, CancellationToken cancellationToken = default,
        IProgress<NamedTensor>? progress = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        CheckNames(tensors);
        Directory.CreateDirectory(directory);
        long total = tensors.Sum(t => t.ByteLength);
        if (total <= maxShardBytes)
        {
            Write(Path.Combine(directory, SingleFileName), tensors, metadata, cancellationToken, progress);
            return [SingleFileName];
        }

        var shards = new List<List<NamedTensor>>();
        long current = 0;
        foreach (var t in tensors)
        {
            if (shards.Count == 0 || (current + t.ByteLength > maxShardBytes && shards[^1].Count > 0))
            {
                shards.Add([]);
                current = 0;
            }
            shards[^1].Add(t);
            current += t.ByteLength;
        }

        var names = new List<string>();
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < shards.Count; i++)
        {
            string file = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            Write(Path.Combine(directory, file), shards[i], metadata, cancellationToken, progress);
            names.Add(file);
            foreach (var t in shards[i]) weightMap[t.Name] = file;
        }

        WriteAtomically(Path.Combine(directory, IndexFileName), stream =>
        {
            using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JsonText.Encoder });
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", total);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (var (name, file) in weightMap) json.WriteString(name, file);
            json.WriteEndObject();
            json.WriteEndObject();
            json.Flush();
            stream.WriteByte((byte)'\n');
        });
        names.Add(IndexFileName);
        return names;
    }

    /// <summary>
    /// Runs <paramref name="write"/> on a temporary file beside <paramref name="path"/>, flushes it to disk and renames
    /// it over <paramref name="path"/>, so readers see either the old file or the complete new one.
    /// </summary>
    public static void WriteAtomically(string path, Action<Stream> write)
    {
        path = Path.GetFullPath(path);
        string temp = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    private static class JsonText
    {
        // Like Python's json and serde: non-ASCII names stay readable instead of becoming \uXXXX escapes.
        public static readonly System.Text.Encodings.Web.JavaScriptEncoder Encoder =
            System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
    }

    private static void CheckNames(IReadOnlyCollection<NamedTensor> tensors)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (t.Name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved and cannot name a tensor");
            if (!seen.Add(t.Name)) throw new ArgumentException($"tensor '{t.Name}' is given twice");
        }
    }

    // Larger alignment first keeps every tensor aligned to its element size (the header is padded to 8);
    // the order is the reference writer's, so equal inputs give byte-identical files.
    private static int CompareForLayout(NamedTensor a, NamedTensor b)
    {
        int ra = SafetensorsDTypes.AlignmentRank(a.DTypeName), rb = SafetensorsDTypes.AlignmentRank(b.DTypeName);
        return ra != rb ? rb.CompareTo(ra) : string.CompareOrdinal(a.Name, b.Name);
    }

    private static byte[] BuildHeader(List<NamedTensor> ordered, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JsonText.Encoder }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal)) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in ordered)
            {
                json.WriteStartObject(t.Name);
                json.WriteString("dtype", t.DTypeName);
                json.WriteStartArray("shape");
                foreach (long d in t.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + t.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += t.ByteLength;
            }
            json.WriteEndObject();
        }
        int padding = (int)((8 - buffer.Length % 8) % 8);
        for (int i = 0; i < padding; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }
}
