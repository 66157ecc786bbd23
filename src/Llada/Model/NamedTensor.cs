using System.Runtime.InteropServices;
using Llada.Numerics;

namespace Llada.Model;

/// <summary>
/// A tensor to be written to a safetensors file: its name, dtype, shape and a source of bytes. Float32 sources
/// are converted to the target dtype while writing, so no second copy of the model is built in memory.
/// </summary>
public sealed class NamedTensor
{
    private readonly Action<Stream> _write;

    private NamedTensor(string name, string dtypeName, long[] shape, long byteLength, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        DTypeName = dtypeName;
        Shape = shape;
        ByteLength = byteLength;
        _write = write;
    }

    /// <summary>Tensor name.</summary>
    public string Name { get; }

    /// <summary>Safetensors dtype name written to the header.</summary>
    public string DTypeName { get; }

    /// <summary>Dimensions, outermost first.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>Bytes written to the data section.</summary>
    public long ByteLength { get; }

    /// <summary>Raw bytes already in <paramref name="dtypeName"/> layout (little-endian).</summary>
    /// <exception cref="ArgumentException">Unknown dtype, negative dimension, or a byte count that does not match the shape.</exception>
    public static NamedTensor FromBytes(string name, string dtypeName, IReadOnlyList<long> shape, ReadOnlyMemory<byte> data)
    {
        if (!SafetensorsDTypes.TryGetElementSize(dtypeName, out int size))
            throw new ArgumentException($"tensor '{name}': unknown safetensors dtype '{dtypeName}'", nameof(dtypeName));
        long bytes = CheckedElementCount(name, shape) * size;
        if (bytes != data.Length)
            throw new ArgumentException(
                $"tensor '{name}': shape {TensorInfo.FormatShape(shape)} of {dtypeName} needs {bytes} bytes, got {data.Length}",
                nameof(data));
        return new NamedTensor(name, dtypeName, [.. shape], bytes, s => s.Write(data.Span));
    }

    /// <summary>Float32 values stored as <paramref name="dtype"/> (round to nearest even for BF16 and F16).</summary>
    /// <exception cref="ArgumentException">Negative dimension or a value count that does not match the shape.</exception>
    public static NamedTensor FromSingles(string name, DType dtype, IReadOnlyList<long> shape, ReadOnlyMemory<float> values)
    {
        long count = CheckedElementCount(name, shape);
        if (count != values.Length)
            throw new ArgumentException(
                $"tensor '{name}': shape {TensorInfo.FormatShape(shape)} needs {count} values, got {values.Length}", nameof(values));
        return new NamedTensor(name, SafetensorsDTypes.NameOf(dtype), [.. shape], count * DTypes.SizeOf(dtype),
            s => WriteConverted(s, values.Span, dtype));
    }

    /// <summary>
    /// A tensor copied byte for byte from an open file (re-sharding, renaming). <paramref name="source"/> must stay
    /// open until the tensor has been written.
    /// </summary>
    public static unsafe NamedTensor FromFile(SafetensorsFile source, string sourceName, string? name = null)
    {
        var info = source.GetTensor(sourceName);
        return new NamedTensor(name ?? sourceName, info.DTypeName, [.. info.Shape], info.ByteLength, s =>
        {
            byte* p = source.GetPointer(info);
            for (long done = 0; done < info.ByteLength;)
            {
                int chunk = (int)Math.Min(1 << 24, info.ByteLength - done);
                s.Write(new ReadOnlySpan<byte>(p + done, chunk));
                done += chunk;
            }
        });
    }

    /// <summary>
    /// Float32 values produced chunk by chunk while writing (stored as <paramref name="dtype"/>), so a tensor larger
    /// than memory can be written: <paramref name="fill"/> receives the element offset of each chunk and fills it.
    /// </summary>
    public static NamedTensor FromGenerator(string name, DType dtype, IReadOnlyList<long> shape, Action<long, Span<float>> fill)
    {
        ArgumentNullException.ThrowIfNull(fill);
        long count = CheckedElementCount(name, shape);
        return new NamedTensor(name, SafetensorsDTypes.NameOf(dtype), [.. shape], count * DTypes.SizeOf(dtype), s =>
        {
            var chunk = new float[(int)Math.Min(count, 1 << 20)];
            for (long done = 0; done < count; done += chunk.Length)
            {
                var span = chunk.AsSpan(0, (int)Math.Min(chunk.Length, count - done));
                fill(done, span);
                WriteConverted(s, span, dtype);
            }
        });
    }

    /// <summary>
    /// A [rows, cols] float32 matrix produced chunk by chunk (as in <see cref="FromGenerator"/>) and stored as a
    /// <see cref="DType.Q8_0"/> pair: <c>name.q8</c> (I8) and <c>name.q8_scale</c> (F16), see <see cref="Q8Tensors"/>.
    /// Each tensor of the pair runs <paramref name="fill"/> over the whole matrix while it is written, so neither
    /// holds the matrix in memory.
    /// </summary>
    /// <exception cref="ArgumentException">cols is not a multiple of 32.</exception>
    public static (NamedTensor Quants, NamedTensor Scales) Q8FromGenerator(string name, long rows, long cols, Action<long, Span<float>> fill)
    {
        ArgumentNullException.ThrowIfNull(fill);
        if (cols % Q8Blocks.BlockSize != 0)
            throw new ArgumentException($"tensor '{name}': Q8_0 needs a multiple of {Q8Blocks.BlockSize} columns, got {cols}", nameof(cols));
        long count = CheckedElementCount(name, [rows, cols]);
        void Write(Stream s, bool quants)
        {
            var chunk = new float[(int)Math.Min(count, 1 << 20)]; // a multiple of the block size
            var q = new sbyte[chunk.Length];
            var d = new Half[chunk.Length / Q8Blocks.BlockSize];
            for (long done = 0; done < count; done += chunk.Length)
            {
                int n = (int)Math.Min(chunk.Length, count - done);
                fill(done, chunk.AsSpan(0, n));
                Q8Blocks.Quantize(chunk.AsSpan(0, n), q, d);
                if (quants) s.Write(MemoryMarshal.AsBytes(q.AsSpan(0, n)));
                else s.Write(MemoryMarshal.AsBytes(d.AsSpan(0, n / Q8Blocks.BlockSize)));
            }
        }
        return (new NamedTensor(name + Q8Tensors.QuantSuffix, "I8", [rows, cols], count, s => Write(s, quants: true)),
            new NamedTensor(name + Q8Tensors.ScaleSuffix, "F16", [rows, cols / Q8Blocks.BlockSize], count / Q8Blocks.BlockSize * 2,
                s => Write(s, quants: false)));
    }

    internal void WriteData(Stream stream) => _write(stream);

    private static long CheckedElementCount(string name, IReadOnlyList<long> shape)
    {
        long count = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ArgumentException($"tensor '{name}': negative dimension in {TensorInfo.FormatShape(shape)}");
            count = checked(count * d);
        }
        return count;
    }

    private static void WriteConverted(Stream stream, ReadOnlySpan<float> values, DType dtype)
    {
        if (dtype == DType.F32)
        {
            stream.Write(MemoryMarshal.AsBytes(values));
            return;
        }
        // Convert in bounded chunks: writing a 1 GB embedding must not allocate another 1 GB.
        Span<ushort> buffer = new ushort[Math.Min(values.Length, 1 << 16)];
        for (int start = 0; start < values.Length; start += buffer.Length)
        {
            int n = Math.Min(buffer.Length, values.Length - start);
            var chunk = values.Slice(start, n);
            if (dtype == DType.BF16)
                for (int i = 0; i < n; i++) buffer[i] = DTypes.SingleToBF16(chunk[i]);
            else
                for (int i = 0; i < n; i++) buffer[i] = BitConverter.HalfToUInt16Bits((Half)chunk[i]);
            stream.Write(MemoryMarshal.AsBytes(buffer[..n]));
        }
    }
}
