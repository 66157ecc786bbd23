using System.Numerics;

namespace Llada.Training;

/// <summary>AdamW hyper-parameters (the learning rate comes from a <see cref="LearningRateSchedule"/>).</summary>
public sealed record AdamWOptions
{
    /// <summary>First-moment decay.</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>Second-moment decay.</summary>
    public double Beta2 { get; init; } = 0.95;
    /// <summary>Denominator epsilon.</summary>
    public double Epsilon { get; init; } = 1e-8;
    /// <summary>Decoupled weight decay (paper: 0.1), applied to projection matrices and the untied LM head.</summary>
    public double WeightDecay { get; init; } = 0.1;
    /// <summary>Also decay the token embedding (off by default; norms are never decayed).</summary>
    public bool DecayEmbeddings { get; init; }
}

/// <summary>
/// AdamW (Loshchilov and Hutter): p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p), with bias-corrected moments.
/// Its state (step count and both moments) round-trips through <see cref="Save"/>/<see cref="Load"/> exactly.
/// </summary>
public sealed class AdamW
{
    private readonly float[] _m, _v;
    private readonly (int Offset, int Length, bool Decay)[] _ranges;

    /// <summary>Creates an optimiser for the parameters of <paramref name="model"/>.</summary>
    public AdamW(TrainableModel model, AdamWOptions? options = null)
        : this(model.Parameters.Length, model.Tensors, options) { }

    /// <summary>Creates an optimiser for <paramref name="parameterCount"/> parameters described by <paramref name="tensors"/>.</summary>
    public AdamW(int parameterCount, IReadOnlyList<ParameterTensor> tensors, AdamWOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        Options = options ?? new AdamWOptions();
        _m = new float[parameterCount];
        _v = new float[parameterCount];
        _ranges = tensors.Select(t => (t.Offset, t.Length, t.Kind switch
        {
            ParameterKind.Norm => false,
            ParameterKind.Embedding => Options.DecayEmbeddings,
            _ => true,
        })).ToArray();
        if (_ranges.Sum(r => (long)r.Length) != parameterCount)
            throw new ArgumentException($"the tensors cover {_ranges.Sum(r => (long)r.Length)} parameters, expected {parameterCount}", nameof(tensors));
    }

    /// <summary>Hyper-parameters.</summary>
    public AdamWOptions Options { get; }
    /// <summary>Updates taken so far (the bias-correction exponent of the next update is Step + 1).</summary>
    public long Step { get; private set; }

    /// <summary>Applies one update with learning rate <paramref name="lr"/>.</summary>
    public void Update(Span<float> parameters, ReadOnlySpan<float> gradients, double lr)
    {
        if (parameters.Length != _m.Length || gradients.Length != _m.Length)
            throw new ArgumentException($"expected {_m.Length} parameters and gradients, got {parameters.Length} and {gradients.Length}");
        Step++;
        float b1 = (float)Options.Beta1, b2 = (float)Options.Beta2, eps = (float)Options.Epsilon;
        float c1 = (float)(1 / (1 - Math.Pow(Options.Beta1, Step))), c2 = (float)(1 / (1 - Math.Pow(Options.Beta2, Step)));
        float rate = (float)lr, decay = (float)(lr * Options.WeightDecay);
        foreach (var (offset, length, decays) in _ranges)
            UpdateRange(parameters.Slice(offset, length), gradients.Slice(offset, length), _m.AsSpan(offset, length), _v.AsSpan(offset, length),
                b1, b2, c1, c2, eps, rate, decays ? decay : 0f);
    }

    /// <summary>
    /// The update of one tensor. The vector body evaluates exactly the scalar tail's expression (same operations,
    /// same order, no fused multiply-add), so every element gets the same bits whichever path it falls in.
    /// </summary>
    private static void UpdateRange(Span<float> p, ReadOnlySpan<float> grad, Span<float> mom, Span<float> vel,
        float b1, float b2, float c1, float c2, float eps, float rate, float wd)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vb1 = new Vector<float>(b1); var vb1c = new Vector<float>(1 - b1);
            var vb2 = new Vector<float>(b2); var vb2c = new Vector<float>(1 - b2);
            var vc1 = new Vector<float>(c1); var vc2 = new Vector<float>(c2);
            var veps = new Vector<float>(eps); var vrate = new Vector<float>(rate); var vwd = new Vector<float>(wd);
            for (; i <= p.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var g = new Vector<float>(grad[i..]);
                var m = vb1 * new Vector<float>(mom[i..]) + vb1c * g;
                var v = vb2 * new Vector<float>(vel[i..]) + vb2c * g * g;
                var w = new Vector<float>(p[i..]);
                m.CopyTo(mom[i..]);
                v.CopyTo(vel[i..]);
                (w - (vrate * (m * vc1 / (Vector.SquareRoot(v * vc2) + veps)) + vwd * w)).CopyTo(p[i..]);
            }
        }
        for (; i < p.Length; i++)
        {
            float g = grad[i];
            float m = mom[i] = b1 * mom[i] + (1 - b1) * g;
            float v = vel[i] = b2 * vel[i] + (1 - b2) * g * g;
            p[i] -= rate * (m * c1 / (MathF.Sqrt(v * c2) + eps)) + wd * p[i];
        }
    }

    /// <summary>
    /// Scales <paramref name="gradients"/> so their global L2 norm is at most <paramref name="maxNorm"/>
    /// (no-op when maxNorm &lt;= 0) and returns the norm before clipping (accumulated in double).
    /// </summary>
    public static double ClipGradientNorm(Span<float> gradients, double maxNorm)
    {
        double sum = 0;
        foreach (float g in gradients) sum += (double)g * g;
        double norm = Math.Sqrt(sum);
        if (maxNorm > 0 && norm > maxNorm)
        {
            float scale = (float)(maxNorm / (norm + 1e-6));
            System.Numerics.Tensors.TensorPrimitives.Multiply(gradients, scale, gradients);
        }
        return norm;
    }

    private const int Magic = 0x57414441; // "ADAW"

    /// <summary>Writes the step count and both moment arrays.</summary>
    public void Save(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(Magic);
        writer.Write(Step);
        writer.Write(_m.Length);
        foreach (float x in _m) writer.Write(x);
        foreach (float x in _v) writer.Write(x);
    }

    /// <summary>Restores a state written by <see cref="Save"/> for the same parameter count.</summary>
    public void Load(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        if (reader.ReadInt32() != Magic) throw new InvalidDataException("not an AdamW state (bad magic number)");
        long step = reader.ReadInt64();
        int count = reader.ReadInt32();
        if (count != _m.Length) throw new InvalidDataException($"AdamW state is for {count} parameters, this model has {_m.Length}");
        for (int i = 0; i < count; i++) _m[i] = reader.ReadSingle();
        for (int i = 0; i < count; i++) _v[i] = reader.ReadSingle();
        Step = step;
    }
}
