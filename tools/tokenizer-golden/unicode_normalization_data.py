"""Writes src/Llada/Tokenization/UnicodeNormalization.bin.gz: the Unicode data Llada's NFC/NFD/NFKC/NFKD needs.

.NET's string.Normalize does nothing under InvariantGlobalization (the project's setting), so Llada normalises
with its own implementation of the Unicode algorithm, fed by this table from Python's unicodedata.
Format (little-endian): b"LNRM", uint8 version, then
  int32 n, n x (int32 code point, uint8 canonical combining class != 0)
  int32 n, n x (int32 code point, uint8 is_compatibility, uint8 length, length x int32 code points)
  int32 n, n x (int32 first, int32 second, int32 primary composite)
"""
import gzip, os, struct, sys, unicodedata

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../src/Llada/Tokenization/UnicodeNormalization.bin.gz")
ccc, decomp, comp = [], [], []
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF or 0xAC00 <= cp <= 0xD7A3:  # surrogates; Hangul syllables are algorithmic
        continue
    ch = chr(cp)
    c = unicodedata.combining(ch)
    if c:
        ccc.append((cp, c))
    d = unicodedata.decomposition(ch)
    if not d:
        continue
    parts = d.split()
    compat = parts[0].startswith("<")
    if compat:
        parts = parts[1:]
    cps = [int(p, 16) for p in parts]
    decomp.append((cp, 1 if compat else 0, cps))
    if not compat and len(cps) == 2 and unicodedata.normalize("NFC", chr(cps[0]) + chr(cps[1])) == ch:
        comp.append((cps[0], cps[1], cp))

buf = bytearray(b"LNRM") + bytes([1])
buf += struct.pack("<i", len(ccc))
for cp, c in ccc:
    buf += struct.pack("<iB", cp, c)
buf += struct.pack("<i", len(decomp))
for cp, compat, cps in decomp:
    buf += struct.pack("<iBB", cp, compat, len(cps)) + b"".join(struct.pack("<i", x) for x in cps)
buf += struct.pack("<i", len(comp))
for a, b, c in comp:
    buf += struct.pack("<iii", a, b, c)
with open(out, "wb") as f:
    f.write(gzip.compress(bytes(buf), compresslevel=9, mtime=0))
print(f"Unicode {unicodedata.unidata_version}: {len(ccc)} ccc, {len(decomp)} decompositions, {len(comp)} compositions -> {out}")
