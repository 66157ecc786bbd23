using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Llada.Training.Data;

/// <summary>
/// xoshiro256** seeded through SplitMix64: small, fast, and its whole state is four numbers, so a position in the
/// data can be saved and restored exactly (System.Random's state is not accessible).
/// </summary>
internal struct DataRandom
{
    private ulong _s0, _s1, _s2, _s3;

    public static DataRandom FromSeed(ulong seed)
    {
        var r = new DataRandom();
        r._s0 = SplitMix(ref seed);
        r._s1 = SplitMix(ref seed);
        r._s2 = SplitMix(ref seed);
        r._s3 = SplitMix(ref seed);
        return r;
    }

    public static DataRandom FromState(ReadOnlySpan<ulong> s) => new() { _s0 = s[0], _s1 = s[1], _s2 = s[2], _s3 = s[3] };

    public readonly ulong[] State => [_s0, _s1, _s2, _s3];

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong Next()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, bound) without modulo bias (Lemire's multiply-and-reject).</summary>
    public ulong NextBelow(ulong bound)
    {
        ulong high = Math.BigMul(Next(), bound, out ulong low);
        if (low < bound)
        {
            ulong threshold = (0 - bound) % bound;
            while (low < threshold) high = Math.BigMul(Next(), bound, out low);
        }
        return high;
    }
}

/// <summary>
/// A resumable position in a shuffled pass over a dataset: which epoch, how many items of it were consumed, and
/// the random state at the start of the epoch (from which the epoch's permutation is regenerated). Serialise it
/// with a training checkpoint; restoring it continues the item sequence exactly.
/// </summary>
public sealed record SamplerState
{
    /// <summary>Number of items per epoch the state belongs to (guards against restoring onto other data).</summary>
    public required long ItemCount { get; init; }

    /// <summary>The seed the sampler was created with.</summary>
    public required ulong Seed { get; init; }

    /// <summary>Whether items are shuffled.</summary>
    public required bool Shuffle { get; init; }

    /// <summary>0-based epoch.</summary>
    public required long Epoch { get; init; }

    /// <summary>Items of this epoch already consumed.</summary>
    public required long Index { get; init; }

    /// <summary>xoshiro256** state (4 words) at the start of <see cref="Epoch"/>.</summary>
    public required ulong[] EpochRandomState { get; init; }

    /// <summary>Serialises to JSON (64-bit words as hex strings so no reader loses precision).</summary>
    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteNumber("itemCount", ItemCount);
            w.WriteString("seed", Seed.ToString("x16", CultureInfo.InvariantCulture));
            w.WriteBoolean("shuffle", Shuffle);
            w.WriteNumber("epoch", Epoch);
            w.WriteNumber("index", Index);
            w.WriteStartArray("epochRandomState");
            foreach (var s in EpochRandomState) w.WriteStringValue(s.ToString("x16", CultureInfo.InvariantCulture));
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Parses <see cref="ToJson"/> output.</summary>
    public static SamplerState FromJson(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var r = doc.RootElement;
            static ulong Hex(JsonElement e) => ulong.Parse(e.GetString()!, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var rng = r.GetProperty("epochRandomState").EnumerateArray().Select(Hex).ToArray();
            if (rng.Length != 4) throw new FormatException("epochRandomState must have 4 words.");
            return new SamplerState
            {
                ItemCount = r.GetProperty("itemCount").GetInt64(),
                Seed = Hex(r.GetProperty("seed")),
                Shuffle = r.GetProperty("shuffle").GetBoolean(),
                Epoch = r.GetProperty("epoch").GetInt64(),
                Index = r.GetProperty("index").GetInt64(),
                EpochRandomState = rng,
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new FormatException($"Not a valid data sampler state: {e.Message}", e);
        }
    }
}

/// <summary>
/// Walks items 0..count-1 epoch after epoch, each epoch in a fresh permutation drawn from the seeded generator
/// (or in order when not shuffling). Every epoch also draws one <see cref="EpochSalt"/> for per-epoch choices.
/// </summary>
internal sealed class ShuffleCursor
{
    private readonly long _count;
    private readonly ulong _seed;
    private readonly bool _shuffle;
    private int[]? _permutation;
    private DataRandom _random;
    private ulong[] _epochStart = [];

    public ShuffleCursor(long count, ulong seed, bool shuffle)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "Nothing to sample from.");
        if (shuffle && count > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(count), count, "Too many items to shuffle.");
        _count = count;
        _seed = seed;
        _shuffle = shuffle;
        _random = DataRandom.FromSeed(seed);
        BeginEpoch();
    }

    public long Epoch { get; private set; }

    public long Index { get; private set; }

    public ulong EpochSalt { get; private set; }

    private void BeginEpoch()
    {
        _epochStart = _random.State;
        EpochSalt = _random.Next();
        if (!_shuffle) return;
        _permutation ??= new int[_count];
        for (int i = 0; i < _permutation.Length; i++) _permutation[i] = i;
        for (int i = _permutation.Length - 1; i > 0; i--)   // Fisher-Yates
        {
            int j = (int)_random.NextBelow((ulong)i + 1);
            (_permutation[i], _permutation[j]) = (_permutation[j], _permutation[i]);
        }
    }

    /// <summary>The next item; rolls into the next epoch when this one is used up.</summary>
    public long Next()
    {
        if (Index == _count)
        {
            Epoch++;
            Index = 0;
            BeginEpoch();
        }
        long item = _shuffle ? _permutation![Index] : Index;
        Index++;
        return item;
    }

    public SamplerState State => new()
    {
        ItemCount = _count, Seed = _seed, Shuffle = _shuffle, Epoch = Epoch, Index = Index,
        EpochRandomState = (ulong[])_epochStart.Clone(),
    };

    public void Restore(SamplerState state, string what)
    {
        if (state.ItemCount != _count || state.Seed != _seed || state.Shuffle != _shuffle)
            throw new ArgumentException(
                $"The saved {what} position is for {state.ItemCount} items, seed {state.Seed}, shuffle {state.Shuffle}, " +
                $"but this source has {_count} items, seed {_seed}, shuffle {_shuffle}; the data or settings changed.",
                nameof(state));
        if (state.Index < 0 || state.Index > _count || state.Epoch < 0 || state.EpochRandomState.Length != 4)
            throw new ArgumentException($"The saved {what} position is out of range.", nameof(state));
        _random = DataRandom.FromState(state.EpochRandomState);
        Epoch = state.Epoch;
        BeginEpoch();
        Index = state.Index;
    }
}
