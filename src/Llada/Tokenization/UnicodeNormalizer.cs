using System.IO.Compression;
using System.Text;

namespace Llada.Tokenization;

/// <summary>
/// Unicode normalisation forms NFC, NFD, NFKC and NFKD (UAX #15), independent of ICU: .NET's
/// <see cref="string.Normalize()"/> returns its input unchanged under InvariantGlobalization, which this project uses.
/// Data (combining classes, decompositions, primary composites) is embedded from
/// tools/tokenizer-golden/unicode_normalization_data.py.
/// </summary>
public static class UnicodeNormalizer
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7, LCount = 19, VCount = 21, TCount = 28;
    private const int NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Dictionary<int, byte> s_ccc = new();
    private static readonly Dictionary<int, (bool Compat, int[] Mapping)> s_decomposition = new();
    private static readonly Dictionary<long, int> s_composition = new();

    static UnicodeNormalizer()
    {
        using var resource = typeof(UnicodeNormalizer).Assembly.GetManifestResourceStream("Llada.Tokenization.UnicodeNormalization.bin.gz")
            ?? throw new InvalidOperationException("Embedded resource Llada.Tokenization.UnicodeNormalization.bin.gz is missing.");
        using var gz = new GZipStream(resource, CompressionMode.Decompress);
        using var r = new BinaryReader(gz);
        if (Encoding.ASCII.GetString(r.ReadBytes(4)) != "LNRM" || r.ReadByte() != 1)
            throw new InvalidDataException("UnicodeNormalization.bin.gz has an unexpected header.");
        for (int n = r.ReadInt32(); n > 0; n--) s_ccc[r.ReadInt32()] = r.ReadByte();
        for (int n = r.ReadInt32(); n > 0; n--)
        {
            int cp = r.ReadInt32();
            bool compat = r.ReadByte() != 0;
            var mapping = new int[r.ReadByte()];
            for (int i = 0; i < mapping.Length; i++) mapping[i] = r.ReadInt32();
            s_decomposition[cp] = (compat, mapping);
        }
        for (int n = r.ReadInt32(); n > 0; n--)
        {
            int a = r.ReadInt32(), b = r.ReadInt32();
            s_composition[Pair(a, b)] = r.ReadInt32();
        }
    }

    /// <summary>Normalises <paramref name="text"/> to <paramref name="form"/>.</summary>
    public static string Normalize(string text, NormalizationForm form)
    {
        bool compat = form is NormalizationForm.FormKC or NormalizationForm.FormKD;
        bool compose = form is NormalizationForm.FormC or NormalizationForm.FormKC;
        // Below these code points nothing decomposes (compatibility mappings start at U+00A0, canonical at U+00C0)
        // and, for NFC, nothing composes with a following character (combining marks start at U+0300).
        char stable = form switch
        {
            NormalizationForm.FormC => '\u0300',
            NormalizationForm.FormD => '\u00C0',
            _ => '\u00A0',
        };
        if (text.AsSpan().IndexOfAnyInRange(stable, '\uFFFF') < 0) return text;

        var cps = new List<int>(text.Length + 8);
        foreach (var rune in text.EnumerateRunes()) Decompose(rune.Value, compat, cps);
        CanonicalOrder(cps);
        if (compose) Compose(cps);

        var sb = new StringBuilder(cps.Count);
        foreach (int cp in cps)
        {
            if (cp < 0x10000) sb.Append((char)cp);
            else sb.Append(char.ConvertFromUtf32(cp));
        }
        return sb.ToString();
    }

    private static int Ccc(int cp) => s_ccc.TryGetValue(cp, out byte c) ? c : 0;

    private static long Pair(int a, int b) => ((long)a << 21) | (uint)b;

    private static void Decompose(int cp, bool compat, List<int> output)
    {
        if (cp is >= SBase and < SBase + SCount)
        {
            int s = cp - SBase;
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) output.Add(TBase + s % TCount);
            return;
        }
        if (s_decomposition.TryGetValue(cp, out var d) && (compat || !d.Compat))
        {
            foreach (int part in d.Mapping) Decompose(part, compat, output);
            return;
        }
        output.Add(cp);
    }

    // Stable sort of each run of non-starters by combining class.
    private static void CanonicalOrder(List<int> cps)
    {
        for (int i = 1; i < cps.Count; i++)
        {
            int c = Ccc(cps[i]);
            if (c == 0) continue;
            int j = i;
            while (j > 0)
            {
                int prev = Ccc(cps[j - 1]);
                if (prev <= c) break;
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
                j--;
            }
        }
    }

    // The canonical composition algorithm of UAX #15 (the Unicode sample implementation's shape).
    private static void Compose(List<int> cps)
    {
        if (cps.Count == 0) return;
        int starterPos = 0;
        int starter = cps[0];
        int lastClass = Ccc(starter) == 0 ? 0 : 256;
        int write = 1;
        for (int read = 1; read < cps.Count; read++)
        {
            int cp = cps[read];
            int cls = Ccc(cp);
            if ((lastClass < cls || lastClass == 0) && TryCompose(starter, cp, out int composite))
            {
                cps[starterPos] = composite;
                starter = composite;
                continue;
            }
            if (cls == 0)
            {
                starterPos = write;
                starter = cp;
            }
            lastClass = cls;
            cps[write++] = cp;
        }
        cps.RemoveRange(write, cps.Count - write);
    }

    private static bool TryCompose(int a, int b, out int composite)
    {
        if (a is >= LBase and < LBase + LCount && b is >= VBase and < VBase + VCount)
        {
            composite = SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
            return true;
        }
        if (a is >= SBase and < SBase + SCount && (a - SBase) % TCount == 0 && b is > TBase and < TBase + TCount)
        {
            composite = a + (b - TBase);
            return true;
        }
        return s_composition.TryGetValue(Pair(a, b), out composite);
    }
}
