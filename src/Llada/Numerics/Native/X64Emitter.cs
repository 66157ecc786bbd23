namespace Llada.Numerics.Native;

/// <summary>A 64-bit general-purpose register (0 = rax ... 15 = r15, in hardware numbering).</summary>
internal readonly record struct Gpr(int Index)
{
    public static readonly Gpr Rax = new(0), Rcx = new(1), Rdx = new(2), Rbx = new(3), Rsp = new(4), Rbp = new(5),
        Rsi = new(6), Rdi = new(7), R8 = new(8), R9 = new(9), R10 = new(10), R11 = new(11), R12 = new(12),
        R13 = new(13), R14 = new(14), R15 = new(15);
}

/// <summary>A 512-bit vector register zmm0 ... zmm31.</summary>
internal readonly record struct Zmm(int Index);

/// <summary>A memory operand [base + disp32], optionally read as one 32-bit element broadcast to all 16 lanes ({1to16}).</summary>
internal readonly record struct Mem(Gpr Base, int Displacement, bool Broadcast = false);

/// <summary>
/// Encodes the few x86-64 instructions the emitted kernels use into a byte buffer — what oneDNN does with Xbyak,
/// cut down to what Llada needs. Every memory operand is [base + disp32] (no disp8*N compression, no index), every
/// vector instruction is a 512-bit EVEX form without masking. Encodings are checked against GNU as by a golden
/// fixture (tools/asm/encode_golden.sh).
/// </summary>
internal sealed class X64Emitter
{
    private readonly List<byte> _code = [];

    /// <summary>The bytes emitted so far.</summary>
    public byte[] ToArray() => [.. _code];

    /// <summary>Current offset, a jump target for <see cref="Jnz"/>.</summary>
    public int Position => _code.Count;

    // EVEX opcode maps and implied prefixes.
    private const int Map0F = 1, Map0F38 = 2;
    private const int PpNone = 0, Pp66 = 1, PpF3 = 2;

    private void Byte(int b) => _code.Add((byte)b);

    private void Int32(int v)
    {
        for (int i = 0; i < 4; i++) Byte(v >> (8 * i));
    }

    /// <summary>
    /// EVEX prefix (62 P0 P1 P2): P0 = R X B R' 0 0 m m (R, X, B, R' inverted), P1 = W vvvv 1 pp (vvvv inverted),
    /// P2 = z L'L b V' aaa (V' inverted); L'L = 10 selects 512 bits, aaa = 000 is no mask.
    /// </summary>
    private void Evex(int map, int pp, int reg, int vvvv, int rmBits, bool rmIsVector, bool broadcast)
    {
        int r = (reg >> 3) & 1, rPrime = (reg >> 4) & 1;
        int b = (rmBits >> 3) & 1;
        int x = rmIsVector ? (rmBits >> 4) & 1 : 0; // register rm: X extends to zmm16-31; memory: no index
        Byte(0x62);
        Byte(((r ^ 1) << 7) | ((x ^ 1) << 6) | ((b ^ 1) << 5) | ((rPrime ^ 1) << 4) | map);
        Byte((0 << 7) | ((~vvvv & 0xF) << 3) | 0x4 | pp);
        Byte((0b10 << 5) | ((broadcast ? 1 : 0) << 4) | ((((vvvv >> 4) & 1) ^ 1) << 3));
    }

    /// <summary>ModRM (+ SIB for an rsp/r12 base) + disp32 for [base + disp32], with reg in ModRM.reg.</summary>
    private void MemoryOperand(int reg, Mem m)
    {
        int baseLow = m.Base.Index & 7;
        Byte((0b10 << 6) | ((reg & 7) << 3) | baseLow);
        if (baseLow == 4) Byte(0x24); // SIB: no index, base = rsp/r12
        Int32(m.Displacement);
    }

    private void VectorOp(int map, int pp, int opcode, Zmm dst, int vvvv, Zmm src)
    {
        Evex(map, pp, dst.Index, vvvv, src.Index, rmIsVector: true, broadcast: false);
        Byte(opcode);
        Byte(0xC0 | ((dst.Index & 7) << 3) | (src.Index & 7));
    }

    private void VectorOp(int map, int pp, int opcode, int reg, int vvvv, Mem src)
    {
        Evex(map, pp, reg, vvvv, src.Base.Index, rmIsVector: false, broadcast: src.Broadcast);
        Byte(opcode);
        MemoryOperand(reg, src);
    }

    private const int NoVvvv = 0; // encodes as 1111 / V' = 1 after inversion

    /// <summary>vmovdqu32 zmm, [mem] (64 bytes, any alignment).</summary>
    public void Load(Zmm dst, Mem src) => VectorOp(Map0F, PpF3, 0x6F, dst.Index, NoVvvv, src);

    /// <summary>vmovdqu32 [mem], zmm.</summary>
    public void Store(Mem dst, Zmm src) => VectorOp(Map0F, PpF3, 0x7F, src.Index, NoVvvv, dst);

    /// <summary>vpbroadcastd zmm, dword [mem].</summary>
    public void Broadcast32(Zmm dst, Mem src) => VectorOp(Map0F38, Pp66, 0x58, dst.Index, NoVvvv, src);

    /// <summary>vpdpbusd acc, u, s: acc.int32[i] += Σ_t u.uint8[4i + t] · s.int8[4i + t] (no saturation).</summary>
    public void Vpdpbusd(Zmm acc, Zmm unsigned, Zmm signed) => VectorOp(Map0F38, Pp66, 0x50, acc, unsigned.Index, signed);

    /// <inheritdoc cref="Vpdpbusd(Zmm, Zmm, Zmm)"/>
    public void Vpdpbusd(Zmm acc, Zmm unsigned, Mem signed) => VectorOp(Map0F38, Pp66, 0x50, acc.Index, unsigned.Index, signed);

    /// <summary>vdpbf16ps acc, a, b: acc.fp32[i] += a.bf16[2i]·b.bf16[2i] + a.bf16[2i+1]·b.bf16[2i+1].</summary>
    public void Vdpbf16ps(Zmm acc, Zmm a, Mem b) => VectorOp(Map0F38, PpF3, 0x52, acc.Index, a.Index, b);

    /// <summary>vcvtdq2ps zmm, zmm (int32 to float32, round to nearest even; exact below 2^24).</summary>
    public void ConvertInt32ToSingle(Zmm dst, Zmm src) => VectorOp(Map0F, PpNone, 0x5B, dst, NoVvvv, src);

    /// <summary>vfmadd231ps acc, a, b: acc = a·b + acc with one rounding.</summary>
    public void FusedMultiplyAdd231(Zmm acc, Zmm a, Zmm b) => VectorOp(Map0F38, Pp66, 0xB8, acc, a.Index, b);

    /// <summary>vmulps dst, a, [mem].</summary>
    public void Multiply(Zmm dst, Zmm a, Mem b) => VectorOp(Map0F, PpNone, 0x59, dst.Index, a.Index, b);

    /// <summary>vpxord dst, a, b (with a = b = dst: the zeroing idiom).</summary>
    public void Xor(Zmm dst, Zmm a, Zmm b) => VectorOp(Map0F, Pp66, 0xEF, dst, a.Index, b);

    /// <summary>vzeroupper (VEX), avoids SSE transition penalties in the caller.</summary>
    public void VZeroUpper()
    {
        Byte(0xC5); Byte(0xF8); Byte(0x77);
    }

    private void Rex(bool w, int reg, int rm) => Byte(0x40 | (w ? 8 : 0) | (((reg >> 3) & 1) << 2) | ((rm >> 3) & 1));

    /// <summary>mov dst, qword [mem].</summary>
    public void Mov(Gpr dst, Mem src)
    {
        Rex(true, dst.Index, src.Base.Index);
        Byte(0x8B);
        MemoryOperand(dst.Index, src);
    }

    /// <summary>mov dst, src (64-bit).</summary>
    public void Mov(Gpr dst, Gpr src)
    {
        Rex(true, src.Index, dst.Index);
        Byte(0x89);
        Byte(0xC0 | ((src.Index & 7) << 3) | (dst.Index & 7));
    }

    /// <summary>Group 1 arithmetic with an immediate: the short imm8 form (83) when it fits, as assemblers pick, else imm32 (81).</summary>
    private void Group1(int extension, Gpr dst, int imm)
    {
        bool short8 = imm is >= sbyte.MinValue and <= sbyte.MaxValue;
        Rex(true, 0, dst.Index);
        Byte(short8 ? 0x83 : 0x81);
        Byte(0xC0 | (extension << 3) | (dst.Index & 7));
        if (short8) Byte(imm);
        else Int32(imm);
    }

    /// <summary>add dst, imm (sign-extended to 64 bits).</summary>
    public void Add(Gpr dst, int imm32) => Group1(0, dst, imm32);

    /// <summary>sub dst, imm.</summary>
    public void Sub(Gpr dst, int imm32) => Group1(5, dst, imm32);

    /// <summary>dec dst (64-bit), setting ZF for <see cref="Jnz"/>.</summary>
    public void Dec(Gpr dst)
    {
        Rex(true, 0, dst.Index);
        Byte(0xFF);
        Byte(0xC8 | (dst.Index & 7));
    }

    /// <summary>jnz to an earlier <see cref="Position"/> (rel32).</summary>
    public void Jnz(int target)
    {
        Byte(0x0F); Byte(0x85);
        Int32(target - (Position + 4));
    }

    /// <summary>push r64.</summary>
    public void Push(Gpr r)
    {
        if (r.Index >= 8) Byte(0x41);
        Byte(0x50 + (r.Index & 7));
    }

    /// <summary>pop r64.</summary>
    public void Pop(Gpr r)
    {
        if (r.Index >= 8) Byte(0x41);
        Byte(0x58 + (r.Index & 7));
    }

    /// <summary>ret.</summary>
    public void Ret() => Byte(0xC3);
}
