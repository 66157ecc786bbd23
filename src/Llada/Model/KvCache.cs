namespace Llada.Model;

/// <summary>
/// Keys and values of every layer for [rows, seqLen] positions, owned by the caller of an
/// <see cref="IKvCachePredictor"/>: a full pass fills it, later window passes read the positions outside their
/// window from it (the approximate KV cache of Fast-dLLM) and overwrite the window's own keys and values.
/// </summary>
public sealed class KvCache
{
    private readonly float[][] _keys, _values;

    /// <summary>Allocates zeroed keys and values: <paramref name="layers"/> x 2 x rows x seqLen x kvWidth floats.</summary>
    public KvCache(int layers, int rows, int seqLen, int kvWidth)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(seqLen);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvWidth);
        Rows = rows;
        SeqLen = seqLen;
        KvWidth = kvWidth;
        _keys = new float[layers][];
        _values = new float[layers][];
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = new float[(long)rows * seqLen * kvWidth];
            _values[l] = new float[(long)rows * seqLen * kvWidth];
        }
    }

    /// <summary>Number of layers.</summary>
    public int Layers => _keys.Length;

    /// <summary>Sequences (batch rows) held.</summary>
    public int Rows { get; }

    /// <summary>Positions per row.</summary>
    public int SeqLen { get; }

    /// <summary>Width of one position's keys (kv heads x head dim).</summary>
    public int KvWidth { get; }

    /// <summary>True once a full pass has stored keys and values of every position.</summary>
    public bool IsFilled { get; internal set; }

    /// <summary>Layer <paramref name="layer"/>'s keys (after RoPE), [rows, seqLen, kvWidth] row-major.</summary>
    public Span<float> Keys(int layer) => _keys[layer];

    /// <summary>Layer <paramref name="layer"/>'s values, [rows, seqLen, kvWidth] row-major.</summary>
    public Span<float> Values(int layer) => _values[layer];
}
