using Llada.Model;

namespace Llada.Diffusion;

/// <summary>Approximate KV cache of the reverse process (Fast-dLLM, beyond the paper).</summary>
public enum KvCacheMode
{
    /// <summary>Every step runs the full canvas (the paper's sampler).</summary>
    None,

    /// <summary>
    /// Prefix cache: the first step of a block runs the full canvas and stores every position's keys and values;
    /// later steps of the block run the active block and everything after it, reusing the prompt's and finished
    /// blocks' keys and values from that first step.
    /// </summary>
    Prefix,

    /// <summary>
    /// Dual cache: as <see cref="Prefix"/>, but later steps run the active block alone, also reusing the keys and
    /// values of the still-masked suffix after it.
    /// </summary>
    Dual,
}

/// <summary>The names of <see cref="KvCacheMode"/> on command lines and in requests: none, prefix, dual.</summary>
public static class KvCacheModeNames
{
    /// <summary>Parses none (or off), prefix or dual; <paramref name="setting"/> names the setting in the error.</summary>
    public static KvCacheMode Parse(string? name, string setting = "cache") =>
        TryParse(name, out var mode) ? mode : throw new ArgumentException(UnknownMessage(name, setting));

    /// <summary>Parses none (or off, or null), prefix or dual.</summary>
    public static bool TryParse(string? name, out KvCacheMode mode)
    {
        (bool known, mode) = name?.ToLowerInvariant() switch
        {
            null or "none" or "off" => (true, KvCacheMode.None),
            "prefix" => (true, KvCacheMode.Prefix),
            "dual" => (true, KvCacheMode.Dual),
            _ => (false, KvCacheMode.None),
        };
        return known;
    }

    /// <summary>The error text for an unknown name.</summary>
    public static string UnknownMessage(string? name, string setting) => $"{setting} '{name}' is unknown; use none, prefix or dual";

    /// <summary>The lower-case name of <paramref name="mode"/>.</summary>
    public static string Name(KvCacheMode mode) => mode.ToString().ToLowerInvariant();
}

/// <summary>
/// The cache policy of the reverse process: decides, step by step, whether the predictor runs the whole canvas
/// (filling the cache) or only a window of it from the cache, and counts both kinds of pass.
/// </summary>
internal sealed class KvCachePolicy
{
    private readonly IMaskPredictor _predictor;
    private readonly KvCacheMode _mode;
    private KvCache? _cache;
    private bool _blockCached;

    public KvCachePolicy(IMaskPredictor predictor, KvCacheMode mode)
    {
        _predictor = predictor;
        _mode = mode;
    }

    /// <summary>Passes over the whole canvas.</summary>
    public int FullPasses { get; private set; }

    /// <summary>Passes over a window only, the rest of the keys and values coming from the cache.</summary>
    public int WindowPasses { get; private set; }

    /// <summary>A new block starts: its first pass runs the whole canvas and refills the cache.</summary>
    public void StartBlock() => _blockCached = false;

    /// <summary>
    /// Logits at <paramref name="logitPositions"/> (absolute, inside the active block [blockStart, blockEnd)) for the
    /// [rows, seqLen] canvas.
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, int rows, int seqLen, ReadOnlySpan<bool> keyMask, int blockStart, int blockEnd,
        ReadOnlySpan<int> logitPositions, Span<float> logits, CancellationToken cancellationToken)
    {
        if (_mode == KvCacheMode.None)
        {
            _predictor.Forward(tokens, rows, seqLen, keyMask, logitPositions, logits, cancellationToken);
            FullPasses++;
            return;
        }
        var predictor = (IKvCachePredictor)_predictor;
        if (!_blockCached)
        {
            _cache ??= predictor.CreateCache(rows, seqLen);
            predictor.ForwardFillingCache(tokens, rows, seqLen, keyMask, logitPositions, logits, _cache, cancellationToken);
            _blockCached = true;
            FullPasses++;
            return;
        }
        int windowEnd = _mode == KvCacheMode.Dual ? blockEnd : seqLen;
        predictor.ForwardWindow(tokens, rows, seqLen, keyMask, _cache!, blockStart, windowEnd, logitPositions, logits, cancellationToken);
        WindowPasses++;
    }
}
