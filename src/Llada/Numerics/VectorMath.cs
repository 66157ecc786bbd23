using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Llada.Numerics;

/// <summary>Small vector math shared by the kernels (softmax, SiLU).</summary>
internal static class VectorMath
{
    /// <summary>
    /// e^x for x &lt;= 0 (relative error ~2e-7): x = n ln2 + r with |r| &lt;= ln2/2, e^r by a degree-6 Taylor
    /// polynomial, 2^n through the exponent bits. Results that would be subnormal (x &lt; -87.3), and -inf, give 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ExpNonPositive(Vector256<float> x)
    {
        var tiny = Vector256.LessThan(x, Vector256.Create(-87.3f));
        x = Vector256.Max(x, Vector256.Create(-87.3f));
        // Round to nearest by the 1.5 * 2^23 trick (|x * log2 e| < 2^22).
        var magic = Vector256.Create(12582912f);
        var t = Vector256.FusedMultiplyAdd(x, Vector256.Create(1.44269504f), magic);
        var n = t - magic;
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-0.693145752f), x); // ln2 split: exact high part
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-1.42860677e-6f), r);
        var p = Vector256.Create(1f / 720);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 120));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 24));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 6));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(0.5f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        // t's low mantissa bits hold n (+ 2^22, which the shift discards): 2^n = (bits(t) + 127) << 23.
        var scale = Vector256.ShiftLeft(t.AsInt32() + Vector256.Create(127), 23).AsSingle();
        return Vector256.AndNot(p * scale, tiny.AsSingle());
    }

    /// <summary>The same function and arithmetic as the Vector256 overload, 16 lanes at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ExpNonPositive(Vector512<float> x)
    {
        var tiny = Vector512.LessThan(x, Vector512.Create(-87.3f));
        x = Vector512.Max(x, Vector512.Create(-87.3f));
        // Round to nearest by the 1.5 * 2^23 trick (|x * log2 e| < 2^22).
        var magic = Vector512.Create(12582912f);
        var t = Vector512.FusedMultiplyAdd(x, Vector512.Create(1.44269504f), magic);
        var n = t - magic;
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693145752f), x); // ln2 split: exact high part
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-1.42860677e-6f), r);
        var p = Vector512.Create(1f / 720);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 120));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 24));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        // t's low mantissa bits hold n (+ 2^22, which the shift discards): 2^n = (bits(t) + 127) << 23.
        var scale = Vector512.ShiftLeft(t.AsInt32() + Vector512.Create(127), 23).AsSingle();
        return Vector512.AndNot(p * scale, tiny.AsSingle());
    }
}
