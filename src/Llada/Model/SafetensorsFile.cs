using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text.Json;
using Llada.Numerics;

namespace Llada.Model;

/// <summary>Where one tensor of a safetensors file lives and what it holds.</summary>
/// <param name="Name">Tensor name, e.g. model.transformer.wte.weight.</param>
/// <param name="DTypeName">Safetensors dtype name (F32, BF16, F16, I64, ...).</param>
/// <param name="Shape">Dimensions, outermost first; empty for a scalar.</param>
/// <param name="Offset">Byte offset of the first element from the start of the file.</param>
/// <param name="ByteLength">Bytes the tensor occupies (element count times element size).</param>
public sealed record TensorInfo(string Name, string DTypeName, IReadOnlyList<long> Shape, long Offset, long ByteLength)
{
    /// <summary>Number of elements (product of <see cref="Shape"/>; 1 for a scalar).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Shape) n *= d;
            return n;
        }
    }

    /// <summary>The shape as text, e.g. [4096, 4096].</summary>
    public string ShapeText => FormatShape(Shape);

    internal static string FormatShape(IReadOnlyList<long> shape) => "[" + string.Join(", ", shape) + "]";
}

/// <summary>
/// A read-only, memory-mapped safetensors file: an 8-byte little-endian header length, a UTF-8 JSON header
/// mapping tensor names to {dtype, shape, data_offsets}, then the tensor bytes. Only the header is read into
/// managed memory; tensor views point into the mapping and stay valid until <see cref="Dispose"/>.
/// Every structural defect is reported as a <see cref="CheckpointFormatException"/> naming the file and tensor.
/// </summary>
public sealed unsafe partial class SafetensorsFile : IDisposable
{
    /// <summary>Largest header accepted; real headers are kilobytes, this only stops absurd allocations.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;
    private readonly Dictionary<string, TensorInfo> _byName;

    private SafetensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePointer,
        long length, List<TensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        _map = map;
        _view = view;
        _base = basePointer;
        FileLength = length;
        Tensors = tensors;
        Metadata = metadata;
        _byName = new Dictionary<string, TensorInfo>(tensors.Count, StringComparer.Ordinal);
        foreach (var t in tensors) _byName.Add(t.Name, t);
    }

    /// <summary>Full path of the file.</summary>
    public string Path { get; }

    /// <summary>Size of the file in bytes.</summary>
    public long FileLength { get; }

    /// <summary>Tensors in file order (ascending offset).</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    /// <summary>The optional "__metadata__" string map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>
    /// Maps <paramref name="path"/> read-only and validates its header: offsets inside the file, tensors contiguous
    /// and non-overlapping, byte counts matching dtype and shape, known dtypes, unique names.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file is not a valid safetensors file.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static SafetensorsFile Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        long length = stream.Length;
        if (length < 8)
        {
            stream.Dispose();
            throw new CheckpointFormatException(path, null,
                $"file is {length} bytes; a safetensors file starts with an 8-byte header length");
        }

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* basePointer = null;
        try
        {
            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read,
                HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
            basePointer += view.PointerOffset;
            var (tensors, metadata) = ParseHeader(path, basePointer, length);
            return new SafetensorsFile(path, map, view, basePointer, length, tensors, metadata);
        }
        catch
        {
            if (basePointer != null) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            if (map is null) stream.Dispose();
            map?.Dispose();
            throw;
        }
    }

    private static (List<TensorInfo>, Dictionary<string, string>) ParseHeader(string path, byte* file, long length)
    {
        ulong headerLength = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(file, 8));
        if (headerLength > MaxHeaderBytes)
            throw new CheckpointFormatException(path, null,
                $"header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit (corrupt or not a safetensors file)");
        if ((long)headerLength > length - 8)
            throw new CheckpointFormatException(path, null,
                $"header length {headerLength} runs past the end of the file ({length} bytes; truncated?)");
        if (headerLength < 2)
            throw new CheckpointFormatException(path, null, $"header length {headerLength} is too small for a JSON object");

        long dataStart = 8 + (long)headerLength;
        long dataLength = length - dataStart;
        var header = new ReadOnlySpan<byte>(file + 8, (int)headerLength).ToArray();
        // JsonDocument validates UTF-8 only when a string is decoded; check up front so that every defect is ours to report.
        if (!System.Text.Unicode.Utf8.IsValid(header))
            throw new CheckpointFormatException(path, null, "header is not valid UTF-8");

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(path, null, $"header is not valid UTF-8 JSON: {e.Message}", e);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(path, null,
                    $"header must be a JSON object, found {doc.RootElement.ValueKind}");

            var tensors = new List<TensorInfo>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                string name = property.Name;
                if (name == MetadataKey)
                {
                    if (sawMetadata) throw new CheckpointFormatException(path, MetadataKey, "appears twice in the header");
                    sawMetadata = true;
                    ParseMetadata(path, property.Value, metadata);
                    continue;
                }
                if (!seen.Add(name))
                    throw new CheckpointFormatException(path, name, "tensor name appears twice in the header");
                tensors.Add(ParseTensor(path, name, property.Value, dataStart, dataLength));
            }

            CheckLayout(path, tensors, dataStart, dataLength);
            return (tensors, metadata);
        }
    }

    private static void ParseMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind == JsonValueKind.Null) return;
        if (value.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException(path, MetadataKey, $"must be an object of strings, found {value.ValueKind}");
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new CheckpointFormatException(path, MetadataKey,
                    $"value of '{entry.Name}' must be a string, found {entry.Value.ValueKind}");
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                throw new CheckpointFormatException(path, MetadataKey, $"key '{entry.Name}' appears twice");
        }
    }

    private static TensorInfo ParseTensor(string path, string name, JsonElement entry, long dataStart, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException(path, name,
                $"header entry must be an object {{dtype, shape, data_offsets}}, found {entry.ValueKind}");

        string? dtype = null;
        JsonElement? shapeElement = null, offsetsElement = null;
        foreach (var field in entry.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype":
                    if (dtype is not null) throw new CheckpointFormatException(path, name, "'dtype' appears twice");
                    if (field.Value.ValueKind != JsonValueKind.String)
                        throw new CheckpointFormatException(path, name, $"'dtype' must be a string, found {field.Value.ValueKind}");
                    dtype = field.Value.GetString()!;
                    break;
                case "shape":
                    if (shapeElement is not null) throw new CheckpointFormatException(path, name, "'shape' appears twice");
                    shapeElement = field.Value;
                    break;
                case "data_offsets":
                    if (offsetsElement is not null) throw new CheckpointFormatException(path, name, "'data_offsets' appears twice");
                    offsetsElement = field.Value;
                    break;
            }
        }

        if (dtype is null) throw new CheckpointFormatException(path, name, "missing 'dtype'");
        if (shapeElement is null) throw new CheckpointFormatException(path, name, "missing 'shape'");
        if (offsetsElement is null) throw new CheckpointFormatException(path, name, "missing 'data_offsets'");
        if (!SafetensorsDTypes.TryGetElementSize(dtype, out int elementSize))
            throw new CheckpointFormatException(path, name,
                $"unknown dtype '{dtype}' (expected F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U64, U32, U16, U8 or BOOL)");

        var shape = ReadNonNegativeIntegers(path, name, "shape", shapeElement.Value, -1);
        var offsets = ReadNonNegativeIntegers(path, name, "data_offsets", offsetsElement.Value, 2);
        long begin = offsets[0], end = offsets[1];
        if (end < begin)
            throw new CheckpointFormatException(path, name, $"data_offsets [{begin}, {end}] end before they begin");
        if (end > dataLength)
            throw new CheckpointFormatException(path, name,
                $"data_offsets [{begin}, {end}] run past the data section ({dataLength} bytes after the header; truncated?)");

        long bytes = elementSize;
        foreach (long d in shape)
        {
            // Overflow or a product beyond the file is a corrupt shape either way.
            if (d != 0 && bytes > long.MaxValue / d)
                throw new CheckpointFormatException(path, name, $"shape {TensorInfo.FormatShape(shape)} overflows 64-bit byte counts");
            bytes *= d;
        }
        if (bytes != end - begin)
            throw new CheckpointFormatException(path, name,
                $"shape {TensorInfo.FormatShape(shape)} of {dtype} needs {bytes} bytes but data_offsets [{begin}, {end}] hold {end - begin}");

        return new TensorInfo(name, dtype, shape, dataStart + begin, end - begin);
    }

    private static long[] ReadNonNegativeIntegers(string path, string name, string field, JsonElement value, int expectedCount)
    {
        if (value.ValueKind != JsonValueKind.Array)
            throw new CheckpointFormatException(path, name, $"'{field}' must be an array of integers, found {value.ValueKind}");
        int count = value.GetArrayLength();
        if (expectedCount >= 0 && count != expectedCount)
            throw new CheckpointFormatException(path, name, $"'{field}' must have {expectedCount} entries, found {count}");
        if (count > 64)
            throw new CheckpointFormatException(path, name, $"'{field}' has {count} dimensions; at most 64 are accepted");
        var result = new long[count];
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v) || v < 0)
                throw new CheckpointFormatException(path, name,
                    $"'{field}'[{i}] must be a non-negative 64-bit integer, found {item.GetRawText()}");
            result[i++] = v;
        }
        return result;
    }

    // Like the reference implementation: tensors tile the data section exactly, with no overlap, gap or tail.
    private static void CheckLayout(string path, List<TensorInfo> tensors, long dataStart, long dataLength)
    {
        tensors.Sort((a, b) => a.Offset != b.Offset
            ? a.Offset.CompareTo(b.Offset)
            : (a.Offset + a.ByteLength).CompareTo(b.Offset + b.ByteLength));
        long cursor = 0;
        TensorInfo? previous = null;
        foreach (var t in tensors)
        {
            long begin = t.Offset - dataStart;
            if (begin < cursor)
                throw new CheckpointFormatException(path, t.Name,
                    $"data_offsets [{begin}, {begin + t.ByteLength}] overlap tensor '{previous!.Name}' (which ends at {cursor})");
            if (begin > cursor)
                throw new CheckpointFormatException(path, t.Name,
                    $"data_offsets begin at {begin} but the previous tensor ends at {cursor}: the data section has a gap");
            cursor = begin + t.ByteLength;
            previous = t;
        }
        if (cursor != dataLength)
            throw new CheckpointFormatException(path, null,
                $"tensors cover {cursor} bytes of a {dataLength}-byte data section: {dataLength - cursor} unaccounted bytes at the end");
    }

    /// <summary>True when the file holds a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>Looks up a tensor without throwing.</summary>
    public bool TryGetTensor(string name, out TensorInfo info) => _byName.TryGetValue(name, out info!);

    /// <summary>The tensor named <paramref name="name"/>.</summary>
    /// <exception cref="CheckpointFormatException">No such tensor.</exception>
    public TensorInfo GetTensor(string name) =>
        _byName.TryGetValue(name, out var info)
            ? info
            : throw new CheckpointFormatException(Path, name, "no tensor of this name in the file");

    /// <summary>Pointer to the first byte of a tensor; valid until <see cref="Dispose"/>. May be unaligned.</summary>
    public byte* GetPointer(string name) => GetPointer(GetTensor(name));

    /// <summary>Pointer to the first byte of <paramref name="info"/> (which must come from this file).</summary>
    public byte* GetPointer(TensorInfo info)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        return _base + info.Offset;
    }

    /// <summary>The raw bytes of a tensor (tensors of 2 GiB or more need <see cref="GetPointer(string)"/>).</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var info = GetTensor(name);
        if (info.ByteLength > int.MaxValue)
            throw new CheckpointFormatException(Path, name,
                $"{info.ByteLength} bytes do not fit one span; use GetPointer");
        return new ReadOnlySpan<byte>(GetPointer(info), (int)info.ByteLength);
    }

    /// <summary>
    /// A <see cref="WeightMatrix"/> view of a 2-D tensor ([rows, cols]) or of a 1-D vector (as 1 x n).
    /// </summary>
    /// <exception cref="CheckpointFormatException">Missing tensor, other rank, or a dtype that is not F32/BF16/F16.</exception>
    public WeightMatrix GetMatrix(string name)
    {
        var info = GetTensor(name);
        var dtype = WeightDType(info);
        long rows, cols;
        switch (info.Shape.Count)
        {
            case 1: rows = 1; cols = info.Shape[0]; break;
            case 2: rows = info.Shape[0]; cols = info.Shape[1]; break;
            default:
                throw new CheckpointFormatException(Path, name,
                    $"shape {info.ShapeText} is not a matrix or vector (expected 1 or 2 dimensions)");
        }
        if (rows > int.MaxValue || cols > int.MaxValue)
            throw new CheckpointFormatException(Path, name, $"shape {info.ShapeText} has a dimension beyond {int.MaxValue}");
        return new WeightMatrix(GetPointer(info), (int)rows, (int)cols, dtype);
    }

    /// <summary>The weight dtype of a tensor; throws for dtypes other than F32 / BF16 / F16.</summary>
    public DType WeightDType(TensorInfo info) =>
        SafetensorsDTypes.TryToWeightDType(info.DTypeName, out var dtype)
            ? dtype
            : throw new CheckpointFormatException(Path, info.Name,
                $"dtype {info.DTypeName} cannot be used as a weight (expected F32, BF16 or F16)");

    /// <summary>Copies a F32/BF16/F16 tensor into a new float32 array (for small tensors, tests and tools).</summary>
    public float[] ReadSingles(string name)
    {
        var info = GetTensor(name);
        var dtype = WeightDType(info);
        long count = info.ElementCount;
        if (count > Array.MaxLength)
            throw new CheckpointFormatException(Path, name, $"{count} elements do not fit one array");
        var result = new float[count];
        byte* p = GetPointer(info);
        for (long i = 0; i < count; i++)
        {
            result[i] = dtype switch
            {
                DType.F32 => System.Runtime.CompilerServices.Unsafe.ReadUnaligned<float>(p + 4 * i),
                DType.BF16 => DTypes.BF16ToSingle(System.Runtime.CompilerServices.Unsafe.ReadUnaligned<ushort>(p + 2 * i)),
                _ => (float)System.Runtime.CompilerServices.Unsafe.ReadUnaligned<Half>(p + 2 * i),
            };
        }
        return result;
    }

    /// <summary>Whether [start, start + bytes) lies inside this file's mapping.</summary>
    internal bool Contains(byte* start, long bytes) =>
        _base != null && start >= _base && bytes >= 0 && start - _base <= FileLength - bytes;

    /// <summary>
    /// Drops the pages lying wholly inside [start, start + bytes) of this file's mapping from the process's resident
    /// set (madvise MADV_DONTNEED on Linux and macOS; elsewhere nothing happens). The mapping is read-only, so
    /// nothing is lost: a later read faults the bytes back in from the page cache or the file. For weights that were
    /// copied elsewhere (<see cref="PackedWeights"/>), so they stop counting twice.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside this file's mapping.</exception>
    internal void ReleasePages(byte* start, long bytes)
    {
        if (!Contains(start, bytes))
            throw new ArgumentOutOfRangeException(nameof(start), $"the range is not inside the mapping of {Path}");
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        long page = Environment.SystemPageSize;
        long first = ((long)start + page - 1) & -page, end = ((long)start + bytes) & -page;
        if (end > first) madvise((void*)first, (nuint)(end - first), MadviseDontNeed);
    }

    private const int MadviseDontNeed = 4; // the same value on Linux and macOS

    [LibraryImport("libc")]
    private static partial int madvise(void* address, nuint length, int advice);

    /// <summary>Unmaps the file; every pointer, span and <see cref="WeightMatrix"/> taken from it becomes invalid.</summary>
    public void Dispose()
    {
        if (_base == null) return;
        _base = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
