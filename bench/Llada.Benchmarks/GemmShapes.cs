namespace Llada.Benchmarks;

/// <summary>The product shapes the numerics layer is measured on: squares and LLaDA-8B layer shapes with 256 tokens.</summary>
internal static class GemmShapes
{
    public static readonly (string Name, int M, int N, int K)[] All =
    [
        ("square 512", 512, 512, 512),
        ("square 1024", 1024, 1024, 1024),
        ("square 2048", 2048, 2048, 2048),
        ("attn proj 256x4096x4096", 256, 4096, 4096),
        ("gate/up 256x12288x4096", 256, 12288, 4096),
        ("down 256x4096x12288", 256, 4096, 12288),
    ];

    /// <summary>
    /// Mid-sized shapes of a ~1B LLaDA-like model (d_model 1024, MLP 2816, vocab 32000) with 256 tokens: the
    /// weights (4-11 MB in f32) do not stay in cache between calls, and there are few output blocks per thread.
    /// </summary>
    public static readonly (string Name, int M, int N, int K)[] Mid =
    [
        ("q/k/v/o 256x1024x1024", 256, 1024, 1024),
        ("gate/up 256x2816x1024", 256, 2816, 1024),
        ("down 256x1024x2816", 256, 1024, 2816),
        ("lm head 256x32000x1024", 256, 32000, 1024),
        ("odd 200x1000x1000", 200, 1000, 1000),
    ];

    /// <summary>Decode-like and small-batch shapes (memory-bound; reported as GB/s of weights too).</summary>
    public static readonly (string Name, int M, int N, int K)[] Small =
    [
        ("decode 1x4096x4096", 1, 4096, 4096),
        ("decode 1x12288x4096", 1, 12288, 4096),
        ("batch 8x4096x4096", 8, 4096, 4096),
        ("batch 32x4096x4096", 32, 4096, 4096),
        ("batch 64x4096x4096", 64, 4096, 4096),
        ("batch 128x4096x4096", 128, 4096, 4096),
        ("lm head 32x126464x4096", 32, 126464, 4096),
    ];

    /// <summary>The mid model's products with 256 tokens (a full canvas) and 32 tokens (a block), for Q8_0 vs float32.</summary>
    public static readonly (string Name, int M, int N, int K)[] Q8 =
    [
        ("q/k/v/o 256x1024x1024", 256, 1024, 1024),
        ("gate/up 256x2816x1024", 256, 2816, 1024),
        ("down 256x1024x2816", 256, 1024, 2816),
        ("lm head 256x32000x1024", 256, 32000, 1024),
        ("q/k/v/o 32x1024x1024", 32, 1024, 1024),
        ("gate/up 32x2816x1024", 32, 2816, 1024),
        ("down 32x1024x2816", 32, 1024, 2816),
        ("lm head 32x32000x1024", 32, 32000, 1024),
    ];

    /// <summary>
    /// The shipped tiny model's products (d_model 256, 2 KV heads of 64, MLP 704, vocab 4096) at KV-cache window sizes
    /// (8, 16, 32 rows by default): the small-m path's working set, which sets the speed of a cached sampling step.
    /// </summary>
    public static (string Name, int M, int N, int K)[] Tiny(int[] rows) =>
    [
        .. rows.SelectMany(m => new[]
        {
            ($"k/v {m}x128x256", m, 128, 256),
            ($"q/o {m}x256x256", m, 256, 256),
            ($"gate/up {m}x704x256", m, 704, 256),
            ($"down {m}x256x704", m, 256, 704),
            ($"lm head {m}x4096x256", m, 4096, 256),
        }),
    ];
}
