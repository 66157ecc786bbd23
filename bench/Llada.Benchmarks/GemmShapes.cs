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
}
