#!/usr/bin/env python3
"""Build the Llada pre-training corpus and synthetic SFT set from unpacked public-domain sources.

Called by tools/corpus/build.sh, which fetches and unpacks the pinned packages into a temp dir.
Pure standard library; every choice is a function of SEED and the input bytes, never of the
process (no hash(), no set iteration order, no clock), so two runs give identical output bytes.
"""

import argparse
import hashlib
import html
import json
import os
import re
import struct
import sys
import unicodedata
import zlib

SEED = "llada-corpus-v1"

# Byte budgets per source for the pre-training text (train + valid together). The Bible is
# archaic and the SOTU speeches are long, so both are capped to keep the mix balanced.
BUDGET = {
    "kjv": 4_000_000,
    "web": 1_600_000,
    "sotu": 3_800_000,
    "moby": 1_300_000,
    "wordnet": 1_800_000,
    "brown": 2_000_000,
}
DOC_CHARS = 3000          # soft maximum length of one document
MIN_PARA_CHARS = 25       # paragraphs shorter than this are fragments (headings, "Thank you.")
VALID_EVERY = 50          # 1 in 50 documents (by hash) goes to the validation split


def h(*parts):
    """Deterministic 64-bit hash of SEED and the given string parts."""
    data = (SEED + "\x1f" + "\x1f".join(str(p) for p in parts)).encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


# ---------------------------------------------------------------------------------------------
# Text normalisation
# ---------------------------------------------------------------------------------------------

_PUNCT = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
    "\u2014": "--", "\u2015": "--", "\u2013": "-", "\u2012": "-", "\u2010": "-", "\u2011": "-",
    "\u2026": "...", "\u00a0": " ", "\u00ad": "", "\u00b6": "", "\u00a7": "",
    "\u00bd": " 1/2", "\u00bc": " 1/4", "\u00be": " 3/4",
    "\u00e6": "ae", "\u00c6": "Ae", "\u0153": "oe", "\u0152": "Oe", "\u00df": "ss",
}


def to_ascii(text):
    """Map typographic punctuation to ASCII and strip accents; drop what is left (Greek, Hebrew).

    A tiny model with a small vocabulary gains nothing from rare code points, and plain ASCII is
    valid UTF-8, so the output is ASCII-only UTF-8.
    """
    text = "".join(_PUNCT.get(c, c) for c in text)
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if " " <= c <= "~" or c == "\n")


def clean_para(text):
    """One paragraph: ASCII, single spaces, no space before closing punctuation."""
    text = to_ascii(html.unescape(text))
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r" ([,.;:!?])", r"\1", text)
    return text


_SENT_END = re.compile(r'(?<=[.!?])["\')]?\s+(?=["\'(]?[A-Z0-9])')


def split_sentences(text):
    """Rough sentence split; good enough to cut long paragraphs at sentence boundaries."""
    out, start = [], 0
    for m in _SENT_END.finditer(text):
        out.append(text[start:m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def chunk_paragraphs(paras, limit=DOC_CHARS):
    """Group paragraphs into documents of at most ~limit chars; split over-long paragraphs at
    sentence boundaries so no single document is huge."""
    pieces = []
    for p in paras:
        if len(p) <= limit:
            pieces.append(p)
            continue
        cur = ""
        for s in split_sentences(p):
            if cur and len(cur) + 1 + len(s) > limit:
                pieces.append(cur)
                cur = s
            else:
                cur = (cur + " " + s) if cur else s
        if cur:
            pieces.append(cur)
    docs, cur, size = [], [], 0
    for p in pieces:
        if cur and size + len(p) + 1 > limit:
            docs.append(cur)
            cur, size = [], 0
        cur.append(p)
        size += len(p) + 1
    if cur:
        docs.append(cur)
    return ["\n".join(d) for d in docs]


def make_docs(source, key, paras):
    """Clean paragraphs, drop fragments, chunk into documents keyed for hashing."""
    paras = [clean_para(p) for p in paras]
    paras = [p for p in paras if len(p) >= MIN_PARA_CHARS]
    return [(source, f"{key}#{i}", d) for i, d in enumerate(chunk_paragraphs(paras))]


def take_budget(docs, budget):
    """Keep a hash-chosen subset of docs within the byte budget, in original order.

    Choosing by hash rather than taking a prefix spreads the kept text over the whole source
    (all eras of SOTU, all books of the Bible)."""
    order = sorted(range(len(docs)), key=lambda i: h("take", docs[i][0], docs[i][1]))
    kept, total = set(), 0
    for i in order:
        n = len(docs[i][2]) + 2
        if total + n > budget:
            continue
        kept.add(i)
        total += n
    return [docs[i] for i in range(len(docs)) if i in kept]


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------

def read_kjv(path):
    """Parse `bible -l0` output: 'Book C' header lines, then '  N text' verse lines."""
    verses = []  # (book, chapter, verse, text)
    book, chap = None, None
    head = re.compile(r"^(\S.*) (\d+)$")
    verse = re.compile(r"^\s+(\d+) (.*)$")
    with open(path, encoding="latin-1") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            m = verse.match(line)
            if m and book is not None:
                verses.append((book, chap, int(m.group(1)), clean_para(m.group(2))))
                continue
            m = head.match(line)
            if not m:
                raise SystemExit(f"{path}: unexpected line {line!r}")
            book, chap = m.group(1), int(m.group(2))
    if len(verses) != 31102:
        raise SystemExit(f"{path}: expected 31102 KJV verses, parsed {len(verses)}")
    return verses


def kjv_docs(verses):
    chapters = {}
    for b, c, v, t in verses:
        chapters.setdefault((b, c), []).append(t)
    docs = []
    for (b, c), ts in chapters.items():
        docs += make_docs("kjv", f"{b} {c}", [" ".join(ts)])
    return docs


def web_docs(moddir):
    """Decode the SWORD zText module of the World English Bible (OSIS markup, zlib blocks).

    Index layout (little endian): .bzs = per block (offset, compressed size, raw size) u32x3;
    .bzv = per verse slot (block u32, offset u32, size u16). Verse slots are in canonical
    order, so concatenating them and cutting at <chapter sID=...> milestones yields chapters;
    we never need the versification tables."""
    docs = []
    for testament in ("ot", "nt"):
        base = os.path.join(moddir, testament)
        bzs = open(base + ".bzs", "rb").read()
        bzz = open(base + ".bzz", "rb").read()
        bzv = open(base + ".bzv", "rb").read()
        blocks = []
        for i in range(0, len(bzs), 12):
            off, csize, _ = struct.unpack_from("<III", bzs, i)
            blocks.append(zlib.decompress(bzz[off:off + csize]))
        parts = []
        for i in range(0, len(bzv), 10):
            b, off, size = struct.unpack_from("<IIH", bzv, i)
            if size:
                parts.append(blocks[b][off:off + size].decode("utf-8"))
        osis = " ".join(parts)
        # Chapter milestones split the stream; text before the first chapter is front matter.
        pieces = re.split(r'<chapter [^>]*sID="([^"]+)"[^>]*/>', osis)
        for j in range(1, len(pieces), 2):
            ref, body = pieces[j], pieces[j + 1]
            body = re.sub(r"<note\b.*?</note>", " ", body, flags=re.S)
            body = re.sub(r"<title\b.*?</title>", " ", body, flags=re.S)
            # Paragraph and poetry-line starts become line breaks, everything else is dropped.
            body = re.sub(r'<div [^>]*sID="[^"]*"[^>]*type="x-p"[^>]*/>', "\n", body)
            body = re.sub(r"<[^>]*>", "", body)
            book = ref.split(".")[0]
            if book in WEB_SKIP:
                continue
            paras = [p for p in body.split("\n")]
            docs += make_docs("web", ref, paras)
    return docs


# Deuterocanonical books: not in the KJV source, and their names would puzzle a reader of the
# SFT verse task, so the pre-training text keeps only the 66-book canon.
WEB_SKIP = {"Tob", "Jdt", "EsthGr", "AddEsth", "Wis", "Sir", "Bar", "EpJer", "PrAzar", "Sus",
            "Bel", "1Macc", "2Macc", "3Macc", "4Macc", "1Esd", "2Esd", "PrMan", "Ps151",
            "AddDan", "AddPs"}


def sotu_docs(datadir):
    docs = []
    for name in sorted(os.listdir(datadir)):
        if not name.endswith(".txt"):
            continue
        with open(os.path.join(datadir, name), encoding="utf-8") as f:
            text = f.read()
        # Each address is stored as one line; paragraphs are lost, so documents are cut at
        # sentence boundaries by chunk_paragraphs.
        text = html.unescape(text)
        # Audience reactions are transcript notes, not prose.
        text = re.sub(r"\s*(\[(Applause|Laughter|applause|laughter)\]|\((Applause|Laughter)\.\))", "", text)
        # Lost paragraph breaks show as a sentence glued to the next ("addicted.At the same").
        text = re.sub(r'(?<=[a-z][.!?])(?=[A-Z][a-z])|(?<=[a-z][.!?]")(?=[A-Z][a-z])', "\n", text)
        docs += make_docs("sotu", name[:-4], text.split("\n"))
    return docs


def moby_docs(datadir):
    names = ["etymology.txt", "extracts.txt"]
    names += [f"chapter_{i}.txt" for i in range(1, 136)]
    names += ["epilogue.txt"]
    docs = []
    for name in names:
        with open(os.path.join(datadir, name), encoding="utf-8") as f:
            text = f.read()
        paras = [p for p in re.split(r"\n\s*\n", text)]
        # The first paragraph of a chapter is its heading ("CHAPTER 1. Loomings.").
        if paras and re.match(r"^(CHAPTER \d+|ETYMOLOGY|EXTRACTS|Epilogue)", paras[0].strip(), re.I):
            paras = paras[1:]
        docs += make_docs("moby", name[:-4], paras)
    return docs


# ---------------------------------------------------------------------------------------------
# WordNet
# ---------------------------------------------------------------------------------------------

POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


class WordNet:
    def __init__(self, wndir):
        self.synsets = {}  # (pos, offset) -> dict
        for pos, name in POS_FILES.items():
            with open(os.path.join(wndir, "data." + name), encoding="latin-1") as f:
                for line in f:
                    if line.startswith("  "):
                        continue  # licence header
                    self._parse(pos, line)
        self.index = {}  # (lemma, pos) -> [offsets] in sense order (most frequent first)
        for pos, name in POS_FILES.items():
            with open(os.path.join(wndir, "index." + name), encoding="latin-1") as f:
                for line in f:
                    if line.startswith("  "):
                        continue
                    t = line.split()
                    lemma, synset_cnt, p_cnt = t[0], int(t[2]), int(t[3])
                    offs = t[4 + p_cnt + 2:]
                    self.index[(lemma, pos)] = offs[:synset_cnt]
        # Corpus frequency of each lemma (sense-tagged counts from SemCor), by lemma and POS.
        self.freq = {}
        sstype_pos = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}
        with open(os.path.join(wndir, "cntlist.rev"), encoding="latin-1") as f:
            for line in f:
                key, _, cnt = line.split()
                lemma, rest = key.split("%", 1)
                pos = sstype_pos[rest[0]]
                self.freq[(lemma, pos)] = self.freq.get((lemma, pos), 0) + int(cnt)

    def _parse(self, pos, line):
        head, _, gloss = line.partition(" | ")
        t = head.split()
        off, lexfile, ss_type, w_cnt = t[0], int(t[1]), t[2], int(t[3], 16)
        words = [re.sub(r"\(.*\)$", "", t[4 + 2 * i]) for i in range(w_cnt)]
        k = 4 + 2 * w_cnt
        p_cnt = int(t[k])
        ptrs = []
        for i in range(p_cnt):
            sym, poff, ppos = t[k + 1 + 4 * i], t[k + 2 + 4 * i], t[k + 3 + 4 * i]
            ptrs.append((sym, poff, ppos))
        gloss = to_ascii(gloss.strip())
        # Gloss = definition; then examples in double quotes separated by semicolons.
        m = re.search(r';\s*"', gloss)
        definition = (gloss[:m.start()] if m else gloss).strip().rstrip(";").strip()
        examples = re.findall(r'"([^"]+)"', gloss[m.start():]) if m else []
        ppos_norm = "a" if pos == "a" else pos
        self.synsets[(ppos_norm, off)] = {
            "pos": pos, "lexfile": lexfile, "ss_type": ss_type, "words": words, "ptrs": ptrs,
            "def": definition, "examples": examples,
        }

    def get(self, pos, off):
        return self.synsets[("a" if pos in ("a", "s") else pos, off)]


def wn_word(w):
    return w.replace("_", " ")


def article(phrase):
    w = phrase.lower()
    if re.match(r"^(hour|honest|honor|heir|herb\b)", w):
        return "an"
    if re.match(r"^(uni|use|usu|uti|eu|one|once|ewe|ure|uro|u[bcfgklmnprst][aeiou])", w):
        return "a"
    return "an" if w[:1] in "aeiou" else "a"


def capital(s):
    return s[:1].upper() + s[1:]


def gloss_sentence(syn):
    """A WordNet synset as an English sentence for the pre-training text."""
    word = wn_word(syn["words"][0])
    d = syn["def"]
    if not d:
        return None
    if syn["pos"] == "n":
        if re.match(r"^(a|an|the|any|one|someone|something|anything|a person|the act)\b", d):
            s = f"{capital(article(word))} {word} is {d}."
            if word[:1].isupper():
                s = f"{word} is {d}."
        else:
            s = f"The word {word} means {d}."
    elif syn["pos"] == "v":
        s = f"To {word} means to {d}." if not d.startswith("to ") else f"To {word} means {d}."
    else:
        s = f"The word {word} means {d}."
    if syn["examples"]:
        ex = syn["examples"][0].strip()
        s += f' For example: "{ex}".' if not ex.endswith((".", "!", "?")) else f' For example: "{ex}"'
    return s


def wordnet_docs(wn):
    # Group sentences by lexicographer file region (consecutive offsets are related senses).
    docs = []
    for pos in ("n", "v", "a", "r"):
        sents = []
        for (p, off), syn in wn.synsets.items():
            if p != pos:
                continue
            s = gloss_sentence(syn)
            if s:
                sents.append(s)
        # One paragraph per ~10 glosses, so documents read as glossary passages.
        paras = [" ".join(sents[i:i + 10]) for i in range(0, len(sents), 10)]
        for i in range(0, len(paras), 4):
            docs += make_docs("wordnet", f"{pos}{i}", paras[i:i + 4])
    return docs


# ---------------------------------------------------------------------------------------------
# Brown corpus (opt-in only: its licence is unclear, see data/README.md)
# ---------------------------------------------------------------------------------------------

def detok(tokens):
    out = ""
    for tok in tokens:
        if tok == "``":
            tok = '"'
            out += (" " if out else "") + tok
            continue
        if tok == "''":
            out += '"'
            continue
        if re.match(r"^[,.;:!?)]+$", tok) or tok.startswith("'") or out.endswith(('"', "(")) and out[-2:-1] in (" ", ""):
            out += tok
        else:
            out += (" " if out else "") + tok
    return out


def brown_docs(dirpath):
    docs = []
    for name in sorted(os.listdir(dirpath)):
        if not re.match(r"^c[a-r]\d\d$", name):
            continue
        with open(os.path.join(dirpath, name), encoding="latin-1") as f:
            text = f.read()
        paras = []
        for block in re.split(r"\n\s*\n", text):
            toks = [t.rsplit("/", 1)[0] for t in block.split() if "/" in t]
            if toks:
                paras.append(detok(toks))
        docs += make_docs("brown", name, paras)
    return docs


# ---------------------------------------------------------------------------------------------
# SFT
# ---------------------------------------------------------------------------------------------

def msg(*turns):
    roles = ["user", "assistant"]
    return {"messages": [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]}


def pick(options, *key):
    return options[h("pick", *key) % len(options)]


# Tasks about the same kind of item share one hold-out draw, so a word held out for spelling is
# never defined, reversed or spelled in any training example (multi-turn dialogues included).
SPLIT_GROUP = {"define": "word", "reverse": "word", "spell": "word"}


def is_valid_item(task, key, every=20):
    """Items (words, verses, number pairs) are held out whole: prompts in valid never share the
    underlying item with train, whatever template is used."""
    return h("split", SPLIT_GROUP.get(task, task), key) % every == 0


def common_words(wn, pos, min_freq, pattern=r"^[a-z]{3,12}$"):
    """Lemmas of the POS that are frequent in sense-tagged text, most frequent first."""
    out = [(f, lem) for (lem, p), f in wn.freq.items() if p == pos and f >= min_freq
           and re.match(pattern, lem) and (lem, pos) in wn.index]
    out.sort(key=lambda x: (-x[0], x[1]))
    return [lem for _, lem in out]


def short(text, max_words):
    return len(text.split()) <= max_words


DEFINE_Q = [
    "Define the word '{w}'.",
    "What does '{w}' mean?",
    "What is the meaning of the word '{w}'?",
    "Give a definition of '{w}'.",
    "Define '{w}'.",
    "What does the word {w} mean?",
]


def sft_define(wn, limit_train):
    """Each word gets one fixed answer: the first (most frequent) sense of its most frequent POS."""
    cand = {}
    for pos in ("n", "v", "a"):
        for w in common_words(wn, pos, 3):
            f = wn.freq[(w, pos)]
            if w not in cand or f > cand[w][0]:
                cand[w] = (f, pos)
    items = []
    for w in sorted(cand, key=lambda x: (-cand[x][0], x)):
        pos = cand[w][1]
        syn = wn.get(pos, wn.index[(w, pos)][0])
        d = syn["def"]
        if not d or not short(d, 16) or re.search(r"[()\[\]]", d):
            continue
        items.append((w, capital(d) + "."))
    return split_items("define", items, limit_train,
                       lambda w, a, v: msg(pick(DEFINE_Q, "define", w, v).format(w=w), a),
                       lambda w, a: {"prompt": DEFINE_Q[0].format(w=w), "answer": a})


def split_items(task, items, limit_train, make_msgs, make_eval, variants=1, eval_n=200, valid_n=250):
    train, valid, evals = [], [], []
    for key, ans in items:
        if is_valid_item(task, key):
            if len(valid) < valid_n:
                valid.append(make_msgs(key, ans, 0))
            if len(evals) < eval_n:
                evals.append(dict(make_eval(key, ans), task=task))
        elif len(train) < limit_train * variants:
            for v in range(variants):
                train.append(make_msgs(key, ans, v))
    return train, valid, evals


BOOK_REF = {"Psalms": "Psalm"}


def sft_verses(verses, limit_train):
    qs = ["What does {r} say?", "Quote {r}.", "What is the text of {r}?", "Recite {r}."]
    items = []
    for b, c, v, t in verses:
        if short(t, 30) and len(t.split()) >= 4:
            items.append((f"{BOOK_REF.get(b, b)} {c}:{v}", t))
    # Keep a hash-chosen subset spread over the whole Bible; the model cannot memorise all.
    items.sort(key=lambda x: h("verse", x[0]))
    return split_items("verse", items, limit_train,
                       lambda r, a, n: msg(pick(qs, "verse", r, n).format(r=r), a),
                       lambda r, a: {"prompt": qs[0].format(r=r), "answer": a})


ADD_Q = ["What is {a} + {b}?", "What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a} + {b}.",
         "{a} + {b} =", "What is the sum of {a} and {b}?"]
SUB_Q = ["What is {a} - {b}?", "What is {a} minus {b}?", "Subtract {b} from {a}.", "Compute {a} - {b}.",
         "{a} - {b} =", "What is the difference between {a} and {b}?"]


def sft_arith(limit_train):
    items = []
    for a in range(100):
        for b in range(100):
            items.append((f"{a}+{b}", str(a + b)))
            if a >= b:
                items.append((f"{a}-{b}", str(a - b)))
    items.sort(key=lambda x: h("arith", x[0]))

    def make(key, ans, v):
        op = "+" if "+" in key else "-"
        a, b = key.split(op)
        q = pick(ADD_Q if op == "+" else SUB_Q, "arith", key, v)
        return msg(q.format(a=a, b=b), ans)

    def ev(key, ans):
        op = "+" if "+" in key else "-"
        a, b = key.split(op)
        return {"prompt": (ADD_Q if op == "+" else SUB_Q)[0].format(a=a, b=b), "answer": ans}

    return split_items("arith", items, limit_train, make, ev)


REV_Q = ["Reverse the word '{w}'.", "Write '{w}' backwards.", "Spell '{w}' backwards.",
         "What is '{w}' reversed?"]
SPELL_Q = ["Spell '{w}'.", "Spell the word '{w}'.", "How do you spell '{w}'?", "Spell out '{w}' letter by letter."]


def sft_words(wn, limit_train):
    words = []
    seen = set()
    for pos in ("n", "v", "a", "r"):
        for w in common_words(wn, pos, 1, r"^[a-z]{2,9}$"):
            if w not in seen:
                seen.add(w)
                words.append(w)
    words.sort(key=lambda w: h("words", w))
    rev = split_items("reverse", [(w, w[::-1]) for w in words], limit_train,
                      lambda w, a, v: msg(pick(REV_Q, "reverse", w, v).format(w=w), a),
                      lambda w, a: {"prompt": REV_Q[0].format(w=w), "answer": a})
    spell = split_items("spell", [(w, " ".join(w)) for w in words], limit_train,
                        lambda w, a, v: msg(pick(SPELL_Q, "spell", w, v).format(w=w), a),
                        lambda w, a: {"prompt": SPELL_Q[0].format(w=w), "answer": a})
    return rev, spell


# WordNet noun lexicographer files whose senses are mostly countable things (animal, artifact,
# body, location, object, person, plant): "a beagle is a kind of hound" reads well, while
# abstract or mass nouns give "an arthritis is a kind of ...".
COUNTABLE_LEXFILES = {5, 6, 8, 15, 17, 18, 20}


def sft_hypernyms(wn, limit_train):
    """Forward: 'What is a beagle a kind of?'. Reverse: 'Name a kind of hound.' with one fixed
    answer per category in training (the most frequent hyponym); evaluation accepts any."""
    fwd = []
    by_parent = {}
    for w in common_words(wn, "n", 1, r"^[a-z]{3,14}$"):
        off = wn.index[(w, "n")][0]
        syn = wn.get("n", off)
        if syn["lexfile"] not in COUNTABLE_LEXFILES:
            continue
        hyper = [p for p in syn["ptrs"] if p[0] == "@"]
        if not hyper:
            continue
        parent = wn.get("n", hyper[0][1])
        pw = wn_word(parent["words"][0])
        if pw == w or not re.match(r"^[a-z][a-z -]*$", pw) or pw in ("entity", "abstraction"):
            continue
        ans = f"{capital(article(w))} {w} is a kind of {pw}."
        fwd.append((w, (pw, ans)))
        by_parent.setdefault(pw, []).append((w, ans))
    FQ = ["What is {a} {w} a kind of?", "{A} {w} is a kind of what?", "What kind of thing is {a} {w}?"]
    RQ = ["Name a kind of {p}.", "Give an example of {a} {p}.", "What is one kind of {p}?"]

    def fmake(w, pa, v):
        return msg(pick(FQ, "hyper", w, v).format(a=article(w), A=capital(article(w)), w=w), pa[1])

    f = split_items("hypernym", fwd, limit_train, fmake,
                    lambda w, pa: {"prompt": FQ[0].format(a=article(w), w=w), "answer": pa[1]}, variants=2)
    rev_items = []
    for p in sorted(by_parent, key=lambda x: h("hypo", x)):
        # Descending frequency order. The trained answer never names a child whose forward fact
        # is held out, so hypernym-valid facts are not leaked through this direction.
        kids = by_parent[p]
        usable = [k for k in kids if not is_valid_item("hypernym", k[0])]
        if usable:
            rev_items.append((p, (usable[0][1], [k[1] for k in kids])))

    def rmake(p, ans, v):
        return msg(pick(RQ, "hypo", p, v).format(a=article(p), p=p), ans[0])

    r = split_items("hyponym", rev_items, limit_train, rmake,
                    lambda p, ans: {"prompt": RQ[0].format(a=article(p), p=p), "answer": ans[0],
                                    "accept": ans[1]}, variants=2)
    return f, r


# Plain conversation: hand-written templates combined with names and punctuation variants.
GREET_U = ["Hello", "Hi", "Hey", "Good morning", "Good afternoon", "Good evening", "Hello there",
           "Hi there", "Greetings", "Howdy"]
GREET_A = ["Hello! How can I help you today?", "Hi! What can I do for you?",
           "Hello! What would you like to know?", "Hi there! How can I help?"]
NAMES = ["Anna", "Ben", "Clara", "David", "Emma", "Frank", "Grace", "Henry", "Iris", "Jack", "Kate",
         "Leo", "Maria", "Noah", "Olivia", "Paul", "Rosa", "Sam", "Tom", "Vera", "Will", "Zoe"]
CHAT_FIXED = [
    (["How are you?", "How are you doing?", "How is it going?", "How are you today?"],
     ["I am fine, thank you. How can I help you?", "I am doing well, thanks for asking. What can I do for you?"]),
    (["Thank you.", "Thanks!", "Thank you very much.", "Thanks a lot.", "Thanks for your help."],
     ["You are welcome.", "You're welcome! Glad I could help.", "Happy to help."]),
    (["Goodbye.", "Bye!", "See you later.", "Good night.", "I have to go now."],
     ["Goodbye! Have a nice day.", "Bye! Take care.", "See you next time."]),
    (["Who are you?", "What are you?", "Tell me about yourself.", "What is your name?"],
     ["I am Llada, a small language model. I can answer simple questions.",
      "I am Llada, a small diffusion language model trained on public-domain text."]),
    (["What can you do?", "How can you help me?", "What kinds of questions can you answer?"],
     ["I can define words, quote Bible verses, do simple addition and subtraction, and spell or reverse words.",
      "I can help with word definitions, Bible verses, small sums, and spelling."]),
    (["Are you a human?", "Are you a person?", "Are you real?"],
     ["No, I am a computer program, a small language model.", "No. I am a language model, not a person."]),
    (["Can you help me?", "I need some help.", "Could you help me with something?"],
     ["Of course. What do you need?", "Yes, I will try. What is your question?"]),
    (["Tell me a fact.", "Tell me something interesting."],
     ["A beagle is a kind of hound.", "The Bible begins with the words: In the beginning God created the heaven and the earth.",
      "Moby-Dick begins with the words: Call me Ishmael."]),
    (["What is your favorite book?", "Do you like books?"],
     ["I have read Moby-Dick, the Bible, and many State of the Union addresses.",
      "I like Moby-Dick. It begins with the words: Call me Ishmael."]),
    (["Yes.", "Okay.", "Sure.", "All right."],
     ["Good. What would you like to do next?", "Okay. Ask me anything."]),
    (["No.", "No, thanks.", "Not really."],
     ["All right. Let me know if you need anything.", "Okay. I am here if you need me."]),
    (["Sorry.", "I am sorry.", "My mistake."],
     ["No problem.", "That is all right."]),
]


def sft_chat():
    items = []
    for g in GREET_U:
        for punct in ("!", ".", ""):
            items.append((f"{g}{punct}", pick(GREET_A, "greet", g, punct)))
        for n in NAMES:
            u = f"{g}, my name is {n}."
            items.append((u, f"Hello, {n}! Nice to meet you. How can I help you?"))
            u = f"{g}! I am {n}."
            items.append((u, f"Nice to meet you, {n}! What can I do for you?"))
    for us, ans in CHAT_FIXED:
        for u in us:
            for case in (u, u.lower()):
                items.append((case, pick(ans, "chat", case)))
    # De-duplicate prompts (lower-casing may collide) keeping the first answer.
    seen, uniq = set(), []
    for u, a in items:
        if u not in seen:
            seen.add(u)
            uniq.append((u, a))
    return split_items("chat", uniq, 10_000,
                       lambda u, a, v: msg(u, a), lambda u, a: {"prompt": u, "answer": a}, variants=3)


def sft_multiturn(define_items, words, limit):
    """Two-turn dialogues whose second question refers back to the first turn."""
    out = []
    for i, (w, d) in enumerate(define_items):
        kind = h("mt", w) % 3
        if kind == 0:
            out.append(msg(pick(DEFINE_Q, "mt", w).format(w=w), d, "Now spell it.", " ".join(w)))
        elif kind == 1:
            out.append(msg(pick(DEFINE_Q, "mt", w).format(w=w), d, "And write it backwards.", w[::-1]))
        else:
            a, b = h("mta", w) % 50, h("mtb", w) % 50
            if is_valid_item("arith", f"{a}+{b}"):
                continue
            out.append(msg(f"Spell '{w}'.", " ".join(w), f"Thanks. What is {a} + {b}?", str(a + b)))
        if len(out) >= limit:
            break
    for i in range(limit // 4):
        a, b, c = h("m1", i) % 50, h("m2", i) % 50, h("m3", i) % 40
        s = a + b
        if is_valid_item("arith", f"{a}+{b}") or is_valid_item("arith", f"{s}-{min(c, s)}"):
            continue
        out.append(msg(f"What is {a} + {b}?", str(s), f"And what is that minus {min(c, s)}?", str(s - min(c, s))))
        n = pick(NAMES, "mn", i)
        out.append(msg(f"Hi, I am {n}.", f"Hello, {n}! Nice to meet you. How can I help you?",
                       "What can you do?", "I can define words, quote Bible verses, do simple addition and subtraction, and spell or reverse words."))
    return out


# ---------------------------------------------------------------------------------------------

def write_text(path, docs):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n\n".join(d for _, _, d in docs))
        f.write("\n")


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=True, separators=(",", ":")) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--src", required=True, help="temp dir with unpacked sources (see build.sh)")
    ap.add_argument("--out", required=True, help="output data directory")
    ap.add_argument("--with-brown", action="store_true", help="add the Brown corpus (licence unclear; do not commit)")
    args = ap.parse_args()
    src = args.src

    verses = read_kjv(os.path.join(src, "kjv.txt"))
    wn = WordNet(os.path.join(src, "deb/wordnet-base/usr/share/wordnet"))

    sources = {
        "kjv": kjv_docs(verses),
        "web": web_docs(os.path.join(src, "deb/sword-text-web/usr/share/sword/modules/texts/ztext/engWEB2015eb")),
        "sotu": sotu_docs(os.path.join(src, "npm/sotu/package/data")),
        "moby": moby_docs(os.path.join(src, "npm/moby-dick/package/data")),
        "wordnet": wordnet_docs(wn),
    }
    if args.with_brown:
        sources["brown"] = brown_docs(os.path.join(src, "npm/brown/package"))

    stats = {}
    train, valid = [], []
    for name, docs in sources.items():
        kept = take_budget(docs, BUDGET[name])
        tr = [d for d in kept if h("valid", d[0], d[1]) % VALID_EVERY != 0]
        va = [d for d in kept if h("valid", d[0], d[1]) % VALID_EVERY == 0]
        train += tr
        valid += va
        stats[name] = {"available_docs": len(docs), "train_docs": len(tr), "valid_docs": len(va),
                       "train_bytes": sum(len(d[2]) + 2 for d in tr), "valid_bytes": sum(len(d[2]) + 2 for d in va)}
    # Interleave sources so any prefix of the file is a balanced mix.
    train.sort(key=lambda d: h("order", d[0], d[1]))
    valid.sort(key=lambda d: h("order", d[0], d[1]))
    os.makedirs(os.path.join(args.out, "corpus"), exist_ok=True)
    write_text(os.path.join(args.out, "corpus/train.txt"), train)
    write_text(os.path.join(args.out, "corpus/valid.txt"), valid)

    # SFT
    tasks = {}
    tasks["define"] = sft_define(wn, 9000)
    tasks["verse"] = sft_verses(verses, 3000)
    tasks["arith"] = sft_arith(7000)
    tasks["reverse"], tasks["spell"] = sft_words(wn, 3500)
    tasks["hypernym"], tasks["hyponym"] = sft_hypernyms(wn, 2500)
    tasks["chat"] = sft_chat()
    define_train_items = [(m["messages"][0]["content"], m["messages"][1]["content"]) for m in tasks["define"][0]]
    # Multi-turn dialogues reuse training words only, so valid items stay unseen.
    word_of = re.compile(r"'([a-z]+)'|word ([a-z]+) mean")
    mt_items = []
    for q, a in define_train_items:
        m = word_of.search(q)
        mt_items.append((m.group(1) or m.group(2), a))
    multi = sft_multiturn(mt_items, None, 2000)

    sft_train, sft_valid = [], []
    sft_stats = {}
    os.makedirs(os.path.join(args.out, "sft/tasks"), exist_ok=True)
    for name, (tr, va, ev) in tasks.items():
        sft_train += [(name, i, r) for i, r in enumerate(tr)]
        sft_valid += [(name, i, r) for i, r in enumerate(va)]
        write_jsonl(os.path.join(args.out, f"sft/tasks/{name}.jsonl"), ev)
        sft_stats[name] = {"train": len(tr), "valid": len(va), "eval": len(ev)}
    sft_train += [("multiturn", i, r) for i, r in enumerate(multi)]
    sft_stats["multiturn"] = {"train": len(multi), "valid": 0, "eval": 0}
    sft_train.sort(key=lambda x: h("sft", x[0], x[1]))
    sft_valid.sort(key=lambda x: h("sft", x[0], x[1]))
    write_jsonl(os.path.join(args.out, "sft/train.jsonl"), [r for _, _, r in sft_train])
    write_jsonl(os.path.join(args.out, "sft/valid.jsonl"), [r for _, _, r in sft_valid])

    json.dump({"seed": SEED, "corpus": stats, "sft": sft_stats}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
