using Llada.Numerics.Native;

namespace Llada.Tests.Numerics;

public class X64EmitterTests
{
    private static readonly Gpr Rax = Gpr.Rax, Rcx = Gpr.Rcx, Rdx = Gpr.Rdx, Rbx = Gpr.Rbx, Rsp = Gpr.Rsp, Rsi = Gpr.Rsi,
        Rdi = Gpr.Rdi, R8 = Gpr.R8, R9 = Gpr.R9, R10 = Gpr.R10, R11 = Gpr.R11, R12 = Gpr.R12, R13 = Gpr.R13, R15 = Gpr.R15;
    private static Zmm Z(int i) => new(i);

    /// <summary>Emitter calls keyed by the GNU as line of tools/asm/instructions.txt they must encode.</summary>
    private static readonly Dictionary<string, Action<X64Emitter>> Calls = new()
    {
        ["{disp32} vmovdqu32 zmm0, zmmword ptr [rax+0]"] = e => e.Load(Z(0), new Mem(Rax, 0)),
        ["{disp32} vmovdqu32 zmm25, zmmword ptr [r9+1088]"] = e => e.Load(Z(25), new Mem(R9, 1088)),
        ["{disp32} vmovdqu32 zmm13, zmmword ptr [r12-64]"] = e => e.Load(Z(13), new Mem(R12, -64)),
        ["{disp32} vmovdqu32 zmmword ptr [rax+80], zmm6"] = e => e.Store(new Mem(Rax, 80), Z(6)),
        ["{disp32} vmovdqu32 zmmword ptr [r9+192], zmm23"] = e => e.Store(new Mem(R9, 192), Z(23)),
        ["{disp32} vmovdqu32 zmmword ptr [rsp+8], zmm31"] = e => e.Store(new Mem(Rsp, 8), Z(31)),
        ["{disp32} vpbroadcastd zmm0, dword ptr [rbx+32]"] = e => e.Broadcast32(Z(0), new Mem(Rbx, 32)),
        ["{disp32} vpbroadcastd zmm26, dword ptr [r8+36]"] = e => e.Broadcast32(Z(26), new Mem(R8, 36)),
        ["{disp32} vpbroadcastd zmm11, dword ptr [r13+4]"] = e => e.Broadcast32(Z(11), new Mem(R13, 4)),
        ["vpdpbusd zmm3, zmm17, zmm30"] = e => e.Vpdpbusd(Z(3), Z(17), Z(30)),
        ["vpdpbusd zmm16, zmm8, zmm9"] = e => e.Vpdpbusd(Z(16), Z(8), Z(9)),
        ["{disp32} vpdpbusd zmm0, zmm24, dword ptr [rbx+0]{1to16}"] = e => e.Vpdpbusd(Z(0), Z(24), new Mem(Rbx, 0, Broadcast: true)),
        ["{disp32} vpdpbusd zmm11, zmm25, dword ptr [r8+28]{1to16}"] = e => e.Vpdpbusd(Z(11), Z(25), new Mem(R8, 28, Broadcast: true)),
        ["{disp32} vpdpbusd zmm20, zmm7, zmmword ptr [rdx+128]"] = e => e.Vpdpbusd(Z(20), Z(7), new Mem(Rdx, 128)),
        ["{disp32} vdpbf16ps zmm5, zmm24, dword ptr [rsi+8]{1to16}"] = e => e.Vdpbf16ps(Z(5), Z(24), new Mem(Rsi, 8, Broadcast: true)),
        ["{disp32} vdpbf16ps zmm19, zmm2, zmmword ptr [r10+64]"] = e => e.Vdpbf16ps(Z(19), Z(2), new Mem(R10, 64)),
        ["vcvtdq2ps zmm0, zmm0"] = e => e.ConvertInt32ToSingle(Z(0), Z(0)),
        ["vcvtdq2ps zmm23, zmm11"] = e => e.ConvertInt32ToSingle(Z(23), Z(11)),
        ["vfmadd231ps zmm12, zmm0, zmm27"] = e => e.FusedMultiplyAdd231(Z(12), Z(0), Z(27)),
        ["vfmadd231ps zmm23, zmm31, zmm8"] = e => e.FusedMultiplyAdd231(Z(23), Z(31), Z(8)),
        ["{disp32} vmulps zmm27, zmm26, zmmword ptr [r10+64]"] = e => e.Multiply(Z(27), Z(26), new Mem(R10, 64)),
        ["{disp32} vmulps zmm1, zmm2, zmmword ptr [rax+0]"] = e => e.Multiply(Z(1), Z(2), new Mem(Rax, 0)),
        ["vpxord zmm12, zmm12, zmm12"] = e => e.Xor(Z(12), Z(12), Z(12)),
        ["vpxord zmm23, zmm23, zmm23"] = e => e.Xor(Z(23), Z(23), Z(23)),
        ["vpxord zmm1, zmm17, zmm30"] = e => e.Xor(Z(1), Z(17), Z(30)),
        ["vzeroupper"] = e => e.VZeroUpper(),
        ["{disp32} mov rax, qword ptr [rdi+0]"] = e => e.Mov(Rax, new Mem(Rdi, 0)),
        ["{disp32} mov r9, qword ptr [rax+8]"] = e => e.Mov(R9, new Mem(Rax, 8)),
        ["{disp32} mov rbx, qword ptr [rax+32]"] = e => e.Mov(Rbx, new Mem(Rax, 32)),
        ["{disp32} mov r11, qword ptr [r12+16]"] = e => e.Mov(R11, new Mem(R12, 16)),
        ["mov rax, rdi"] = e => e.Mov(Rax, Rdi),
        ["mov rax, rcx"] = e => e.Mov(Rax, Rcx),
        ["mov r10, rsi"] = e => e.Mov(R10, Rsi),
        ["add r9, 1024"] = e => e.Add(R9, 1024),
        ["add rbx, 40"] = e => e.Add(Rbx, 40),
        ["add r8, -40"] = e => e.Add(R8, -40),
        ["sub rsp, 128"] = e => e.Sub(Rsp, 128),
        ["sub r15, 1"] = e => e.Sub(R15, 1),
        ["dec r11"] = e => e.Dec(R11),
        ["dec rcx"] = e => e.Dec(Rcx),
        ["push rbx"] = e => e.Push(Rbx),
        ["push rsi"] = e => e.Push(Rsi),
        ["push r12"] = e => e.Push(R12),
        ["pop rdi"] = e => e.Pop(Rdi),
        ["pop r15"] = e => e.Pop(R15),
        ["ret"] = e => e.Ret(),
        ["2: dec r11; {disp32} jnz 2b"] = e =>
        {
            int loop = e.Position;
            e.Dec(R11);
            e.Jnz(loop);
        },
        ["2: vpdpbusd zmm3, zmm17, zmm30; add rbx, 40; dec r11; {disp32} jnz 2b"] = e =>
        {
            int loop = e.Position;
            e.Vpdpbusd(Z(3), Z(17), Z(30));
            e.Add(Rbx, 40);
            e.Dec(R11);
            e.Jnz(loop);
        },
    };

    [Fact]
    public void Every_instruction_encodes_to_the_bytes_GNU_as_produced()
    {
        string[] lines = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "fixtures", "asm", "x64-encodings.txt"));
        Assert.Equal(Calls.Count, lines.Length);
        foreach (string line in lines)
        {
            string[] parts = line.Split('\t');
            byte[] expected = Convert.FromHexString(parts[0].Replace(" ", ""));
            Assert.True(Calls.TryGetValue(parts[1], out var emit), $"no emitter call for golden line '{parts[1]}'");
            var e = new X64Emitter();
            emit(e);
            Assert.True(expected.AsSpan().SequenceEqual(e.ToArray()),
                $"{parts[1]}: expected {parts[0]}, emitted {Convert.ToHexString(e.ToArray())}");
        }
    }
}
