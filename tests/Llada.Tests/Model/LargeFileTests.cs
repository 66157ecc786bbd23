using System.Text;
using Llada.Model;
using Llada.Numerics;

namespace Llada.Tests.Model;

public class LargeFileTests
{
    [Fact]
    public void A_16_GB_file_opens_without_reading_it_into_managed_memory()
    {
        // One BF16 tensor [131072, 65536] = 16 GiB, as a sparse file: only the header occupies disk.
        const long rows = 131072, cols = 65536, bytes = rows * cols * 2;
        string header = $"{{\"w\":{{\"dtype\":\"BF16\",\"shape\":[{rows},{cols}],\"data_offsets\":[0,{bytes}]}}}}";
        header += new string(' ', (8 - header.Length % 8) % 8);
        using var dir = new TempDir();
        string path = dir.File("big.safetensors");
        try
        {
            using var stream = new FileStream(path, FileMode.CreateNew);
            stream.Write(BitConverter.GetBytes((ulong)header.Length));
            stream.Write(Encoding.UTF8.GetBytes(header));
            stream.SetLength(8 + header.Length + bytes);
        }
        catch (IOException e)
        {
            Assert.Skip($"no sparse 16 GiB file possible here: {e.Message}");
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        using var file = SafetensorsFile.Open(path);
        var w = file.GetMatrix("w");
        Assert.Equal((131072, 65536, DType.BF16), (w.Rows, w.Cols, w.DType));
        Assert.Equal(0f, w[(int)rows - 1, (int)cols - 1]); // touches one page at the very end
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 1 << 20);
    }
}
