using System.Runtime.InteropServices;
using Llada.Numerics;

namespace Llada.Tests.Numerics;

/// <summary>Deterministic random data and weight matrices in every dtype for the numerics tests.</summary>
internal static class NumericsTestData
{
    public static float[] Random(int count, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var data = new float[count];
        for (int i = 0; i < count; i++) data[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return data;
    }

    /// <summary>A pinned weight buffer; <see cref="Values"/> holds the exact float32 values each element represents.</summary>
    public sealed unsafe class Weights
    {
        private readonly Array _storage;
        public readonly float[] Values;
        public readonly WeightMatrix Matrix;

        /// <summary>float32 weights holding exactly <paramref name="values"/>.</summary>
        public Weights(int rows, int cols, float[] values)
        {
            Assert.Equal(rows * cols, values.Length);
            var f = GC.AllocateArray<float>(values.Length, pinned: true);
            values.CopyTo(f, 0);
            Values = (float[])values.Clone();
            _storage = f;
            Matrix = new WeightMatrix((void*)Marshal.UnsafeAddrOfPinnedArrayElement(_storage, 0), rows, cols, DType.F32);
        }

        public Weights(int rows, int cols, DType dtype, int seed)
        {
            float[] source = Random(rows * cols, seed);
            Values = new float[source.Length];
            switch (dtype)
            {
                case DType.F32:
                    var f = GC.AllocateArray<float>(source.Length, pinned: true);
                    source.CopyTo(f, 0);
                    source.CopyTo(Values, 0);
                    _storage = f;
                    break;
                case DType.BF16:
                    var b = GC.AllocateArray<ushort>(source.Length, pinned: true);
                    for (int i = 0; i < b.Length; i++) { b[i] = DTypes.SingleToBF16(source[i]); Values[i] = DTypes.BF16ToSingle(b[i]); }
                    _storage = b;
                    break;
                default:
                    var h = GC.AllocateArray<Half>(source.Length, pinned: true);
                    for (int i = 0; i < h.Length; i++) { h[i] = (Half)source[i]; Values[i] = (float)h[i]; }
                    _storage = h;
                    break;
            }
            Matrix = new WeightMatrix((void*)Marshal.UnsafeAddrOfPinnedArrayElement(_storage, 0), rows, cols, dtype);
        }
    }

    /// <summary>
    /// Asserts |actual - expected| &lt;= rel * scale[i] + 1e-30 per element, where scale is the sum of absolute
    /// products that formed the value: the natural error bound of a float32 dot product, independent of cancellation.
    /// </summary>
    public static void AssertClose(ReadOnlySpan<double> expected, ReadOnlySpan<double> scale, ReadOnlySpan<float> actual, double rel, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs(actual[i] - expected[i]);
            if (!(err <= rel * scale[i] + 1e-30))
                Assert.Fail($"{what}: element {i} is {actual[i]}, expected {expected[i]} (error {err:E3}, allowed {rel * scale[i]:E3})");
        }
    }
}
